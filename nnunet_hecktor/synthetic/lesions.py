"""Tumour and lymph-node parameters of a synthetic patient, and where nodes may be placed.

Lesions live in normalised anatomical coordinates (u left-right in units of the neck
half-width, v anterior-posterior in units of the neck half-depth, v < 0 anterior, t height
from the upper thorax, 0, to the vertex, 1) with sizes in real mm, so the same patient can be
rendered at any :class:`~nnunet_hecktor.synthetic.geometry.SizePreset`. Node positions are
chosen so that, at every preset, each node stays inside the neck and is its own connected
component of label 2 (never touching another node or the primary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nnunet_hecktor.synthetic.geometry import (
    CANONICAL_HEIGHT_MM,
    NECK_HALF_DEPTH_MM,
    NECK_HALF_WIDTH_MM,
    PLACEMENT_PRESETS,
    PROFILE_A_MM,
    PROFILE_B_MM,
    PROFILE_T,
    SIZE_PRESETS,
    SizePreset,
)


@dataclass
class Lesion:
    """An ellipsoidal blob with an irregular outline.

    ``position`` is in normalised anatomical coordinates (u, v, t) (see the module docstring),
    ``radii_mm`` the semi-axes (x, y, z) in real mm (a size preset may scale them),
    ``shape_terms`` the outline perturbation ``[(fx, fy, fz, amplitude, phase), ...]``: the
    outline radius in direction d is ``1 + sum(amplitude * cos(f . d + phase))``.
    ``suv_peak`` is the uptake at the centre before PSF blur and centre calibration.
    """

    kind: str  # "primary" | "node"
    position: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    suv_peak: float
    ct_contrast_hu: float
    shape_terms: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    necrotic_fraction: float = 0.0

    @property
    def volume_ml(self) -> float:
        """Volume of the generating ellipsoid in mL (the rendered mask differs by discretisation)."""
        rx, ry, rz = self.radii_mm
        return 4.0 / 3.0 * math.pi * rx * ry * rz / 1000.0



def _irregular_outline(rng: np.random.Generator, n_terms: int, amplitude: float):
    terms = []
    for _ in range(n_terms):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        frequency = rng.uniform(1.5, 3.5)
        terms.append((*(float(v) for v in direction * frequency), float(rng.uniform(0.3, 1.0) * amplitude),
                      float(rng.uniform(0, 2 * math.pi))))
    return terms


def _bounding_spheres(preset: SizePreset, anatomy: dict[str, float], positions: np.ndarray,
                      radii_mm, shape_terms) -> tuple[np.ndarray, float]:
    """World centres (k, 3), relative to the body origin (mm), of lesions at normalised
    ``positions`` (k, 3), and one radius enclosing the rendered lesion in ``preset`` (mirrors
    :func:`nnunet_hecktor.synthetic.anatomy.lesion_geometry`)."""
    unit = np.array([NECK_HALF_WIDTH_MM * preset.body_scale_xy * anatomy["width_scale"],
                     NECK_HALF_DEPTH_MM * preset.body_scale_xy * anatomy["depth_scale"],
                     CANONICAL_HEIGHT_MM * preset.body_scale_z])
    min_radius = preset.lesion_min_radius_vox * preset.ct_spacing_xy[1]
    radius = max(max(r * preset.lesion_scale, min_radius) for r in radii_mm)
    return np.atleast_2d(positions) * unit, radius * (1.0 + sum(abs(term[3]) for term in shape_terms))


_SPHERE_DIRECTIONS = np.array([(x, y, z) for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1)
                               if (x, y, z) != (0, 0, 0)], dtype=float)
_SPHERE_DIRECTIONS /= np.linalg.norm(_SPHERE_DIRECTIONS, axis=1, keepdims=True)


def _first_fitting_node(candidates: np.ndarray, radii_mm, shape_terms, others: list[Lesion],
                        anatomy: dict[str, float]) -> int | None:
    """Index of the first candidate position (k, 3) where a node fits, or None.

    A node must stay inside the neck (within the fat layer) and be separated from every other
    lesion by more than one CT voxel diagonal, so each node is its own connected component of
    label 2, at every size preset.
    """
    ok = np.ones(len(candidates), dtype=bool)
    for preset in (SIZE_PRESETS[name] for name in PLACEMENT_PRESETS):
        gap = math.sqrt(2 * preset.ct_spacing_xy[1] ** 2 + max(preset.ct_spacing_z) ** 2)
        centres, radius = _bounding_spheres(preset, anatomy, candidates, radii_mm, shape_terms)
        for other in others:
            other_centre, other_radius = _bounding_spheres(preset, anatomy, np.array(other.position),
                                                           other.radii_mm, other.shape_terms)
            ok &= np.linalg.norm(centres - other_centre, axis=1) >= radius + other_radius + gap
        points = centres[:, None, :] + radius * _SPHERE_DIRECTIONS[None]  # (k, 26, 3)
        t = points[..., 2] / (CANONICAL_HEIGHT_MM * preset.body_scale_z)
        a = np.interp(t, PROFILE_T, PROFILE_A_MM) * preset.body_scale_xy * anatomy["width_scale"]
        b = np.interp(t, PROFILE_T, PROFILE_B_MM) * preset.body_scale_xy * anatomy["depth_scale"]
        ok &= np.all((points[..., 0] / a) ** 2 + (points[..., 1] / b) ** 2 <= 0.88 ** 2, axis=1)
    hits = np.flatnonzero(ok)
    return int(hits[0]) if hits.size else None


def draw_lesions(rng: np.random.Generator, anatomy: dict[str, float]) -> tuple[Lesion | None, list[Lesion]]:
    """Draw the primary tumour (absent in ~3 % of patients) and 0-4 lymph nodes of one patient.

    ``anatomy`` holds the patient's body size factors (``width_scale``, ``depth_scale``), which
    the node placement needs to keep nodes inside the neck.
    """
    primary = None
    # A few patients have no visible primary (e.g. unknown primary / resected).
    if rng.random() > 0.03:
        r = float(np.exp(rng.normal(np.log(14.0), 0.30)))  # mean radius, ~11 mL median volume
        rx, ry, rz = (float(r * f) for f in rng.uniform(0.75, 1.25, size=3))
        radii = (rx, ry, rz)
        side = rng.choice([-1.0, 1.0])
        primary = Lesion(
            kind="primary",
            # Oropharynx / base of tongue: near the midline, slightly lateral, tonsil level.
            position=(float(side * rng.uniform(0.05, 0.30)), float(rng.uniform(-0.35, 0.05)),
                      float(rng.uniform(0.52, 0.60))),
            radii_mm=radii,
            suv_peak=float(np.clip(rng.normal(13.0, 3.5), 7.0, 22.0)),
            ct_contrast_hu=float(rng.uniform(15.0, 35.0)),
            shape_terms=_irregular_outline(rng, 4, 0.18),
            necrotic_fraction=float(rng.uniform(0.0, 0.35) if rng.random() < 0.3 else 0.0),
        )
    n_nodes = int(rng.choice([0, 1, 2, 3, 4], p=[0.22, 0.30, 0.24, 0.14, 0.10]))
    nodes: list[Lesion] = []
    for _ in range(n_nodes):
        r = float(np.clip(np.exp(rng.normal(np.log(8.5), 0.30)), 5.0, 18.0))
        rx, ry, rz = (float(r * f) for f in rng.uniform(0.8, 1.2, size=3))
        radii = (rx, ry, rz)
        suv = float(np.clip(rng.normal(5.8, 1.4), 3.5, 8.0))
        contrast = float(rng.uniform(5.0, 25.0))
        terms = _irregular_outline(rng, 3, 0.12)
        # Cervical levels II-IV (lateral neck, at and below the primary): the first free spot
        # among random candidates; a node that finds none is left out (node_count is what is
        # rendered).
        n_candidates = 40
        candidates = np.column_stack([
            rng.choice([-1.0, 1.0], size=n_candidates) * rng.uniform(0.35, 0.75, size=n_candidates),
            rng.uniform(-0.50, 0.35, size=n_candidates),
            rng.uniform(0.26, 0.58, size=n_candidates),
        ])
        hit = _first_fitting_node(candidates, radii, terms, nodes + ([primary] if primary else []), anatomy)
        if hit is not None:
            x, y, z = (float(v) for v in candidates[hit])
            nodes.append(Lesion(kind="node", position=(x, y, z), radii_mm=radii,
                                suv_peak=suv, ct_contrast_hu=contrast, shape_terms=terms))
    return primary, nodes
