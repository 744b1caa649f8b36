"""Builders shared by the converter tests (tiny hand-made patients, CSVs, source snapshots).

No tests here: imported by the test_conversion_*.py modules.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import SimpleITK as sitk

CT_SIZE = (16, 14, 10)  # x, y, z
CT_SPACING = (3.0, 3.0, 4.0)
CT_ORIGIN = (-24.0, -20.0, -100.0)
PET_SPACING = (5.0, 5.0, 5.0)


def image_from(array_zyx: np.ndarray, spacing, origin, direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(direction)
    return image


def ct_array(size=CT_SIZE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1500, size=tuple(reversed(size))).astype(np.int16)


def label_array(size=CT_SIZE) -> np.ndarray:
    """GTVp block and two GTVn blocks (two components)."""
    label = np.zeros(tuple(reversed(size)), dtype=np.uint8)
    label[3:6, 4:8, 5:9] = 1
    label[2:4, 2:4, 1:3] = 2
    label[6:8, 9:12, 11:14] = 2
    return label


def pet_image(ct_origin=CT_ORIGIN, ct_size=CT_SIZE, ct_spacing=CT_SPACING, scale=1.0, seed=1) -> sitk.Image:
    """A PET covering the CT with a margin (other spacing, size and origin), smooth values in SUV."""
    extent = np.multiply(ct_size, ct_spacing)
    origin = np.subtract(ct_origin, 3.0)
    size = tuple(int(np.ceil((e + 6.0) / s)) for e, s in zip(extent, PET_SPACING))
    rng = np.random.default_rng(seed)
    values = (rng.random(tuple(reversed(size))) * 4.0 * scale).astype(np.float32)
    return image_from(values, PET_SPACING, origin)


def write_patient(folder: Path, pid: str, *, label: bool = True, ct: sitk.Image | None = None,
                  pet: sitk.Image | None = None, label_image: sitk.Image | None = None, seed: int = 0) -> dict:
    """Write ``<PID>__CT``, ``<PID>__PT`` and (optionally) ``<PID>`` label into ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    ct = ct if ct is not None else image_from(ct_array(seed=seed), CT_SPACING, CT_ORIGIN)
    pet = pet if pet is not None else pet_image(seed=seed + 1)
    paths = {"ct": folder / f"{pid}__CT.nii.gz", "pet": folder / f"{pid}__PT.nii.gz"}
    sitk.WriteImage(ct, str(paths["ct"]), True)
    sitk.WriteImage(pet, str(paths["pet"]), True)
    if label:
        label_image = label_image if label_image is not None else image_from(label_array(), CT_SPACING, CT_ORIGIN)
        paths["label"] = folder / f"{pid}.nii.gz"
        sitk.WriteImage(label_image, str(paths["label"]), True)
    return paths


def write_csv(path: Path, columns: list[str], rows: Iterable[Mapping[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root`` with size, mtime and content hash (to prove it was not touched)."""
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path.relative_to(root))] = (path.is_file(), stat.st_size if path.is_file() else None,
                                              stat.st_mtime_ns, digest)
    return state


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
