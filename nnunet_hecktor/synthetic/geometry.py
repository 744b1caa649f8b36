"""Image grids of the synthetic cohort: CT, PET, planning CT and dose grids per size preset.

As in the release, CT and PET differ in spacing, size, origin and extent; all directions are
identity. Grids use ITK (x, y, z) order for ``size``/``spacing``/``origin`` (mm, LPS), numpy
arrays use (z, y, x).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Canonical (real-size) body outline used by :mod:`~nnunet_hecktor.synthetic.anatomy`: half-width
#: a(t) and half-depth b(t) in mm at height t (0 = upper thorax, 1 = vertex).
PROFILE_T = np.array([-2.0, 0.10, 0.28, 0.40, 0.58, 0.70, 0.86])
PROFILE_A_MM = np.array([175.0, 175.0, 62.0, 58.0, 62.0, 76.0, 78.0])
PROFILE_B_MM = np.array([110.0, 110.0, 64.0, 60.0, 72.0, 95.0, 97.0])
CANONICAL_HEIGHT_MM = 420.0
#: Units of the normalised lesion/organ coordinates u (left-right) and v (anterior-posterior).
NECK_HALF_WIDTH_MM = 60.0
NECK_HALF_DEPTH_MM = 62.0


@dataclass(frozen=True)
class Grid:
    """A regular image grid with identity direction (sizes in voxels, lengths in mm)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axis(self, dim: int) -> np.ndarray:
        """Physical coordinates (mm) of the voxel centres along ITK axis ``dim`` (0=x, 1=y, 2=z)."""
        return self.origin[dim] + self.spacing[dim] * np.arange(self.size[dim], dtype=np.float64)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return (self.size[2], self.size[1], self.size[0])

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        x, y, z = (n * s for n, s in zip(self.size, self.spacing))
        return x, y, z

    def to_json(self) -> dict:
        return asdict(self)

    def image(self, array_zyx: np.ndarray):
        """Wrap a (z, y, x) array as a SimpleITK image on this grid."""
        import SimpleITK as sitk

        if array_zyx.shape != self.shape_zyx:
            raise ValueError(f"array shape {array_zyx.shape} does not match grid {self.shape_zyx}")
        image = sitk.GetImageFromArray(array_zyx)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        return image


@dataclass(frozen=True)
class SizePreset:
    """How big the synthetic volumes are and how the anatomy is scaled into them.

    ``body_scale_xy``/``body_scale_z`` shrink the canonical (real-size) anatomy so a
    test-size field of view still shows head, neck and shoulders; ``lesion_scale`` and
    ``lesion_min_radius_vox`` keep tumours a few voxels wide so a tiny nnU-Net can learn them.
    """

    name: str
    ct_size_xy: tuple[int, int]  # inclusive range
    ct_size_z: tuple[int, int]
    ct_spacing_xy: tuple[float, float]
    ct_spacing_z: tuple[float, ...]  # choices
    pet_spacing_xy: tuple[float, float]
    pet_spacing_z: tuple[float, float]
    dose_spacing: float
    body_scale_xy: float
    body_scale_z: float
    lesion_scale: float
    lesion_min_radius_vox: float
    pet_fwhm_scale: float
    z_chunk: int  # slices rendered at once (bounds memory at benchmark size)
    #: Height (in t, 0 = upper thorax, 1 = vertex) of the top CT slice: 1.04 shows the whole head;
    #: lower values crop the field of view to the neck (the body is placed lower in the grid).
    fov_top_t: float = 1.04


SIZE_PRESETS: dict[str, SizePreset] = {
    "test": SizePreset(
        name="test", ct_size_xy=(30, 32), ct_size_z=(22, 24), ct_spacing_xy=(4.7, 4.9),
        ct_spacing_z=(6.0,), pet_spacing_xy=(7.0, 8.0), pet_spacing_z=(7.0, 8.0), dose_spacing=8.0,
        body_scale_xy=0.75, body_scale_z=0.37, lesion_scale=0.8, lesion_min_radius_vox=1.5,
        pet_fwhm_scale=1.0, z_chunk=64,
    ),
    "benchmark": SizePreset(
        name="benchmark", ct_size_xy=(512, 512), ct_size_z=(180, 220), ct_spacing_xy=(0.95, 1.02),
        ct_spacing_z=(2.0, 3.0, 3.0, 3.0, 3.27), pet_spacing_xy=(3.9, 4.1), pet_spacing_z=(3.0, 4.0),
        dose_spacing=2.5, body_scale_xy=1.0, body_scale_z=1.0, lesion_scale=1.0, lesion_min_radius_vox=1.5,
        pet_fwhm_scale=1.0, z_chunk=16,
    ),
    # Real-size anatomy and lesions (as "benchmark") on a field of view cropped to the neck: from the
    # skull base with a little brain (t = 0.78) down to below the lowest node level (t ~ 0.22), ~160 mm
    # wide, at ~3.5 mm voxels. A node of the median radius (8.5 mm, 17 mm across) is ~5 voxels across,
    # the smallest (10 mm) ~3; the primary (~28 mm) ~8. 46x46x~57 voxels: CPU training stays feasible.
    "demo": SizePreset(
        name="demo", ct_size_xy=(45, 47), ct_size_z=(56, 58), ct_spacing_xy=(3.4, 3.6),
        ct_spacing_z=(4.0,), pet_spacing_xy=(4.0, 5.0), pet_spacing_z=(4.0, 5.0), dose_spacing=5.0,
        body_scale_xy=1.0, body_scale_z=1.0, lesion_scale=1.0, lesion_min_radius_vox=1.0,
        pet_fwhm_scale=1.0, z_chunk=64, fov_top_t=0.78,
    ),
}

#: Presets whose geometry constrains where nodes may be placed (:mod:`~nnunet_hecktor.synthetic.lesions`).
#: Only "test" and "benchmark", so adding a preset never changes what an existing seed draws. A new
#: preset must be implied by them: "demo" uses the "benchmark" body and lesion scales (same
#: neck-containment check, its minimum radius 1 voxel <= the smallest node semi-axis, 4 mm) and its
#: voxel diagonal (6.4 mm) is below the separation that "test" enforces in real mm (>= 12 mm).
PLACEMENT_PRESETS: tuple[str, ...] = ("test", "benchmark")


def size_preset(name: str) -> SizePreset:
    """Return the :class:`SizePreset` called ``name`` (``"test"``, ``"demo"`` or ``"benchmark"``)."""
    try:
        return SIZE_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown size {name!r}; choose one of {sorted(SIZE_PRESETS)}") from None


@dataclass(frozen=True)
class PatientGrids:
    """The grids of one patient. ``planning`` and ``dose`` exist for planning-CT patients only."""

    ct: Grid
    pet: Grid
    planning: Grid | None = None
    dose: Grid | None = None

    def to_json(self) -> dict:
        return {k: (None if g is None else g.to_json())
                for k, g in (("ct", self.ct), ("pet", self.pet), ("planning", self.planning), ("dose", self.dose))}


def _round(value: float, digits: int = 4) -> float:
    return float(round(float(value), digits))


def _covering_grid(rng: np.random.Generator, reference: Grid, spacing: tuple[float, float, float],
                   extent_factor: tuple[float, float], shift_mm: float) -> Grid:
    """A grid of the given spacing around the reference's centre, covering a bit more or
    less than it (per-axis factor), with its centre shifted by up to ``shift_mm``."""
    size, origin = [], []
    for d in range(3):
        extent = reference.extent_mm[d] * rng.uniform(*extent_factor)
        n = max(4, int(round(extent / spacing[d])))
        centre = reference.origin[d] + (reference.size[d] - 1) * reference.spacing[d] / 2
        centre += rng.uniform(-shift_mm, shift_mm)
        size.append(n)
        origin.append(_round(centre - (n - 1) * spacing[d] / 2, 3))
    return Grid((size[0], size[1], size[2]), spacing, (origin[0], origin[1], origin[2]))


def draw_grids(rng: np.random.Generator, preset: SizePreset, with_planning: bool) -> PatientGrids:
    """Draw the CT grid, then PET (coarser, other extent and origin) and optional planning/dose grids."""
    n_xy = int(rng.integers(preset.ct_size_xy[0], preset.ct_size_xy[1] + 1))
    n_z = int(rng.integers(preset.ct_size_z[0], preset.ct_size_z[1] + 1))
    s_xy = _round(rng.uniform(*preset.ct_spacing_xy), 6)
    s_z = float(rng.choice(preset.ct_spacing_z))
    # Scanner-style origin: x/y centred on the table, z an arbitrary table position.
    origin = (_round(-(n_xy - 1) * s_xy / 2 + rng.uniform(-5, 5), 3),
              _round(-(n_xy - 1) * s_xy / 2 + rng.uniform(-25, 5), 3),
              _round(rng.uniform(-900.0, -300.0), 2))
    ct = Grid((n_xy, n_xy, n_z), (s_xy, s_xy, s_z), origin)

    pet_spacing = (_round(rng.uniform(*preset.pet_spacing_xy)),) * 2 + (_round(rng.uniform(*preset.pet_spacing_z)),)
    pet = _covering_grid(rng, ct, pet_spacing, (0.9, 1.15), 0.05 * min(ct.extent_mm))
    planning = dose = None
    if with_planning:
        planning = _covering_grid(rng, ct, ct.spacing, (0.85, 1.0), 0.03 * min(ct.extent_mm))
        dose = _covering_grid(rng, planning, (preset.dose_spacing,) * 3, (0.5, 0.7), 0.02 * min(ct.extent_mm))
    return PatientGrids(ct, pet, planning, dose)
