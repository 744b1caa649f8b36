"""The image-derived features of the prognosis stage: names, units, values for empty masks.

Structures: ``gtvp`` = label 1 (primary tumour), ``gtvn`` = label 2 (all nodes), ``total`` =
labels 1 and 2 together (the metabolic tumour volume, MTV). Every feature has a defined value
when its structure is absent (the ``empty`` column), and the indicators ``gtvp_present`` /
``gtvn_present`` say when that happened, so tables never hold NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnunet_hecktor.prognosis.lesion_measures import SUV_PEAK_RADIUS_MM
from nnunet_hecktor.prognosis.stage_geometry import STAGE_GEOMETRY_FEATURES

STRUCTURES: dict[str, tuple[int, ...]] = {"gtvp": (1,), "gtvn": (2,), "total": (1, 2)}

#: Columns of a feature table that are not features.
PATIENT_COLUMN = "PatientID"
SEG_SOURCE_COLUMN = "seg_source"
SEG_SOURCES: tuple[str, ...] = ("predicted", "ground_truth")

#: Network-head outputs merged from ``nnunet-hecktor predict``'s predictions.csv (renamed so
#: they never collide with this stage's own outputs).
HEAD_COLUMNS: dict[str, str] = {"hpv_probability": "net_hpv_probability", "risk": "net_risk"}


@dataclass(frozen=True)
class FeatureDefinition:
    """One column of the feature table."""

    name: str
    unit: str
    empty: float  #: value when the structure is absent
    description: str
    log_scale: bool = False  #: heavy right tail: models see log1p(value)


def _per_structure() -> list[FeatureDefinition]:
    defs: list[FeatureDefinition] = []
    for s, labels in STRUCTURES.items():
        what = {"gtvp": "GTVp (label 1)", "gtvn": "GTVn (label 2, all nodes)",
                "total": "GTVp and GTVn together"}[s]
        defs += [
            FeatureDefinition(f"{s}_volume_ml", "mL", 0.0, f"volume of {what}: voxel count x voxel volume", True),
            FeatureDefinition(f"{s}_surface_mm2", "mm^2", 0.0,
                              f"surface area of {what}: area of the IBSI marching-cubes mesh (iso-level "
                              "0.5 on the padded mask)", True),
            FeatureDefinition(f"{s}_sphericity", "1", 0.0,
                              f"IBSI sphericity pi^(1/3) (6 V)^(2/3) / A of {what}, V and A of the same mesh; "
                              "<= 1, 1 for a sphere, lower when elongated or spread over several components"),
            FeatureDefinition(f"{s}_suvmax", "SUV", 0.0, f"highest PET voxel value in {what}"),
            FeatureDefinition(f"{s}_suvmean", "SUV", 0.0, f"mean PET value in {what}"),
            FeatureDefinition(f"{s}_suvpeak", "SUV", 0.0,
                              f"highest mean PET value in a ball of radius {SUV_PEAK_RADIUS_MM:.2f} mm (1 mL) "
                              f"centred on a voxel of {what} (ball may extend beyond it)"),
            FeatureDefinition(f"{s}_tlg", "SUV*mL", 0.0, f"total lesion glycolysis: SUVmean x volume of {what}", True),
            FeatureDefinition(f"{s}_ct_mean_hu", "HU", 0.0, f"mean CT value in {what}"),
            FeatureDefinition(f"{s}_ct_std_hu", "HU", 0.0, f"standard deviation (population) of CT in {what}"),
        ]
    return defs


FEATURES: tuple[FeatureDefinition, ...] = tuple(
    [
        FeatureDefinition("gtvp_present", "0/1", 0.0, "1 when the segmentation holds label 1"),
        FeatureDefinition("gtvn_present", "0/1", 0.0, "1 when the segmentation holds label 2"),
        FeatureDefinition("gtvp_component_count", "count", 0.0, "26-connected components of label 1"),
        FeatureDefinition("gtvn_lesion_count", "count", 0.0, "26-connected components of label 2 (lesions)"),
        FeatureDefinition("gtvp_to_farthest_node_mm", "mm", 0.0,
                          "distance from the GTVp centroid to the farthest GTVn lesion centroid; 0 when "
                          "either is absent"),
        FeatureDefinition("lesion_spread_mm", "mm", 0.0,
                          "largest distance between two lesion centroids, lesions being GTVp (one centroid "
                          "for all of label 1) and each GTVn lesion; 0 with fewer than two lesions"),
    ]
    + _per_structure()
    # The geometry T and N staging read (AJCC 7 sizes, node count and sides): stage_geometry.py.
    + [FeatureDefinition(name, unit, 0.0, description, log_scale=unit == "mL")
       for name, (unit, description) in STAGE_GEOMETRY_FEATURES.items()]
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, FeatureDefinition] = {f.name: f for f in FEATURES}


def empty_features() -> dict[str, float]:
    """The feature values of a patient whose segmentation is empty."""
    return {f.name: f.empty for f in FEATURES}


def is_log_scale(column: str) -> bool:
    """Whether the models should see ``log1p`` of this column (volumes, areas, TLG)."""
    definition = FEATURES_BY_NAME.get(column)
    return bool(definition and definition.log_scale)


def catalogue_json() -> list[dict]:
    """The feature definitions as plain JSON (written into the feature table's sidecar)."""
    return [{"name": f.name, "unit": f.unit, "value_when_absent": f.empty, "description": f.description,
             "log_scale_in_models": f.log_scale} for f in FEATURES]
