"""Finding and loading each patient's CT, PET and segmentation for feature extraction.

Image folders in two layouts are accepted:

- converter / nnU-Net: ``<DIR>/<PID>_0000.nii.gz`` (CT) and ``<DIR>/<PID>_0001.nii.gz`` (PET on
  the CT grid); ``DIR`` may also be the dataset folder holding ``imagesTr``;
- HECKTOR release: ``<PID>__CT.nii.gz`` and ``<PID>__PT.nii.gz`` (``.mha`` too), flat or in
  per-patient (and per-task) sub-folders, PET on its own grid.

Segmentations (0 background, 1 GTVp, 2 GTVn) are ``<PID>.nii.gz`` (or ``.mha``) in one or more
folders (e.g. the ``fold_k/validation`` folders of an nnU-Net cross-validation), flat or in
per-patient sub-folders. They define the grid: it must be the CT grid, and the PET is
resampled onto it (linear, 0 outside) when it is not already.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.dataset_conversion.checks import PET_SUV_P99_LIMIT
from nnunet_hecktor.dataset_conversion.geometry import describe_grid_difference, same_grid
from nnunet_hecktor.dataset_conversion.resampling import resample_pet_to_ct
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.fileio import read_image
from nnunet_hecktor.metrics.components import bounding_box
from nnunet_hecktor.prognosis.lesion_measures import ball_kernel

IMAGE_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii", ".mha")
_CHANNEL = re.compile(r"^(?P<pid>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class PatientFiles:
    """The three files features are computed from."""

    patient_id: str
    ct: Path
    pet: Path
    seg: Path


def _stem(path: Path) -> str | None:
    for ending in IMAGE_ENDINGS:
        if path.name.endswith(ending):
            return path.name[: -len(ending)]
    return None


def _add_unique(found: dict[str, Path], key: str, path: Path, what: str) -> None:
    if key in found and found[key] != path:
        raise InputDataError(f"two {what} files for this patient: {found[key]} and {path}", key)
    found[key] = path


def find_image_files(images_dir: str | Path) -> dict[str, tuple[Path, Path]]:
    """PatientID -> (CT path, PET path) for every patient in ``images_dir`` (either layout).

    Raises
    ------
    InputDataError
        A CT without its PET (or the reverse), duplicate files, or no images at all.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise InputDataError("images folder does not exist", None, root)
    if (root / "imagesTr").is_dir() and not any(_CHANNEL.match(_stem(p) or "") for p in root.iterdir()):
        root = root / "imagesTr"
    cts: dict[str, Path] = {}
    pets: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        stem = _stem(path)
        if stem is None or not path.is_file():
            continue
        match = _CHANNEL.match(stem)
        if match and match["channel"] in ("0000", "0001"):
            target = cts if match["channel"] == "0000" else pets
            _add_unique(target, match["pid"], path, "CT" if target is cts else "PET")
        elif stem.endswith(schema.MODALITY_SUFFIXES["CT"]):
            _add_unique(cts, stem[: -len(schema.MODALITY_SUFFIXES["CT"])], path, "CT")
        elif stem.endswith(schema.MODALITY_SUFFIXES["PET"]):
            _add_unique(pets, stem[: -len(schema.MODALITY_SUFFIXES["PET"])], path, "PET")
    if not cts and not pets:
        raise InputDataError("no CT/PET images found (expected <PID>_0000.nii.gz/<PID>_0001.nii.gz or "
                             "<PID>__CT.nii.gz/<PID>__PT.nii.gz)", None, root)
    for pid in sorted(set(cts) ^ set(pets)):
        missing = "PET" if pid in cts else "CT"
        raise InputDataError(f"{missing} image missing (found only {cts.get(pid) or pets.get(pid)})", pid, root)
    return {pid: (cts[pid], pets[pid]) for pid in sorted(cts)}


def find_segmentations(seg_dirs: list[str | Path], patient_ids) -> dict[str, Path]:
    """PatientID -> segmentation path, searched in every folder of ``seg_dirs``.

    Only files named exactly ``<PID>`` + image ending, for a PatientID in ``patient_ids``, count.

    Raises
    ------
    InputDataError
        A folder is missing, or a patient has segmentations in two places.
    """
    wanted = set(patient_ids)
    found: dict[str, Path] = {}
    for folder in seg_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputDataError("segmentation folder does not exist", None, folder)
        for path in sorted(folder.rglob("*")):
            stem = _stem(path)
            if stem is not None and stem in wanted and path.is_file():
                _add_unique(found, stem, path, "segmentation")
    return found


def infer_seg_source(seg_dirs: list[str | Path], images_dir: str | Path) -> str | None:
    """Guess whether segmentation folders hold ground truth or model predictions; ``None`` if unsure.

    Ground truth: a folder named ``labelsTr``/``labelsTs``, or labels lying next to the
    release's ``__CT`` images. Predicted: a folder with nnU-Net prediction metadata
    (``predict_from_raw_data_args.json``, ``plans.json``) or a ``fold_k/validation`` folder.
    """
    votes: set[str | None] = set()  # None: a folder that says neither
    for folder in map(Path, seg_dirs):
        if folder.name.startswith("labels"):
            votes.add("ground_truth")
        elif any((folder / name).is_file() for name in ("predict_from_raw_data_args.json", "plans.json")) \
                or (folder.name == "validation" and folder.parent.name.startswith("fold_")):
            votes.add("predicted")
        elif next(folder.rglob(f"*{schema.MODALITY_SUFFIXES['CT']}.nii.gz"), None) is not None:
            votes.add("ground_truth")
        else:
            votes.add(None)
    return votes.pop() if len(votes) == 1 else None


@dataclass
class LoadedPatient:
    """Arrays ``(z, y, x)`` on the segmentation grid, cropped to the lesions' bounding box plus the
    SUVpeak ball (a single voxel when the segmentation is empty), and the crop's geometry."""

    ct: np.ndarray
    pet: np.ndarray
    seg: np.ndarray
    spacing_zyx: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...]
    warnings: list[str]


def load_patient(files: PatientFiles) -> LoadedPatient:
    """Read CT, PET and segmentation files, then :func:`prepare_feature_images`.

    Raises
    ------
    InputDataError
        Unreadable files, or any problem :func:`prepare_feature_images` reports.
    """
    pid = files.patient_id
    seg_image = read_image(files.seg, pid, "segmentation")
    ct_image = read_image(files.ct, pid, "CT")
    pet_image = read_image(files.pet, pid, "PET")
    return prepare_feature_images(ct_image, pet_image, seg_image, pid, files.ct, files.pet, files.seg)


def prepare_feature_images(ct_image, pet_image, seg_image, patient: str | None = None, ct_path=None, pet_path=None,
                   seg_path=None) -> LoadedPatient:
    """Check a segmentation against its CT and put the PET on the segmentation grid (linear
    interpolation, 0 outside the PET) when it is not already there; crop to the lesions.

    Works on SimpleITK images in memory (e.g. a challenge container's CT/PET and a predicted
    segmentation); the paths only go into error messages.

    Raises
    ------
    InputDataError
        Not 3D single-channel images, label values outside {0, 1, 2}, or a CT not on the
        segmentation grid.
    """
    import SimpleITK as sitk

    pid = patient
    for image, what, path in ((seg_image, "segmentation", seg_path), (ct_image, "CT", ct_path),
                              (pet_image, "PET", pet_path)):
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise InputDataError(f"{what} must be a 3D single-channel image", pid, path)
    seg = sitk.GetArrayFromImage(seg_image)
    if np.issubdtype(seg.dtype, np.floating):
        if not np.all(seg == np.round(seg)):
            raise InputDataError("segmentation holds non-integer values", pid, seg_path)
    values = set(np.unique(seg).astype(int).tolist())
    if not values <= {0, schema.GTVP, schema.GTVN}:
        raise InputDataError(f"label values {sorted(values - {0, 1, 2})} outside {{0, 1, 2}}", pid, seg_path)
    if not same_grid(seg_image, ct_image):
        raise InputDataError(f"CT grid differs from the segmentation grid ({describe_grid_difference(seg_image, ct_image)}"
                             "); segmentations must lie on the CT grid", pid, seg_path)
    warnings = []
    pet_native = sitk.GetArrayViewFromImage(pet_image)
    if pet_native.size and float(np.percentile(pet_native[::2, ::2, ::2], 99)) > PET_SUV_P99_LIMIT:
        warnings.append(f"{pid or 'patient'}: PET 99th percentile above {PET_SUV_P99_LIMIT:g}; is it in Bq/mL "
                        f"instead of SUV? ({pet_path or 'PET image'})")
    # Only the lesions' bounding box (plus the SUVpeak ball) is needed: cropping before
    # resampling the PET saves most of the work on full-size CT grids.
    spacing_zyx = tuple(seg_image.GetSpacing())[::-1]
    margin = [k // 2 + 1 for k in ball_kernel(spacing_zyx).shape]
    box = bounding_box(seg > 0, pad=margin) or (slice(0, 1),) * 3
    index_xyz = [int(b.start) for b in box][::-1]
    size_xyz = [int(b.stop - b.start) for b in box][::-1]
    seg_roi = sitk.RegionOfInterest(seg_image, size_xyz, index_xyz)
    ct_roi = sitk.RegionOfInterest(ct_image, size_xyz, index_xyz)
    if same_grid(pet_image, seg_image):
        pet_roi = sitk.RegionOfInterest(pet_image, size_xyz, index_xyz)
    else:
        pet_roi = resample_pet_to_ct(pet_image, seg_roi, "linear")
    return LoadedPatient(
        ct=sitk.GetArrayFromImage(ct_roi).astype(np.float32, copy=False),
        pet=sitk.GetArrayFromImage(pet_roi).astype(np.float32, copy=False),
        seg=seg[box].astype(np.uint8), spacing_zyx=spacing_zyx, origin_xyz=tuple(seg_roi.GetOrigin()),
        direction=tuple(seg_image.GetDirection()), warnings=warnings,
    )


def match_patients(images_dir: str | Path, seg_dirs: list[str | Path]) -> tuple[list[PatientFiles], list[str]]:
    """Pair image files with segmentations.

    Returns
    -------
    (files, without_segmentation)
        One :class:`PatientFiles` per patient that has a segmentation, and the PatientIDs of
        patients with images but no segmentation (reported by the caller, never dropped silently).

    Raises
    ------
    HecktorError
        No patient has both images and a segmentation.
    """
    images = find_image_files(images_dir)
    segs = find_segmentations(seg_dirs, images)
    files = [PatientFiles(pid, ct, pet, segs[pid]) for pid, (ct, pet) in images.items() if pid in segs]
    without = sorted(set(images) - set(segs))
    if not files:
        raise HecktorError(f"no segmentation named <PatientID>.nii.gz in {', '.join(map(str, seg_dirs))} "
                           f"matches the {len(images)} patients of {images_dir}")
    return files, without
