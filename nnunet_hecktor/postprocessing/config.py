"""The post-processing configuration: one JSON file, every rule optional.

Schema (keys may be omitted; ``null``/absent = rule off; labels are keyed ``"GTVp"``/``"GTVn"``,
``"1"``/``"2"`` are accepted too)::

    {
      "format": "nnunet-hecktor-postprocessing", "version": 1,
      "connectivity": 26,                           # 6, 18 or 26: neighbourhood of components
      "probability_threshold": {"GTVp": 0.5, "GTVn": 0.4},
      "missing_probabilities": "error",             # or "skip": when <PID>.npz is absent
      "closing_radius_mm": {"GTVn": 2.0},
      "min_component_size": {"GTVp": 500, "GTVn": 50},
      "min_component_size_unit": "mm3",             # or "voxels"
      "cranial_border_components": ["GTVn"],       # or ["GTVp", "GTVn"]
      "caudal_border_components": ["GTVp"],
      "gtvp_single_lesion": "remove",               # or "to_gtvn"
      "gtvn_touching_gtvp": "remove",               # or "to_gtvp"
      "max_components": {"GTVn": 6},
      "gtvn_max_distance_mm": 60.0,
      "gtvn_distance_if_no_gtvp": "keep"            # or "remove"
    }

Two more keys are accepted and ignored: ``comment`` (free text) and ``tuning`` (the report that
``tune-postprocessing`` writes). Any other key is an error, so a misspelt rule never goes unnoticed.

The rules are applied in this fixed order (each on the output of the previous one):

1. ``probability_threshold`` (needs nnU-Net's softmax ``.npz``): a foreground label is a
   candidate at a voxel when its probability is >= its threshold (labels without a threshold:
   where nnU-Net's argmax chose them); the candidate with the highest probability wins, no
   candidate = background.
2. ``closing_radius_mm``: binary closing of each label with an ellipsoid of that radius in mm
   (voxel spacing taken into account); only background voxels are filled, never another label.
   The outside of the image counts as background.
3. ``min_component_size``: connected components of a label smaller than the threshold
   (strictly) are set to background (volume in mm³ or voxel count).
4. ``cranial_border_components``: components of the listed labels that touch the cranial
   face of the volume (the top slice of an axial head-and-neck scan, found from the image's
   direction) are set to background. Why: a HECKTOR field of view ends in the brain, whose
   physiological uptake (SUV ~7-12) is the classic false lesion, and no primary tumour or neck node
   reaches the top of the volume. On the demo's synthetic patients, 77 of seed 2's 107 false GTVn
   components on 110 new patients touched the top slice and the "keep K components" rule then
   kept them instead of smaller true nodes. The PET-threshold baselines mask the brain the same way
   (:func:`nnunet_hecktor.baselines.pet_rules.brain_mask`).
   ``caudal_border_components``: the same at the caudal face (the bottom slice). A HECKTOR field
   of view ends in the upper chest, where the heart and the mediastinum take up FDG; a primary
   head-and-neck tumour never reaches it, a low neck node may (so the tuning tries GTVp only).
   When the network takes such uptake for the GTVp and it is larger than a small true primary,
   the single-lesion rule keeps it and drops the primary (demo seed 1: 2 of 110 new patients).
5. ``gtvp_single_lesion``: the largest GTVp component is the primary tumour; every other GTVp
   component is set to background (``"remove"``) or relabelled GTVn (``"to_gtvn"``: a separate
   lesion away from the primary is taken for a node).
6. ``gtvn_touching_gtvp``: GTVn components that touch the GTVp (a voxel of the component is a
   neighbour of a GTVp voxel under ``connectivity``) are set to background (``"remove"``) or
   relabelled GTVp (``"to_gtvp"``: taken for part of the primary tumour). Why: a network short
   of training labels the rim or a lobe of the primary tumour GTVn, and such a "node" is a false
   positive of the detection metrics (on a synthetic benchmark model, 79 of 265 false GTVn
   components on 150 new patients touched the tumour; no true node did). Annotators delineate an
   involved node separately from the primary, so the tuning decides whether the rule helps.
7. ``max_components``: keep the K largest components of a label (equal sizes: raster order).
8. ``gtvn_max_distance_mm``: GTVn components whose smallest distance (between voxel centres,
   in mm) to any GTVp voxel exceeds D are removed. Without GTVp, ``gtvn_distance_if_no_gtvp``
   decides: ``"keep"`` all GTVn or ``"remove"`` all.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, TypeVar

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import write_json_atomic
from nnunet_hecktor.metrics.components import CONNECTIVITIES
from nnunet_hecktor.schema import GTVN, GTVP

FORMAT_NAME = "nnunet-hecktor-postprocessing"
FORMAT_VERSION = 2
#: Rules added in version 2 (0.3.0). Files that use none of them are written as version 1 (and
#: without their keys), so that plugins before 0.3.0 still read them.
VERSION_2_KEYS = ("cranial_border_components", "caudal_border_components", "gtvn_touching_gtvp")
_FIRST_VERSION = 1
LABEL_NAMES: dict[int, str] = {GTVP: "GTVp", GTVN: "GTVn"}
_LABEL_KEYS: dict[str, int] = {"gtvp": GTVP, "1": GTVP, "gtvn": GTVN, "2": GTVN}

SINGLE_LESION_MODES = ("remove", "to_gtvn")
TOUCHING_GTVN_MODES = ("remove", "to_gtvp")
SIZE_UNITS = ("mm3", "voxels")
MISSING_PROBABILITY_MODES = ("error", "skip")
NO_GTVP_MODES = ("keep", "remove")


class ConfigError(HecktorError):
    """The post-processing configuration is malformed."""


def parse_label_list(raw: Any, where: str) -> tuple[int, ...]:
    """Sorted label values of a JSON list of label names (``["GTVp", "GTVn"]``; ``None`` = empty)."""
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of labels like [\"GTVn\"], got {raw!r}")
    return tuple(sorted({_label(key, where) for key in raw}))


def _label(key: Any, where: str) -> int:
    label = _LABEL_KEYS.get(str(key).strip().lower())
    if label is None:
        raise ConfigError(f"{where}: unknown label {key!r} (use 'GTVp' or 'GTVn')")
    return label


def _per_label(raw: Any, where: str, kind: type, minimum: float, inclusive: bool = True) -> dict[int, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected an object like {{\"GTVp\": ..., \"GTVn\": ...}}, got {raw!r}")
    out = {}
    for key, value in raw.items():
        label = _label(key, where)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and float(value) != int(value)):
            raise ConfigError(f"{where}.{key}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        if not math.isfinite(float(value)) or float(value) < minimum or (not inclusive and float(value) == minimum):
            raise ConfigError(f"{where}.{key}: {value!r} must be {'>=' if inclusive else '>'} {minimum}")
        out[label] = kind(value)
    return out


_Default = TypeVar("_Default", str, None)


def _choice(raw: Any, where: str, allowed: tuple[str, ...], default: _Default) -> str | _Default:
    if raw is None:
        return default
    if raw not in allowed:
        raise ConfigError(f"{where}: {raw!r} is not one of {', '.join(allowed)}")
    return raw


@dataclass(frozen=True)
class PostprocessingConfig:
    """Post-processing rules (see the module docstring for the schema and the order of application).

    Per-label dicts are keyed by label value (1 GTVp, 2 GTVn); a label missing from a dict has
    that rule off. Distances and radii in mm, volumes in mm³ (or voxels).
    """

    connectivity: int = 26
    probability_threshold: dict[int, float] = field(default_factory=dict)
    missing_probabilities: str = "error"
    closing_radius_mm: dict[int, float] = field(default_factory=dict)
    min_component_size: dict[int, float] = field(default_factory=dict)
    min_component_size_unit: str = "mm3"
    cranial_border_components: tuple[int, ...] = ()
    caudal_border_components: tuple[int, ...] = ()
    gtvp_single_lesion: str | None = None
    gtvn_touching_gtvp: str | None = None
    max_components: dict[int, int] = field(default_factory=dict)
    gtvn_max_distance_mm: float | None = None
    gtvn_distance_if_no_gtvp: str = "keep"

    def __post_init__(self):
        # Re-validate through the dict route so that direct construction is checked as well.
        if self.connectivity not in CONNECTIVITIES:
            raise ConfigError(f"connectivity must be one of {CONNECTIVITIES}, got {self.connectivity!r}")
        _choice(self.missing_probabilities, "missing_probabilities", MISSING_PROBABILITY_MODES, None)
        _choice(self.min_component_size_unit, "min_component_size_unit", SIZE_UNITS, None)
        _choice(self.gtvp_single_lesion, "gtvp_single_lesion", SINGLE_LESION_MODES, None)
        _choice(self.gtvn_touching_gtvp, "gtvn_touching_gtvp", TOUCHING_GTVN_MODES, None)
        _choice(self.gtvn_distance_if_no_gtvp, "gtvn_distance_if_no_gtvp", NO_GTVP_MODES, None)
        for name in ("probability_threshold", "closing_radius_mm", "min_component_size", "max_components"):
            for label in getattr(self, name):
                if label not in LABEL_NAMES:
                    raise ConfigError(f"{name}: unknown label {label!r} (1 = GTVp, 2 = GTVn)")
        for name in ("cranial_border_components", "caudal_border_components"):
            labels = getattr(self, name)
            for label in labels:
                if label not in LABEL_NAMES:
                    raise ConfigError(f"{name}: unknown label {label!r} (1 = GTVp, 2 = GTVn)")
            # One canonical form (sorted, unique), so that equal configurations compare equal.
            object.__setattr__(self, name, tuple(sorted(set(labels))))
        for label, t in self.probability_threshold.items():
            if not 0.0 <= t <= 1.0:
                raise ConfigError(f"probability_threshold.{LABEL_NAMES[label]}: {t!r} outside [0, 1]")
        for label, k in self.max_components.items():
            if int(k) < 1:
                raise ConfigError(f"max_components.{LABEL_NAMES[label]}: must be >= 1, got {k!r}")
        if self.gtvn_max_distance_mm is not None and not self.gtvn_max_distance_mm >= 0:
            raise ConfigError(f"gtvn_max_distance_mm must be >= 0, got {self.gtvn_max_distance_mm!r}")

    # ----------------------------------------------------------------- JSON
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PostprocessingConfig":
        """Build from the JSON schema of the module docstring (unknown keys are an error)."""
        if not isinstance(data, Mapping):
            raise ConfigError("the post-processing configuration must be a JSON object")
        known = {f.name for f in fields(cls)} | {"format", "version", "tuning", "comment"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if data.get("format", FORMAT_NAME) != FORMAT_NAME:
            raise ConfigError(f"'format' is {data.get('format')!r}, expected {FORMAT_NAME!r}")
        if int(data.get("version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ConfigError(f"configuration version {data.get('version')} is newer than this plugin ({FORMAT_VERSION})")
        distance = data.get("gtvn_max_distance_mm")
        if distance is not None and (isinstance(distance, bool) or not isinstance(distance, (int, float))):
            raise ConfigError(f"gtvn_max_distance_mm: expected a number in mm, got {distance!r}")
        connectivity = data.get("connectivity", 26)
        if connectivity not in CONNECTIVITIES:
            raise ConfigError(f"connectivity must be one of {CONNECTIVITIES}, got {connectivity!r}")
        return cls(
            connectivity=int(connectivity),
            probability_threshold=_per_label(data.get("probability_threshold"), "probability_threshold", float, 0.0),
            missing_probabilities=_choice(data.get("missing_probabilities"), "missing_probabilities",
                                          MISSING_PROBABILITY_MODES, "error"),
            closing_radius_mm=_per_label(data.get("closing_radius_mm"), "closing_radius_mm", float, 0.0),
            min_component_size=_per_label(data.get("min_component_size"), "min_component_size", float, 0.0),
            min_component_size_unit=_choice(data.get("min_component_size_unit"), "min_component_size_unit",
                                            SIZE_UNITS, "mm3"),
            cranial_border_components=parse_label_list(data.get("cranial_border_components"),
                                                       "cranial_border_components"),
            caudal_border_components=parse_label_list(data.get("caudal_border_components"), "caudal_border_components"),
            gtvp_single_lesion=_choice(data.get("gtvp_single_lesion"), "gtvp_single_lesion", SINGLE_LESION_MODES, None),
            gtvn_touching_gtvp=_choice(data.get("gtvn_touching_gtvp"), "gtvn_touching_gtvp", TOUCHING_GTVN_MODES, None),
            max_components=_per_label(data.get("max_components"), "max_components", int, 1),
            gtvn_max_distance_mm=None if distance is None else float(distance),
            gtvn_distance_if_no_gtvp=_choice(data.get("gtvn_distance_if_no_gtvp"), "gtvn_distance_if_no_gtvp",
                                             NO_GTVP_MODES, "keep"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (labels by name), round-trips through :meth:`from_dict`."""

        def named(d):
            return {LABEL_NAMES[k]: v for k, v in sorted(d.items())}

        data = {
            "format": FORMAT_NAME,
            "version": _FIRST_VERSION,
            "connectivity": self.connectivity,
            "probability_threshold": named(self.probability_threshold),
            "missing_probabilities": self.missing_probabilities,
            "closing_radius_mm": named(self.closing_radius_mm),
            "min_component_size": named(self.min_component_size),
            "min_component_size_unit": self.min_component_size_unit,
            "gtvp_single_lesion": self.gtvp_single_lesion,
            "max_components": named(self.max_components),
            "gtvn_max_distance_mm": self.gtvn_max_distance_mm,
            "gtvn_distance_if_no_gtvp": self.gtvn_distance_if_no_gtvp,
        }
        for name in ("cranial_border_components", "caudal_border_components"):
            if getattr(self, name):
                data[name] = [LABEL_NAMES[k] for k in getattr(self, name)]
        if self.gtvn_touching_gtvp:
            data["gtvn_touching_gtvp"] = self.gtvn_touching_gtvp
        if any(key in data for key in VERSION_2_KEYS):
            data["version"] = FORMAT_VERSION
        return data

    # ------------------------------------------------------------ queries
    @property
    def needs_probabilities(self) -> bool:
        return bool(self.probability_threshold)

    def is_identity(self) -> bool:
        """True when no rule is on."""
        return self == PostprocessingConfig(connectivity=self.connectivity,
                                            missing_probabilities=self.missing_probabilities,
                                            min_component_size_unit=self.min_component_size_unit,
                                            gtvn_distance_if_no_gtvp=self.gtvn_distance_if_no_gtvp)

    def without_probability_threshold(self) -> "PostprocessingConfig":
        return replace(self, probability_threshold={})

    def describe(self) -> str:
        """One line per active rule, in the order they are applied."""
        lines = []
        names = LABEL_NAMES
        if self.probability_threshold:
            lines.append("probability threshold " + ", ".join(f"{names[k]} >= {v:g}" for k, v in
                                                               sorted(self.probability_threshold.items())))
        for k, v in sorted(self.closing_radius_mm.items()):
            if v > 0:
                lines.append(f"closing {names[k]} radius {v:g} mm")
        for k, v in sorted(self.min_component_size.items()):
            if v > 0:
                lines.append(f"remove {names[k]} components < {v:g} {self.min_component_size_unit}")
        for side in ("cranial", "caudal"):
            labels = getattr(self, f"{side}_border_components")
            if labels:
                lines.append(" and ".join(names[k] for k in labels) + f" components touching the {side} face of the "
                             "volume removed")
        if self.gtvp_single_lesion:
            action = "removed" if self.gtvp_single_lesion == "remove" else "relabelled GTVn"
            lines.append(f"GTVp single lesion: extra components {action}")
        if self.gtvn_touching_gtvp:
            action = "removed" if self.gtvn_touching_gtvp == "remove" else "relabelled GTVp"
            lines.append(f"GTVn components touching the GTVp {action}")
        for k, v in sorted(self.max_components.items()):
            lines.append(f"keep at most {v} {names[k]} components")
        if self.gtvn_max_distance_mm is not None:
            lines.append(f"remove GTVn components > {self.gtvn_max_distance_mm:g} mm from GTVp "
                         f"(no GTVp: {self.gtvn_distance_if_no_gtvp})")
        return "; ".join(lines) if lines else "no rule (identity)"


def load_config(path: str | os.PathLike) -> PostprocessingConfig:
    """Read a post-processing JSON file (``tune-postprocessing``'s output is accepted as is)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"post-processing configuration not found: {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    try:
        return PostprocessingConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(config: PostprocessingConfig, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> None:
    """Write ``config`` (plus ``extra`` top-level keys such as ``tuning``) atomically as JSON."""
    data = config.to_dict()
    data.update(extra or {})
    write_json_atomic(path, data)
