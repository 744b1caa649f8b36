"""Head-and-neck phantom rendered in physical coordinates onto any grid (CT, PET, label, dose).

The anatomy is a canonical real-size body (mm) from the upper thorax (t = 0) to the vertex
(t = 1) that a :class:`~nnunet_hecktor.synthetic.geometry.SizePreset` may shrink to fit a
small field of view. Because every structure is a function of physical position, the CT,
the PET and the label agree wherever their grids overlap, whatever the grids are.

Tissue classes carry a CT value (HU) and an FDG uptake (SUV). Physiological uptake that can
fool a model (brain, tonsils, salivary glands, heart) is present in the PET but never
labelled. Lesions: the primary tumour (label 1, SUV peak 7-22, mild CT contrast) and lymph
nodes (label 2, SUV 3-8); both are irregular ellipsoids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_hecktor import schema
from nnunet_hecktor.synthetic.geometry import (
    CANONICAL_HEIGHT_MM,
    NECK_HALF_DEPTH_MM,
    NECK_HALF_WIDTH_MM,
    PROFILE_A_MM,
    PROFILE_B_MM,
    PROFILE_T,
    Grid,
    SizePreset,
)
from nnunet_hecktor.synthetic.image_factors import ENE_RIM_REACH, ENE_RIM_UPTAKE, HETEROGENEITY_TEXTURE
from nnunet_hecktor.synthetic.lesions import Lesion
from nnunet_hecktor.synthetic.patients import SyntheticPatient

# Tissue classes: (name, HU). SUV of the physiological classes is per patient.
AIR, FAT, SOFT, BONE, MARROW, BRAIN, LUNG, TONSIL, SALIVARY, HEART, CANAL = range(11)
TISSUE_HU = np.array([-1000, -100, 40, 900, 350, 35, -850, 45, 30, 40, 15], dtype=np.float32)
_BASE_SUV = np.array([0.0, 0.35, 0.9, 0.5, 0.9, 0.0, 0.4, 0.0, 0.0, 0.0, 0.5], dtype=np.float32)


@dataclass(frozen=True)
class BodyFrame:
    """Where the canonical anatomy sits in world coordinates (mm) and how it is scaled."""

    cx: float
    cy: float
    z0: float  #: world z of t = 0
    height: float  #: world mm per unit of t
    neck_a: float  #: half-width of the neck (mm), unit of the lesion/organ u coordinate
    neck_b: float  #: half-depth of the neck (mm), unit of v
    scale_xy: float
    scale_a: float  #: scale_xy * patient width factor
    scale_b: float
    lesion_scale: float
    lesion_min_radius: float  #: mm

    def world(self, position: tuple[float, float, float]) -> tuple[float, float, float]:
        """World (x, y, z) of normalised anatomical coordinates (u, v, t); v < 0 is anterior."""
        u, v, t = position
        return (self.cx + u * self.neck_a, self.cy + v * self.neck_b, self.z0 + t * self.height)


def body_frame(patient: SyntheticPatient, preset: SizePreset, ct: Grid) -> BodyFrame:
    """Place the patient's body in the CT field of view (the top slice at height ``preset.fov_top_t``:
    just above the vertex by default, lower for presets cropped to the neck)."""
    an = patient.anatomy
    cx = ct.origin[0] + (ct.size[0] - 1) * ct.spacing[0] / 2 + an["neck_shift_x_mm"] * preset.body_scale_xy
    cy = ct.origin[1] + (ct.size[1] - 1) * ct.spacing[1] / 2 + an["neck_shift_y_mm"] * preset.body_scale_xy
    height = CANONICAL_HEIGHT_MM * preset.body_scale_z
    z_top = ct.origin[2] + (ct.size[2] - 1) * ct.spacing[2]
    scale_a = preset.body_scale_xy * an["width_scale"]
    scale_b = preset.body_scale_xy * an["depth_scale"]
    return BodyFrame(
        cx=cx, cy=cy, z0=z_top - preset.fov_top_t * height, height=height,
        neck_a=NECK_HALF_WIDTH_MM * scale_a, neck_b=NECK_HALF_DEPTH_MM * scale_b,
        scale_xy=preset.body_scale_xy, scale_a=scale_a, scale_b=scale_b, lesion_scale=preset.lesion_scale,
        lesion_min_radius=preset.lesion_min_radius_vox * min(ct.spacing[:2]),
    )


def _ellipsoid(x, y, z, centre, radii):
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 <= 1.0


def _tissue_slab(frame: BodyFrame, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """Tissue class map (z, y, x) at the given world coordinates (already shifted to the body)."""
    t = (zs - frame.z0) / frame.height
    dome = np.sqrt(np.clip(1.0 - np.clip((t - 0.86) / 0.16, 0.0, None) ** 2, 0.0, None))
    a = np.interp(t, PROFILE_T, PROFILE_A_MM) * frame.scale_a * dome
    b = np.interp(t, PROFILE_T, PROFILE_B_MM) * frame.scale_b * dome
    X = (xs - frame.cx)[None, None, :]
    Y = (ys - frame.cy)[None, :, None]
    Z = zs[:, None, None]
    T = t[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho2 = (X / a[:, None, None]) ** 2 + (Y / b[:, None, None]) ** 2
    rho2 = np.where(np.isfinite(rho2), rho2, np.inf)
    body = rho2 <= 1.0

    tissue = np.full(rho2.shape, AIR, dtype=np.int8)
    tissue[body] = SOFT
    tissue[body & (rho2 > 0.90 ** 2)] = FAT  # subcutaneous fat layer

    A, B = frame.neck_a, frame.neck_b
    t_lo, t_hi = float(t.min()), float(t.max())

    def spans(lo: float, hi: float) -> bool:
        # Skip structures outside this slab: at benchmark size most slabs hold few of them.
        return t_hi >= lo and t_lo <= hi

    # Cervical/thoracic spine: vertebral bodies separated by discs, canal behind them.
    spine_r = 0.22 * A
    spine_y = 0.40 * B
    period = 0.05 * frame.height
    if spans(-np.inf, 0.70):
        below_skull = T < 0.70
        vertebra = ((Z - frame.z0) % period) > 0.2 * period
        d_spine2 = X ** 2 + (Y - spine_y) ** 2
        tissue[below_skull & vertebra & (d_spine2 <= spine_r ** 2)] = BONE
        tissue[below_skull & vertebra & (d_spine2 <= (0.7 * spine_r) ** 2)] = MARROW
        canal_y = spine_y + 1.45 * spine_r
        d_canal2 = X ** 2 + (Y - canal_y) ** 2
        tissue[below_skull & (d_canal2 <= (0.75 * spine_r) ** 2)] = BONE  # neural arch
        tissue[below_skull & (d_canal2 <= (0.45 * spine_r) ** 2)] = CANAL

    # Airway (trachea/pharynx), anterior in the neck.
    airway = (T > -0.5) & (T < 0.66) & (X ** 2 + (Y + 0.35 * B) ** 2 <= (0.13 * A) ** 2)
    tissue[airway & body] = AIR

    # Mandible: anterior half of an elliptic ring at the level of the floor of the mouth.
    if spans(0.57, 0.65):
        ring = (X / (0.80 * A)) ** 2 + ((Y + 0.05 * B) / (0.95 * B)) ** 2
        mandible = (T > 0.57) & (T < 0.65) & (ring >= 0.80) & (ring <= 1.0) & (Y < -0.05 * B)
        tissue[mandible & body] = BONE

    # Skull and brain.
    if spans(0.70, np.inf):
        head = T >= 0.70
        tissue[head & body & (rho2 <= 0.88 ** 2) & (rho2 > 0.80 ** 2)] = BONE
        tissue[head & (T >= 0.74) & (rho2 <= 0.80 ** 2)] = BRAIN

    # Lungs (apices reach the lower neck) and heart: only in big fields of view.
    if spans(-np.inf, 0.14):
        lung_size = np.sqrt(np.clip((0.14 - T) / 0.12, 0.0, 1.0))
        for side in (-1.0, 1.0):
            lx, ly = 80.0 * frame.scale_a, 65.0 * frame.scale_b
            with np.errstate(divide="ignore", invalid="ignore"):
                lung = ((X - side * 85.0 * frame.scale_a) / (lx * lung_size)) ** 2 + (Y / (ly * lung_size)) ** 2 <= 1.0
            tissue[lung & body & (tissue == SOFT)] = LUNG
    heart_radii = (55.0 * frame.scale_a, 45.0 * frame.scale_b, 50.0 * frame.scale_xy)
    heart_c = (frame.cx + 25.0 * frame.scale_a, frame.cy - 30.0 * frame.scale_b, frame.z0 - 0.40 * frame.height)
    if abs(zs - heart_c[2]).min() <= heart_radii[2]:
        heart = _ellipsoid(xs[None, None, :], ys[None, :, None], Z, heart_c, heart_radii)
        tissue[heart & body] = HEART

    # Physiological uptake that is not tumour: palatine tonsils and salivary glands.
    s = frame.scale_xy
    organs = [
        (TONSIL, (0.28, -0.10, 0.575), (11.0 * s, 11.0 * s, 13.0 * s)),
        (SALIVARY, (0.80, 0.05, 0.65), (13.0 * s, 18.0 * s, 20.0 * s)),  # parotids
        (SALIVARY, (0.55, -0.45, 0.53), (10.0 * s, 10.0 * s, 10.0 * s)),  # submandibular
    ]
    for cls, (u, v, tt), radii in organs:
        for side in (-1.0, 1.0):
            centre = frame.world((side * u, v, tt))
            if abs(zs - centre[2]).min() > radii[2]:
                continue
            inside = _ellipsoid(xs[None, None, :], ys[None, :, None], Z, centre, radii)
            tissue[inside & body & ((tissue == SOFT) | (tissue == FAT))] = cls
    return tissue


def render_tissue(frame: BodyFrame, grid: Grid, shift_mm=(0.0, 0.0, 0.0), z_chunk: int = 64):
    """Yield ``(z_slice, tissue_class_slab)`` over the grid in chunks of ``z_chunk`` slices.

    ``shift_mm`` moves the patient relative to the scanner (planning CT repositioning).
    """
    xs = grid.axis(0) - shift_mm[0]
    ys = grid.axis(1) - shift_mm[1]
    zs = grid.axis(2) - shift_mm[2]
    for start in range(0, grid.size[2], z_chunk):
        sl = slice(start, min(start + z_chunk, grid.size[2]))
        yield sl, _tissue_slab(frame, xs, ys, zs[sl])


def lesion_geometry(frame: BodyFrame, lesion: Lesion):
    """World centre and semi-axes (mm) of a lesion after size scaling and the minimum radius."""
    centre = frame.world(lesion.position)
    radii = tuple(max(r * frame.lesion_scale, frame.lesion_min_radius) for r in lesion.radii_mm)
    return centre, radii


def lesion_field(frame: BodyFrame, lesion: Lesion, grid: Grid, shift_mm=(0.0, 0.0, 0.0), reach: float = 1.0):
    """Bounding-box slices and the normalised radial coordinate ``q`` (inside where q <= 1); ``reach``
    widens the box to hold ``q <= reach`` (the rich world's extranodal rim)."""
    centre, radii = lesion_geometry(frame, lesion)
    centre = tuple(c + s for c, s in zip(centre, shift_mm))
    margin = (1.0 + sum(abs(term[3]) for term in lesion.shape_terms)) * reach
    box = []
    for d in range(3):
        lo = math.floor((centre[d] - margin * radii[d] - grid.origin[d]) / grid.spacing[d])
        hi = math.ceil((centre[d] + margin * radii[d] - grid.origin[d]) / grid.spacing[d]) + 1
        lo, hi = max(lo, 0), min(hi, grid.size[d])
        if lo >= hi:
            return None, None
        box.append(slice(lo, hi))
    nx = (grid.axis(0)[box[0]] - centre[0]) / radii[0]
    ny = (grid.axis(1)[box[1]] - centre[1]) / radii[1]
    nz = (grid.axis(2)[box[2]] - centre[2]) / radii[2]
    NX, NY, NZ = nx[None, None, :], ny[None, :, None], nz[:, None, None]
    dist = np.sqrt(NX ** 2 + NY ** 2 + NZ ** 2)
    safe = np.where(dist > 0, dist, 1.0)
    outline = np.ones_like(dist)
    for fx, fy, fz, amplitude, phase in lesion.shape_terms:
        outline += amplitude * np.cos((fx * NX + fy * NY + fz * NZ) / safe + phase)
    return (box[2], box[1], box[0]), dist / outline


def render_label(patient: SyntheticPatient, frame: BodyFrame, grid: Grid) -> np.ndarray:
    """uint8 label (z, y, x) on ``grid``: 1 = primary tumour (GTVp), 2 = lymph nodes (GTVn)."""
    label = np.zeros(grid.shape_zyx, dtype=np.uint8)
    lesions = [(n, schema.GTVN) for n in patient.nodes]
    if patient.primary is not None:
        lesions.append((patient.primary, schema.GTVP))  # last: the primary wins where they touch
    for lesion, value in lesions:
        box, q = lesion_field(frame, lesion, grid)
        if box is not None:
            label[box][q <= 1.0] = value
    return label


def render_ct(patient: SyntheticPatient, frame: BodyFrame, grid: Grid, rng: np.random.Generator,
              noise_hu: float, z_chunk: int, shift_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """CT in HU (int16, (z, y, x)): tissue values, lesions with mild contrast, Gaussian noise."""
    ct = np.empty(grid.shape_zyx, dtype=np.int16)
    lesions = list(patient.nodes) + ([patient.primary] if patient.primary is not None else [])
    hu = np.empty(grid.shape_zyx, dtype=np.float32)
    for sl, tissue in render_tissue(frame, grid, shift_mm, z_chunk):
        hu[sl] = TISSUE_HU[tissue]
    for lesion in lesions:
        box, q = lesion_field(frame, lesion, grid, shift_mm)
        if box is not None:
            hu[box][q <= 1.0] = TISSUE_HU[SOFT] + lesion.ct_contrast_hu
    if patient.image_factors is not None:
        _rich_ct(patient, frame, grid, hu, rng, shift_mm)
    for start in range(0, grid.size[2], z_chunk):
        sl = slice(start, min(start + z_chunk, grid.size[2]))
        slab = hu[sl] + np.float32(noise_hu) * rng.standard_normal(size=hu[sl].shape, dtype=np.float32)
        ct[sl] = np.clip(np.rint(slab), -1024, 3071).astype(np.int16)
    return ct


def _ene_rim(patient: SyntheticPatient, frame: BodyFrame, grid: Grid, rng: np.random.Generator, shift_mm=(0.0, 0.0, 0.0)):
    """The rich world's extranodal extension: ``(box, q, strands)`` of the ENE node's spiculated rim
    (``1 < q <= 1 + ENE_RIM_REACH`` where smooth noise is positive), or None without ENE."""
    assert patient.image_factors is not None  # called for rich-world patients only
    index = patient.image_factors.get("ene_node")
    if index is None:
        return None
    reach = 1.0 + ENE_RIM_REACH
    box, q = lesion_field(frame, patient.nodes[index], grid, shift_mm, reach=reach)
    if box is None:
        return None
    strands = (q > 1.0) & (q <= reach) & (_smooth_noise(rng, q.shape, 0.8) > 0.0)
    return box, q, strands


def _rich_ct(patient: SyntheticPatient, frame: BodyFrame, grid: Grid, hu: np.ndarray, rng: np.random.Generator,
             shift_mm) -> None:
    """Rich world (:mod:`.image_factors`): hypodense necrotic/cystic cores, strands of denser tissue
    around a node with extranodal extension (fat -> soft tissue, soft tissue +20 HU)."""
    lesions = list(patient.nodes) + ([patient.primary] if patient.primary is not None else [])
    for lesion in lesions:
        if lesion.necrotic_fraction > 0:
            box, q = lesion_field(frame, lesion, grid, shift_mm)
            if box is not None:
                hu[box][q < lesion.necrotic_fraction] = TISSUE_HU[SOFT] + lesion.ct_contrast_hu - 30.0
    rim = _ene_rim(patient, frame, grid, rng, shift_mm)
    if rim is not None:
        box, _, strands = rim
        region = hu[box]
        # Fat becomes soft tissue, soft tissue a little denser; bone, air and other lesions stay.
        fat = strands & (region >= TISSUE_HU[FAT]) & (region < TISSUE_HU[SOFT])
        soft = strands & (region == TISSUE_HU[SOFT])
        region[fat] = TISSUE_HU[SOFT]
        region[soft] = TISSUE_HU[SOFT] + 20.0


def _smooth_noise(rng: np.random.Generator, shape, sigma_vox: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma_vox, mode="wrap")
    std = field.std()
    return field / std if std > 0 else field


def render_pet(patient: SyntheticPatient, frame: BodyFrame, grid: Grid, rng: np.random.Generator,
               fwhm_mm: float, calibration: float, z_chunk: int) -> np.ndarray:
    """PET in SUV (float32, (z, y, x)): physiological uptake + lesions, blurred by the PSF,
    scaled by the centre's calibration factor, with count noise."""
    an = patient.anatomy
    suv_lut = _BASE_SUV.copy()
    suv_lut[BRAIN] = an["brain_suv"]
    suv_lut[TONSIL] = an["tonsil_suv"]
    suv_lut[SALIVARY] = an["salivary_suv"]
    suv_lut[HEART] = an["liver_suv"] * 2.0
    suv = np.empty(grid.shape_zyx, dtype=np.float32)
    for sl, tissue in render_tissue(frame, grid, z_chunk=z_chunk):
        suv[sl] = suv_lut[tissue]

    lesions = list(patient.nodes) + ([patient.primary] if patient.primary is not None else [])
    factors = patient.image_factors
    for lesion in lesions:
        box, q = lesion_field(frame, lesion, grid)
        if box is None:
            continue
        inside = q <= 1.0
        # Peak at the centre falling to ~55 % at the edge, with smooth heterogeneity and an
        # optional necrotic (cold) core.
        texture = 0.12
        if factors is not None and lesion.kind == "primary":
            texture = HETEROGENEITY_TEXTURE[0] + HETEROGENEITY_TEXTURE[1] * factors["heterogeneity"]
        uptake = lesion.suv_peak * (1.0 - 0.45 * q ** 2) * (1.0 + texture * _smooth_noise(rng, q.shape, 1.0))
        if lesion.necrotic_fraction > 0:
            uptake = np.where(q < lesion.necrotic_fraction, 0.25 * lesion.suv_peak, uptake)
        region = suv[box]
        region[inside] = np.maximum(region[inside], uptake[inside].astype(np.float32))
    if factors is not None and (rim := _ene_rim(patient, frame, grid, rng)) is not None:
        box, q, strands = rim
        peak = patient.nodes[factors["ene_node"]].suv_peak
        rim_uptake = (ENE_RIM_UPTAKE * peak * (1.0 - (q - 1.0) / ENE_RIM_REACH)).astype(np.float32)
        region = suv[box]
        region[strands] = np.maximum(region[strands], rim_uptake[strands])

    sigma_vox = [fwhm_mm / 2.3548 / s for s in grid.spacing[::-1]]
    blurred = ndimage.gaussian_filter(suv, sigma_vox, mode="constant", cval=0.0) * calibration
    # Poisson-like noise: standard deviation grows with the square root of the activity.
    noise = _smooth_noise(rng, blurred.shape, 0.7) * 0.12 * np.sqrt(np.clip(blurred, 0.0, None))
    return np.clip(blurred + noise, 0.0, None).astype(np.float32)


def render_dose(patient: SyntheticPatient, frame: BodyFrame, grid: Grid, shift_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Planned dose in Gy (float32, (z, y, x)): 70 Gy to the lesions with a margin, 54 Gy to the
    elective neck, smooth fall-off, zero outside the body."""
    body = np.zeros(grid.shape_zyx, dtype=bool)
    for sl, tissue in render_tissue(frame, grid, shift_mm, z_chunk=64):
        body[sl] = tissue != AIR
    xs = grid.axis(0)[None, None, :] - shift_mm[0] - frame.cx
    zs = grid.axis(2)[:, None, None] - shift_mm[2]
    t = (zs - frame.z0) / frame.height
    dose = np.where((np.abs(xs) < 0.85 * frame.neck_a) & (t > 0.20) & (t < 0.62), 54.0, 0.0) * np.ones(grid.shape_zyx)
    lesions = list(patient.nodes) + ([patient.primary] if patient.primary is not None else [])
    for lesion in lesions:
        box, q = lesion_field(frame, lesion, grid, shift_mm)
        if box is not None:
            dose[box][q <= 1.4] = 70.0  # planning target volume: lesion plus a margin
    sigma_vox = [6.0 / s for s in grid.spacing[::-1]]
    dose = ndimage.gaussian_filter(dose, sigma_vox, mode="constant") * body
    return dose.astype(np.float32)
