"""The HECKTOR editions' contracts, in one place (docs/reference/editions.md).

HECKTOR changes its contract every year: folder layout, CSV names and columns, targets, label set,
what the container receives at test time, what it writes, and how it is scored. Each edition is
described here once, as data; the converter, the targets table, the patient-level models, the
container and the evaluator read it instead of branching on the year.

Sources: the organisers' repositories and challenge pages (HECKTOR 2021: voreille/hecktor; 2022:
hecktor.grand-challenge.org; 2025: BioMedIA-MBZUAI/HECKTOR2025; 2026: the HECKTOR2026 repository and
hecktor26.grand-challenge.org), summarised in docs/reference/editions.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nnunet_hecktor import schema

#: The edition the plugin assumes when a command is not told otherwise and cannot tell from the data.
DEFAULT_EDITION = "2025"


@dataclass(frozen=True)
class Edition:
    """One HECKTOR edition's contract.

    Attributes
    ----------
    name : str
        ``"2021"``, ``"2022"``, ``"2025"`` or ``"2026"``.
    labels : dict
        Label name -> value of the converted dataset (2021: GTVp only; later: GTVp 1, GTVn 2).
    csv_names : tuple of str
        File names (``fnmatch`` patterns, case-insensitive) of the release's clinical tables.
    column_aliases : dict
        Header as the release writes it -> the plugin's column (:mod:`nnunet_hecktor.schema`). Headers
        already spelled as the schema are not listed.
    targets : tuple of str
        Schema columns the edition scores as patient-level targets.
    test_inputs : tuple of str
        Clinical columns the container receives at test time (``ehr.json`` keys): the only columns a
        deployed model of this edition may take as inputs. ``CenterID`` is never a model input.
    container_outputs : dict
        Output name -> path under ``/output``.
    score_weights : dict
        Component -> weight of the edition's single ranking score; empty when the edition ranks
        each task separately.
    """

    name: str
    labels: dict[str, int]
    csv_names: tuple[str, ...]
    column_aliases: dict[str, str]
    targets: tuple[str, ...]
    test_inputs: tuple[str, ...]
    container_outputs: dict[str, Path]
    score_weights: dict[str, float] = field(default_factory=dict)

    @property
    def has_gtvn(self) -> bool:
        """True when the edition labels lymph nodes (label 2)."""
        return "GTVn" in self.labels

    def canonical_column(self, header: str) -> str:
        """The schema column of a release header (aliases applied; unknown headers returned stripped)."""
        text = " ".join(str(header).split())
        for alias, column in self.column_aliases.items():
            if text.lower() == alias.lower():
                return column
        return text


_INPUTS_2025 = (schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL,
                schema.COL_PERFORMANCE, schema.COL_TREATMENT, schema.COL_MSTAGE)
_INPUTS_2026 = (schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL,
                schema.COL_PERFORMANCE, schema.COL_TREATMENT, schema.COL_HPV)

EDITIONS: dict[str, Edition] = {
    "2021": Edition(
        name="2021",
        labels={"background": 0, "GTVp": 1},
        csv_names=("hecktor2021_patient_info_training.csv", "hecktor2021_patient_endpoint_training.csv",
                   "*patient_info*.csv", "*endpoint*.csv"),
        column_aliases={"Progression": schema.COL_RELAPSE, "Progression free survival": schema.COL_RFS,
                        "Gender (1=M,0=F)": schema.COL_GENDER, "HPV status (0=-, 1=+)": schema.COL_HPV,
                        "Tobacco": schema.COL_TOBACCO, "Alcohol": schema.COL_ALCOHOL,
                        "Performance status": schema.COL_PERFORMANCE, "T-stage": schema.COL_TSTAGE,
                        "N-stage": schema.COL_NSTAGE, "M-stage": schema.COL_MSTAGE},
        targets=(schema.COL_RELAPSE, schema.COL_RFS),
        test_inputs=(schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL,
                     schema.COL_PERFORMANCE, schema.COL_HPV),
        container_outputs={},
    ),
    "2022": Edition(
        name="2022",
        labels=dict(schema.LABELS),
        csv_names=("hecktor2022_clinical_info_training.csv", "hecktor2022_endpoint_training.csv",
                   "*clinical_info*.csv", "*endpoint*.csv"),
        column_aliases={"HPV status (0=-, 1=+)": schema.COL_HPV, "Tobacco": schema.COL_TOBACCO,
                        "Alcohol": schema.COL_ALCOHOL, "Performance status": schema.COL_PERFORMANCE},
        targets=(schema.COL_RELAPSE, schema.COL_RFS),
        test_inputs=(schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL,
                     schema.COL_PERFORMANCE, schema.COL_HPV),
        container_outputs={},
    ),
    "2025": Edition(
        name="2025",
        labels=dict(schema.LABELS),
        csv_names=("HECKTOR_2025_Training_Task_1.csv", "HECKTOR_2025_Training_Task_2.csv",
                   "HECKTOR_2025_Training_Task_3.csv", "hecktor_*task*.csv"),
        column_aliases={},
        targets=(schema.COL_RELAPSE, schema.COL_RFS, schema.COL_HPV),
        # The Task 2 test input carries no HPV status: a 2025 risk model must not take it.
        test_inputs=_INPUTS_2025,
        container_outputs={"segmentation": schema.SEGMENTATION_OUTPUT, "rfs": schema.RFS_OUTPUT,
                           "hpv": schema.HPV_OUTPUT},
    ),
    "2026": Edition(
        name="2026",
        labels=dict(schema.LABELS),
        csv_names=("HECKTOR_2026_Training_Task.csv", "HECKTOR_2026_Training.csv", "hecktor_2026*.csv"),
        column_aliases={"T_stage": schema.COL_TSTAGE, "N_stage": schema.COL_NSTAGE,
                        "T stage": schema.COL_TSTAGE, "N stage": schema.COL_NSTAGE},
        targets=(schema.COL_RELAPSE, schema.COL_RFS, schema.COL_TSTAGE, schema.COL_NSTAGE),
        # 2026 gives HPV status as an input (ehr.json) and drops M-stage.
        test_inputs=_INPUTS_2026,
        container_outputs={"segmentation": Path("images") / "head-neck-tumor-segmentation" / "output.mha",
                           "t_stage": Path("t-stage.json"), "n_stage": Path("n-stage.json"),
                           "rfs": Path("rfs.json")},
        # 0.25 x mean Dice (GTVp, GTVn) + 0.35 x mean balanced accuracy (T, N) + 0.40 x C-index.
        score_weights={"dice": 0.25, "stage_balanced_accuracy": 0.35, "c_index": 0.40},
    ),
}


def get_edition(name: str | int | None) -> Edition:
    """The contract of edition ``name`` (``"2026"`` or ``2026``); :data:`DEFAULT_EDITION` for None.

    Raises
    ------
    ValueError
        An unknown edition, naming the known ones.
    """
    key = DEFAULT_EDITION if name is None else str(name).strip()
    if key not in EDITIONS:
        raise ValueError(f"unknown HECKTOR edition {name!r} (known: {', '.join(sorted(EDITIONS))})")
    return EDITIONS[key]
