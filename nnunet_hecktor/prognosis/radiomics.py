"""IBSI-conformant radiomics of the GTVp and the GTVn from MIRP (arrays in, dict of columns out).

MIRP (Medical Image Radiomics Processor, ``pip install mirp``) is a maintained library that
reproduces the IBSI reference values; this module only chooses its settings, feeds it one
structure at a time and names the columns. No feature is computed here.

Conventions
-----------
- Arrays are numpy ``(z, y, x)`` on one grid (the CT grid; PET already resampled onto it), CT in
  HU, PET in SUV, segmentation 0 background, 1 GTVp, 2 GTVn; ``spacing_zyx`` in mm.
- Structures: ``gtvp`` = label 1, ``gtvn`` = label 2 (all nodes together, as one ROI).
- Columns: ``rad_<structure>_<ibsi feature>`` for the morphology family (computed with the PET as
  the intensity image, which only ``morph_integ_int``, ``morph_moran_i`` and ``morph_geary_c``
  read) and ``rad_<structure>_<pet|ct>_<ibsi feature>`` for the intensity and texture families.
  The feature part is MIRP's name (e.g. ``morph_sphericity``, ``stat_mean``,
  ``cm_contrast_d1_3d_v_mrg``), which follows the IBSI nomenclature.
- Settings (:data:`SETTINGS`): no resampling (features on the CT grid, so texture depends on the
  voxel size: compare cohorts on the same grid); fixed bin size discretisation, 0.5 SUV from
  0 SUV for PET and 25 HU from -1000 HU for CT (the intensity mask keeps CT voxels in
  [-1000, 3000] HU and PET voxels >= 0 SUV); texture in 3D, one matrix merged over all
  directions (GLCM at distance 1 and GLRLM: ``3d_volume_merge``; GLSZM, GLDZM, NGTDM, NGLDM:
  ``3d``).
- A structure that is absent gives 0 in all of its columns (``gtvp_present`` / ``gtvn_present``
  say when); a feature that MIRP cannot define for an ROI (texture of a single voxel, say) is 0
  too, so the table never holds NaN.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.metrics.components import bounding_box

#: What ``nnunet-hecktor features --radiomics`` may add to the table.
RADIOMICS_LEVELS: tuple[str, ...] = ("none", "shape", "all")
#: The default: no MIRP features (the quick paths, demo and tests, stay as fast as before).
DEFAULT_RADIOMICS_LEVEL = "none"

#: Structures and their labels (as in the feature catalogue; ``total`` is left out: the GTVp and
#: the GTVn differ in texture, and their union is no single tissue).
RADIOMICS_STRUCTURES: dict[str, int] = {"gtvp": 1, "gtvn": 2}

#: Fixed bin widths of the discretisation (the common choice of HECKTOR radiomics studies).
PET_BIN_WIDTH_SUV = 0.5
CT_BIN_WIDTH_HU = 25.0
#: Intensity-mask ranges; their lower ends are the first bin's lower edge.
PET_RANGE_SUV: tuple[float, float] = (0.0, math.inf)
CT_RANGE_HU: tuple[float, float] = (-1000.0, 3000.0)

#: Texture families of level ``all`` and their spatial aggregation (MIRP/IBSI names).
TEXTURE_FAMILIES: tuple[str, ...] = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
_INTENSITY_FAMILIES: tuple[str, ...] = ("statistics", "intensity_histogram") + TEXTURE_FAMILIES

#: The settings handed to MIRP, for the feature table's sidecar JSON.
SETTINGS: dict[str, object] = {
    "library": "mirp",
    "resampling": "none (CT grid)",
    "discretisation": "fixed_bin_size",
    "pet_bin_width_suv": PET_BIN_WIDTH_SUV,
    "pet_intensity_range_suv": [PET_RANGE_SUV[0], None],
    "ct_bin_width_hu": CT_BIN_WIDTH_HU,
    "ct_intensity_range_hu": list(CT_RANGE_HU),
    "glcm": "distance 1, 3d_volume_merge", "glrlm": "3d_volume_merge",
    "glszm": "3d", "gldzm": "3d", "ngtdm": "3d", "ngldm": "distance 1, difference 0, 3d",
    "morphology_intensity_image": "PET",
}

#: MIRP's feature-name prefixes (everything else in its table is metadata).
_FEATURE_PREFIXES = ("morph_", "loc_", "stat_", "ih_", "cm_", "rlm_", "szm_", "dzm_", "ngt_", "ngl_")

INSTALL_HINT = ("radiomics features need the MIRP library: pip install 'mirp>=2.5,<2.6' "
                "(or reinstall nnunet-hecktor, which lists it)")


def mirp_available() -> bool:
    """Whether MIRP can be imported."""
    try:
        import mirp  # noqa: F401
    except ImportError:
        return False
    return True


def check_level(level: str) -> str:
    """Return ``level`` when it is one of :data:`RADIOMICS_LEVELS` and MIRP is there for it.

    Raises
    ------
    HecktorError
        Unknown level, or a level other than ``none`` without MIRP installed (says how to install it).
    """
    if level not in RADIOMICS_LEVELS:
        raise HecktorError(f"radiomics must be one of {', '.join(RADIOMICS_LEVELS)}, not {level!r}")
    if level != "none" and not mirp_available():
        raise HecktorError(INSTALL_HINT)
    return level


@contextmanager
def _quiet_mirp():
    # MIRP calls logging.basicConfig(level=INFO, stream=stdout) on every call, which would print a
    # line per ROI into the command's output: a handler on the root logger makes that a no-op and
    # the root level (WARNING unless the caller chose otherwise) drops MIRP's INFO lines.
    root = logging.getLogger()
    handler = logging.NullHandler()
    added = not root.handlers
    if added:
        root.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-ROI notes (e.g. no texture for one voxel): values become 0
            yield
    finally:
        if added:
            root.removeHandler(handler)


def _write_nifti(array: np.ndarray, spacing_zyx, path: Path) -> str:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    sitk.WriteImage(image, str(path))
    return str(path)


def _mirp_table(image: np.ndarray, mask: np.ndarray, spacing_zyx, modality: str, families: list[str],
                workdir: Path) -> dict[str, float]:
    """One MIRP run on one image and one binary mask: IBSI feature name -> value."""
    from mirp import extract_features

    pet = modality == "pt"
    low, high = PET_RANGE_SUV if pet else CT_RANGE_HU
    image_path = _write_nifti(np.asarray(image, dtype=np.float32), spacing_zyx, workdir / f"{modality}.nii.gz")
    mask_path = _write_nifti(np.asarray(mask, dtype=np.uint8), spacing_zyx, workdir / "mask.nii.gz")
    texture = any(f in TEXTURE_FAMILIES or f == "intensity_histogram" for f in families)
    options: dict[str, object] = {}
    if texture:
        options.update(
            base_discretisation_method="fixed_bin_size",
            base_discretisation_bin_width=PET_BIN_WIDTH_SUV if pet else CT_BIN_WIDTH_HU,
            glcm_distance=1.0, glcm_spatial_method="3d_volume_merge",
            glrlm_spatial_method="3d_volume_merge", glszm_spatial_method="3d",
            gldzm_spatial_method="3d", ngtdm_spatial_method="3d", ngldm_spatial_method="3d",
            ngldm_distance=1.0, ngldm_difference_level=0.0,
        )
    with _quiet_mirp():
        tables = extract_features(
            write_features=False, export_features=True, image=image_path, mask=mask_path,
            image_modality=modality, base_feature_families=families,
            resegmentation_intensity_range=[low, high if math.isfinite(high) else np.inf],
            **options,
        )
    if not tables:
        raise HecktorError(f"MIRP returned no features ({modality}, {int(np.count_nonzero(mask))} voxels)")
    row = tables[0].iloc[0]
    return {str(name): float(value) if value is not None else math.nan
            for name, value in row.items() if str(name).startswith(_FEATURE_PREFIXES)}


def _structure_features(ct: np.ndarray, pet: np.ndarray, mask: np.ndarray, spacing_zyx, level: str,
                        name: str) -> dict[str, float]:
    # Two voxels of margin: the ROI's neighbours matter to no IBSI feature, but MIRP pads anyway,
    # and a crop keeps the NIfTI files small (whole CT grids are ~50 M voxels).
    box = bounding_box(mask, pad=2)
    ct, pet, mask = ct[box], pet[box], mask[box]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nnunet_hecktor_radiomics_") as tmp:
        workdir = Path(tmp)
        pet_families = ["morphology"] + (list(_INTENSITY_FAMILIES) if level == "all" else [])
        for feature, value in _mirp_table(pet, mask, spacing_zyx, "pt", pet_families, workdir).items():
            column = f"rad_{name}_{feature}" if feature.startswith("morph_") else f"rad_{name}_pet_{feature}"
            out[column] = value
        if level == "all":
            for feature, value in _mirp_table(ct, mask, spacing_zyx, "ct", list(_INTENSITY_FAMILIES),
                                              workdir).items():
                out[f"rad_{name}_ct_{feature}"] = value
    return out


def _phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small ROI that every family can describe (used to learn MIRP's column names once)."""
    rng = np.random.default_rng(0)
    seg = np.zeros((7, 7, 7), dtype=np.uint8)
    seg[2:5, 2:5, 2:5] = 1
    seg[3, 3, 5] = 1
    pet = rng.uniform(0.0, 4.0, seg.shape)
    ct = rng.uniform(-100.0, 100.0, seg.shape)
    return ct, pet, seg


@lru_cache(maxsize=None)
def radiomics_feature_names(level: str) -> tuple[str, ...]:
    """The columns that level ``level`` adds to the feature table (empty for ``none``), in order.

    Learned once per process from MIRP itself on a small synthetic ROI, so they follow the
    installed MIRP version.
    """
    check_level(level)
    if level == "none":
        return ()
    ct, pet, seg = _phantom()
    names: list[str] = []
    for structure in RADIOMICS_STRUCTURES:
        names += list(_structure_features(ct, pet, seg > 0, (1.0, 1.0, 1.0), level, structure))
    return tuple(names)


def radiomics_features(ct: np.ndarray, pet: np.ndarray, seg: np.ndarray, spacing_zyx,
                       level: str = DEFAULT_RADIOMICS_LEVEL) -> dict[str, float]:
    """IBSI features of the GTVp and the GTVn of one patient, computed by MIRP.

    Parameters
    ----------
    ct, pet, seg : numpy arrays ``(z, y, x)`` on one grid
        CT in HU, PET in SUV, segmentation with 0 background, 1 GTVp, 2 GTVn.
    spacing_zyx : sequence of 3 floats
        Voxel size in mm, numpy order.
    level : {"none", "shape", "all"}
        ``shape``: the IBSI morphology family (mesh volume and area, sphericity, compactness, PCA
        axes, elongation, flatness, densities, Moran's I/Geary's C on PET...); ``all``: also the
        PET and CT intensity statistics, intensity histogram and texture (GLCM, GLRLM, GLSZM,
        GLDZM, NGTDM, NGLDM). Settings in :data:`SETTINGS`.

    Returns
    -------
    dict
        Column -> float for every name of :func:`radiomics_feature_names` (``level``); 0 for an
        absent structure and for features MIRP leaves undefined; no NaN.

    Raises
    ------
    HecktorError
        Unknown level, MIRP not installed, or MIRP failing on an ROI.
    """
    names = radiomics_feature_names(check_level(level))
    features = dict.fromkeys(names, 0.0)
    if level == "none":
        return features
    spacing_zyx = tuple(float(s) for s in spacing_zyx)
    for structure, label in RADIOMICS_STRUCTURES.items():
        mask = np.asarray(seg) == label
        if not mask.any():
            continue
        try:
            values = _structure_features(ct, pet, mask, spacing_zyx, level, structure)
        except HecktorError:
            raise
        except Exception as exc:  # MIRP's own errors carry no patient context: the caller adds it
            raise HecktorError(f"MIRP failed on the {structure} ({int(mask.sum())} voxels): "
                               f"{type(exc).__name__}: {exc}") from exc
        for column in names:
            value = values.get(column, math.nan)
            if column.startswith(f"rad_{structure}_"):
                features[column] = value if math.isfinite(value) else 0.0
    return features


__all__ = ["CT_BIN_WIDTH_HU", "CT_RANGE_HU", "DEFAULT_RADIOMICS_LEVEL", "INSTALL_HINT", "PET_BIN_WIDTH_SUV",
           "PET_RANGE_SUV", "RADIOMICS_LEVELS", "RADIOMICS_STRUCTURES", "SETTINGS", "TEXTURE_FAMILIES",
           "check_level", "mirp_available", "radiomics_feature_names", "radiomics_features"]
