"""Writing the container's outputs so that a file under its final name is always a valid output.

Every output is written under a temporary name in its own folder (:func:`nnunet_hecktor.fileio.atomic_path`),
**checked**, and only then renamed into place: a JSON file must be non-empty and parse back to the
value written; an image must be non-empty and read back with the same size, pixel type and voxels.
SimpleITK's writer does not raise on a full disk (it leaves a 0-byte or truncated file), so without
the check a full disk would put an empty ``output.mha`` under its final name. A failed check raises
:class:`OutputWriteError` and leaves the previous file at that name (the fallback written first,
see :mod:`.run2026`) untouched.

:func:`check_output_folder` runs before any work: it creates the output folder and writes, reads
back and removes a probe file, so that an unwritable or full output folder stops the run at once
with a clear message instead of after minutes of prediction.

2026 conventions (``nnunet_hecktor.editions``, edition ``"2026"``):

- ``rfs.json``: one JSON float. **Default convention** ``"time"`` (the organisers' README: "RFS time,
  anti-concordant with the predicted risk"): the value written is ``-risk``, so a higher risk gives
  a smaller value. ``"risk"`` writes the risk itself (the docstring of the organisers'
  ``run_prognosis``: "higher = higher risk"). See docs/how-to/challenge-container.md.
- ``t-stage.json`` / ``n-stage.json``: one JSON string, a canonical stage label of
  :data:`nnunet_hecktor.schema.T_STAGES` / :data:`~nnunet_hecktor.schema.N_STAGES` (``"T2"``, ``"N1"``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from nnunet_hecktor.errors import HecktorError

# The package's one error for an output that could not be written: the CLI prints it as one line.
from nnunet_hecktor.fileio import OutputWriteError

#: ``rfs.json`` conventions: ``"time"`` writes ``-risk`` (anti-concordant with risk), ``"risk"`` the risk.
RFS_CONVENTIONS: tuple[str, ...] = ("time", "risk")
DEFAULT_RFS_CONVENTION = "time"
PROBE_NAME = ".nnunet-hecktor-write-probe"


def rfs_value(risk: float, convention: str = DEFAULT_RFS_CONVENTION) -> float:
    """The number written to ``rfs.json`` for a risk (higher risk = earlier relapse).

    ``"time"``: ``-risk`` (monotone decreasing in risk: higher risk, smaller value, as an RFS time
    would be); ``"risk"``: the risk itself.

    Raises
    ------
    HecktorError
        Unknown convention, or a non-finite risk.
    """
    if convention not in RFS_CONVENTIONS:
        raise HecktorError(f"rfs convention {convention!r}: expected one of {', '.join(RFS_CONVENTIONS)}")
    risk = float(risk)
    if not math.isfinite(risk):
        raise HecktorError(f"risk {risk} is not finite; nothing written")
    value = -risk if convention == "time" else risk
    return value + 0.0  # -0.0 -> 0.0


def check_output_folder(output_dir: str | os.PathLike, needed_bytes: int = 0) -> Path:
    """Create ``output_dir`` and prove it writable (probe file written, read back, removed).

    Parameters
    ----------
    needed_bytes : int
        Rough size of the outputs; a warning-worthy shortage raises when the free space is below it.

    Raises
    ------
    OutputWriteError
        The folder cannot be created or written, or has less free space than ``needed_bytes``.
    """
    output = Path(output_dir).expanduser()
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"the output folder cannot be created ({exc.strerror or exc})", output) from None
    probe = output / PROBE_NAME
    payload = b"nnunet-hecktor write probe\n"
    try:
        with open(probe, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if probe.read_bytes() != payload:
            raise OSError("the probe file read back differs")
    except OSError as exc:
        raise OutputWriteError(f"the output folder is not writable ({exc.strerror or exc})", output) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    if needed_bytes > 0:
        free = shutil.disk_usage(output).free
        if free < needed_bytes:
            raise OutputWriteError(f"the output folder has {free} bytes free, the outputs need up to "
                                   f"{needed_bytes}", output)
    return output


def _checked_size(tmp: Path, destination: Path) -> None:
    size = tmp.stat().st_size
    if size == 0:
        raise OutputWriteError("the file written is empty (disk full?); not renamed into place", destination)


def write_json_output(value: Any, destination: str | os.PathLike) -> Path:
    """Write one JSON value atomically, checked (non-empty, parses back to ``value``)."""
    from nnunet_hecktor.fileio import atomic_path

    destination = Path(destination)
    text = json.dumps(value) + "\n"
    try:
        with atomic_path(destination) as tmp:
            tmp.write_text(text, encoding="utf-8")
            _checked_size(tmp, destination)
            if json.loads(tmp.read_text(encoding="utf-8")) != value:
                raise OutputWriteError(f"the file written does not read back as {value!r}", destination)
    except OutputWriteError:
        raise
    except OSError as exc:
        raise OutputWriteError(f"cannot be written ({_reason(exc)})", destination) from None
    return destination


def write_image_output(image, destination: str | os.PathLike) -> Path:
    """Write a uint8 label image atomically (compressed), checked by reading it back voxel for voxel."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_hecktor.fileio import atomic_path

    destination = Path(destination)
    if image.GetPixelID() != sitk.sitkUInt8:
        image = sitk.Cast(image, sitk.sitkUInt8)
    try:
        with atomic_path(destination) as tmp:
            sitk.WriteImage(image, str(tmp), True)
            _checked_size(tmp, destination)
            try:
                back = sitk.ReadImage(str(tmp))
            except RuntimeError as exc:
                lines = str(exc).strip().splitlines()
                raise OutputWriteError(f"the file written cannot be read back "
                                       f"({lines[-1] if lines else 'unknown reason'}); disk full?", destination) from None
            if (back.GetSize() != image.GetSize() or back.GetPixelID() != image.GetPixelID()
                    or not np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))):
                raise OutputWriteError("the image read back differs from the one written", destination)
            del back
    except OutputWriteError:
        raise
    except (OSError, RuntimeError) as exc:
        raise OutputWriteError(f"cannot be written ({_reason(exc)})", destination) from None
    return destination


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None)
    if text:
        return str(text)
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def write_stage_output(stage: str, destination: str | os.PathLike, column: str) -> Path:
    """``t-stage.json`` / ``n-stage.json``: one JSON string, a canonical label of ``column``'s stages."""
    from nnunet_hecktor.schema import STAGES_OF_COLUMN

    if stage not in STAGES_OF_COLUMN[column]:
        raise HecktorError(f"{column} {stage!r}: expected one of {', '.join(STAGES_OF_COLUMN[column])}")
    return write_json_output(stage, destination)


def output_set_problems(root: Path, expected: set[Path]) -> tuple[list[str], set[Path]]:
    """``(problems, present)``: files under ``root`` other than ``expected``, and ``expected`` files missing."""
    present = {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    problems = [f"unexpected file {p}" for p in sorted(present - expected)]
    problems += [f"missing {p}" for p in sorted(expected - present)]
    return problems, present


def segmentation_output_problems(root: Path, relative: Path, reference_ct=None) -> list[str]:
    """Problems with a container's segmentation output: uint8, values in {0, 1, 2}, on ``reference_ct``'s grid
    (size, spacing, origin, direction) when given. Used by both editions' output checks."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_hecktor.dataset_conversion.geometry import describe_grid_difference, same_grid

    problems = []
    image = sitk.ReadImage(str(root / relative))
    if image.GetPixelID() != sitk.sitkUInt8:
        problems.append(f"{relative}: pixel type {image.GetPixelIDTypeAsString()}, expected uint8")
    values = set(np.unique(sitk.GetArrayViewFromImage(image)).tolist())
    if not values <= {0, 1, 2}:
        problems.append(f"{relative}: values {sorted(values)} outside {{0, 1, 2}}")
    if reference_ct is not None and not same_grid(reference_ct, image):
        problems.append(f"{relative}: not on the CT's grid ({describe_grid_difference(reference_ct, image)})")
    return problems


def check_outputs_2026(output_dir: str | os.PathLike, reference_ct=None) -> list[str]:
    """Problems with a 2026 container output folder ([] = exactly the four official outputs, valid).

    Segmentation: uint8, values in {0, 1, 2}, on ``reference_ct``'s grid when given; ``t-stage.json`` /
    ``n-stage.json``: one JSON string among the edition's stages; ``rfs.json``: one finite JSON number.
    """
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.schema import N_STAGES, T_STAGES

    outputs = get_edition("2026").container_outputs
    root = Path(output_dir)
    problems, present = output_set_problems(root, set(outputs.values()))
    if outputs["segmentation"] in present:
        problems += segmentation_output_problems(root, outputs["segmentation"], reference_ct)
    for name, allowed in (("t_stage", T_STAGES), ("n_stage", N_STAGES), ("rfs", None)):
        path = outputs[name]
        if path not in present:
            continue
        try:
            value = json.loads((root / path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: not JSON ({exc})")
            continue
        if allowed is None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{path}: expected one finite JSON number, got {value!r}")
        elif value not in allowed:
            problems.append(f"{path}: expected one of {', '.join(allowed)}, got {value!r}")
    return problems
