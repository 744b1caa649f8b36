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

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

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
    image_suffixes : dict
        File role (``ct``, ``pet``, ``label``, ``ct_planning``, ``rtdose``) -> the suffixes after the
        PatientID in its file name, before the extension (case-insensitive). ``""`` means the bare
        ``<PID>`` (the label from 2022 on); 2021 writes ``<PID>_ct``, ``<PID>_pt``, ``<PID>_ct_gtvt``.
    patient_id_pattern : re.Pattern
        What a PatientID of the edition looks like (``CHUP-000``; 2021: ``CHGJ007``); others are warned.
    patient_id_form : str
        The same, in words (for the warnings).
    label_values : tuple of int
        Label values the release's label files hold (2021: the primary tumour only, ``(0, 1)``).
    other_tables : tuple of str
        ``fnmatch`` patterns of CSVs of the release that are not clinical tables (2021's bounding
        boxes): named in the conversion summary, not read.
    markers : tuple of str
        ``fnmatch`` patterns (case-insensitive) of file and folder names found only in this edition's
        release: ``convert`` detects the edition from them (:func:`detect_edition`).
    image_folders : tuple of str
        Folders of the release that hold the images (below the release root), for the documentation and
        the detection; the layout itself is found from file names.
    """

    name: str
    labels: dict[str, int]
    csv_names: tuple[str, ...]
    column_aliases: dict[str, str]
    targets: tuple[str, ...]
    test_inputs: tuple[str, ...]
    container_outputs: dict[str, Path]
    score_weights: dict[str, float] = field(default_factory=dict)
    image_suffixes: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(MODERN_IMAGE_SUFFIXES))
    patient_id_pattern: re.Pattern = schema.PATIENT_ID_PATTERN
    patient_id_form: str = "<CENTRE>-<NNN> (e.g. CHUP-000)"
    label_values: tuple[int, ...] = tuple(schema.LABELS.values())
    other_tables: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    image_folders: tuple[str, ...] = ()

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

    def is_clinical_csv_name(self, name: str) -> bool:
        """True when ``name`` is one of the edition's clinical CSV names (:attr:`csv_names`)."""
        return _matches(name, self.csv_names)

    def is_other_table_name(self, name: str) -> bool:
        """True when ``name`` is a CSV of the release that is not a clinical table (:attr:`other_tables`)."""
        return _matches(name, self.other_tables)

    def split_image_name(self, name: str) -> tuple[str, str] | None:
        """``(patient_id, role)`` of an image file name of this edition, ``None`` for anything else.

        ``"CHUP-000__CT.nii.gz"`` -> ``("CHUP-000", "ct")``, ``"CHUP-000.nii.gz"`` -> ``("CHUP-000", "label")``;
        2021: ``"CHGJ007_ct_gtvt.nii.gz"`` -> ``("CHGJ007", "label")``. Extensions: :data:`IMAGE_EXTENSIONS`.
        """
        if name.startswith("."):
            return None
        lower = name.lower()
        extension = next((e for e in IMAGE_EXTENSIONS if lower.endswith(e)), None)
        if extension is None:
            return None
        stem = name[: -len(extension)]
        suffixes = sorted(((s, role) for role, spelled in self.image_suffixes.items() for s in spelled if s),
                          key=lambda item: -len(item[0]))
        for suffix, role in suffixes:
            if stem.lower().endswith(suffix.lower()) and len(stem) > len(suffix):
                return stem[: -len(suffix)], role
        # The bare <PID> is the label only where the edition names it so, and never a name with the
        # modality separator of an unknown modality (<PID>__SEG is not a patient "<PID>__SEG").
        if "" in self.image_suffixes.get("label", ()) and stem and "__" not in stem:
            return stem, "label"
        return None


#: Image file extensions every edition's files may have.
IMAGE_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".mha")
#: 2022 and later: ``<PID>__CT``, ``<PID>__PT``, ``<PID>__CTPlanning``, ``<PID>__RTDOSE``, label ``<PID>``.
MODERN_IMAGE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "ct": (schema.MODALITY_SUFFIXES["CT"],), "pet": (schema.MODALITY_SUFFIXES["PET"],),
    "ct_planning": (schema.MODALITY_SUFFIXES["CT_PLANNING"],), "rtdose": (schema.MODALITY_SUFFIXES["RTDOSE"],),
    "label": ("",),
}
#: 2021: ``<PID>_ct``, ``<PID>_pt``, label ``<PID>_ct_gtvt`` (also seen as ``<PID>_gtvt`` in participants' copies).
SUFFIXES_2021: dict[str, tuple[str, ...]] = {"ct": ("_ct",), "pet": ("_pt",), "label": ("_ct_gtvt", "_gtvt")}


def _matches(name: str, patterns: Iterable[str]) -> bool:
    lower = name.lower()
    return any(fnmatch.fnmatchcase(lower, pattern.lower()) for pattern in patterns)


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
                        "Performance status": schema.COL_PERFORMANCE,
                        "Performance status (0,1,2,3,4)": schema.COL_PERFORMANCE, "T-stage": schema.COL_TSTAGE,
                        "N-stage": schema.COL_NSTAGE, "M-stage": schema.COL_MSTAGE},
        targets=(schema.COL_RELAPSE, schema.COL_RFS),
        test_inputs=(schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL,
                     schema.COL_PERFORMANCE, schema.COL_HPV),
        container_outputs={},
        image_suffixes=SUFFIXES_2021,
        # 2021 IDs carry no dash: the centre letters, then three digits (CHGJ007).
        patient_id_pattern=re.compile(r"^(?P<centre>[A-Z]+)(?P<number>\d{3})$"),
        patient_id_form="<CENTRE><NNN> (e.g. CHGJ007)",
        label_values=(0, 1),
        other_tables=("*bbox*.csv",),
        markers=("hecktor2021*", "hecktor_nii", "*_ct_gtvt.nii.gz", "*_gtvt.nii.gz", "*[!_]_ct.nii.gz",
                 "*[!_]_pt.nii.gz", "*bbox*.csv"),
        image_folders=("hecktor_nii",),
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
        markers=("hecktor2022*", "imagesTr", "labelsTr"),
        image_folders=("imagesTr", "labelsTr"),
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
        markers=("hecktor_2025*", "hecktor2025*", "task[ _-]1", "task[ _-]2", "task[ _-]3", "task1", "task2",
                 "task3"),
        image_folders=("Task 1", "Task 2", "Task 3"),
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
        # The organisers' Bq/mL -> SUV factor table: given with convert --suv-factors, never a clinical table.
        other_tables=("suv_conversion_tags*.csv",),
        markers=("hecktor_2026*", "hecktor2026*", "suv_conversion_tags*.csv"),
        image_folders=("hecktor2026_training",),
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


def all_column_aliases() -> dict[str, tuple[str, str]]:
    """Every edition's header alias (lower case) -> ``(schema column, edition)``: for hints only."""
    aliases: dict[str, tuple[str, str]] = {}
    for edition in EDITIONS.values():
        for alias, column in edition.column_aliases.items():
            aliases.setdefault(" ".join(alias.split()).lower(), (column, edition.name))
    return aliases


@dataclass(frozen=True)
class Detection:
    """Which edition a source folder is, and why (:func:`detect_edition`).

    ``evidence``: the names that matched the edition's :attr:`Edition.markers` (empty when no name
    matched and :data:`DEFAULT_EDITION` was taken); ``others``: other editions whose markers matched too.
    """

    edition: Edition
    evidence: tuple[str, ...]
    others: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: ``HECKTOR 2022 (detected from: imagesTr, hecktor2022_endpoint_training.csv)``."""
        if not self.evidence:
            return (f"HECKTOR {self.edition.name} (no edition-specific file or folder name found: the default; "
                    "pass --edition to choose another)")
        shown = ", ".join(self.evidence[:4]) + (" ..." if len(self.evidence) > 4 else "")
        also = f"; names of {', '.join(self.others)} seen too" if self.others else ""
        return f"HECKTOR {self.edition.name} (detected from: {shown}{also})"


def detect_edition(names: Iterable[str]) -> Detection:
    """The edition whose :attr:`Edition.markers` match most of ``names`` (file and folder names).

    Parameters
    ----------
    names : iterable of str
        Names (not paths) of the files and folders of a source folder, a few levels deep.

    Returns
    -------
    Detection
        :data:`DEFAULT_EDITION` with no evidence when no name matches; on a tie the newer edition.
    """
    # Folder and CSV names first: they say more to the reader than the thousandth image file name.
    unique = sorted(set(names), key=lambda n: (n.lower().endswith(IMAGE_EXTENSIONS), n))
    hits = {key: tuple(n for n in unique if _matches(n, edition.markers)) for key, edition in EDITIONS.items()}
    best = max(sorted(EDITIONS), key=lambda key: (len(hits[key]), key))
    if not hits[best]:
        return Detection(get_edition(DEFAULT_EDITION), ())
    others = tuple(k for k in sorted(EDITIONS) if k != best and hits[k])
    return Detection(EDITIONS[best], hits[best], others)
