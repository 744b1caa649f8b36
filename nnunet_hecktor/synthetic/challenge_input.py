"""A fake container input tree (``images/ct/<uuid>.mha``, ``images/pet/<uuid>.mha``, ``ehr.json``).

Used by the tests and by ``docker/test_local.sh`` to exercise the container entry point without
grand-challenge. The images come from a HECKTOR patient (any SimpleITK-readable CT and PET, e.g.
from ``nnunet-hecktor synth``); the clinical values are written as the challenge does: CSV column
names as keys, numbers as numbers, missing values as absent keys, no targets.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from nnunet_hecktor import schema
from nnunet_hecktor.challenge.io import CT_FOLDER, EHR_FILE, PET_FOLDER

#: Columns the challenge passes in ehr.json (inputs only; the targets are what is predicted).
EHR_COLUMNS: tuple[str, ...] = (schema.COL_CENTER, schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO,
                                schema.COL_ALCOHOL, schema.COL_PERFORMANCE, schema.COL_TREATMENT, schema.COL_MSTAGE)


#: An ``ehr.json`` as the organisers' 2026 sample writes it: HPV Status and CenterID among the keys,
#: an unseen centre (9), and a trailing comma after the last value (not strict JSON).
SAMPLE_EHR_2026_TEXT = """{
    "Age": 62,
    "Gender": 1,
    "Tobacco Consumption": 1,
    "Alcohol Consumption": 0,
    "Performance Status": 0,
    "Treatment": 1,
    "HPV Status": 1,
    "CenterID": 9,
}
"""


@dataclass
class FakeChallengeInput:
    """What :func:`write_challenge_input` wrote."""

    root: Path
    ct: Path
    pet: Path
    ehr: Path | None
    ehr_content: dict = field(default_factory=dict)
    omitted_keys: tuple[str, ...] = ()


def _uuid_for(text: str) -> str:
    # Deterministic, UUID-shaped file names (the real ones carry no PatientID either).
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nnunet-hecktor/{text}"))


def ehr_from_record(record: Mapping[str, Any], omit: Iterable[str] = ()) -> dict:
    """The ehr.json object of a typed clinical record: inputs only, missing and ``omit`` keys absent."""
    omit = set(omit)
    out = {}
    for column in EHR_COLUMNS:
        value = record.get(column)
        if value is None or column in omit:
            continue
        out[column] = value
    return out


def write_challenge_input(destination: str | os.PathLike, ct, pet, ehr: Mapping[str, Any] | None,
                          name: str = "case", extra_folders: Iterable[str] = ()) -> FakeChallengeInput:
    """Write ``destination/images/{ct,pet}/<uuid>.mha`` and ``destination/ehr.json``.

    Parameters
    ----------
    destination : path-like
        The fake ``/input`` folder (created).
    ct, pet : SimpleITK.Image or path-like
        CT and PET (each on its own grid).
    ehr : mapping or None
        The ``ehr.json`` object (None = no ehr.json file).
    name : str
        Seed of the UUID file names.
    extra_folders : iterable of str
        Extra (ignored) input folders to create with a copy of the CT, e.g. ``"images/ct-planning"``.
    """
    import SimpleITK as sitk

    root = Path(destination)
    # Copies (copy-on-write in SimpleITK): the caller's images keep their metadata.
    ct_image = sitk.Image(ct) if isinstance(ct, sitk.Image) else sitk.ReadImage(str(ct))
    pet_image = sitk.Image(pet) if isinstance(pet, sitk.Image) else sitk.ReadImage(str(pet))
    ct_path = root / CT_FOLDER / f"{_uuid_for(name + '/ct')}.mha"
    pet_path = root / PET_FOLDER / f"{_uuid_for(name + '/pet')}.mha"
    for image in (ct_image, pet_image):
        for key in image.GetMetaDataKeys():  # NIfTI header fields have no MetaImage equivalent
            image.EraseMetaData(key)
    for path, image in ((ct_path, ct_image), (pet_path, pet_image)):
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path), True)
    for folder in extra_folders:
        path = root / folder / f"{_uuid_for(name + '/' + folder)}.mha"
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(ct_image, str(path), True)
    ehr_path = None
    if ehr is not None:
        ehr_path = root / EHR_FILE
        ehr_path.write_text(json.dumps(dict(ehr), indent=4) + "\n", encoding="utf-8")
    return FakeChallengeInput(root, ct_path, pet_path, ehr_path, dict(ehr or {}))


def make_fake_challenge_input(destination: str | os.PathLike, seed: int = 0,
                              omit: Iterable[str] = (schema.COL_TOBACCO, schema.COL_PERFORMANCE),
                              size: str = "test") -> FakeChallengeInput:
    """A fake ``/input`` tree from a synthetic patient (``nnunet_hecktor.synthetic``).

    The first patient of a small synthetic cohort (``seed``, ``size``) is written with the
    ``omit`` keys absent from ``ehr.json`` (plus any value the synthetic table has missing).
    """
    import tempfile

    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.synthetic import make_cohort

    with tempfile.TemporaryDirectory(prefix="nnunet-hecktor-fake-input-") as tmp:
        cohort = make_cohort(Path(tmp) / "cohort", n_patients=4, seed=seed, layout="flat", size=size,
                             progress=False)
        pid = sorted(cohort.all_patient_ids)[0]
        records = {}
        for csv_path in cohort.csv_paths.values():
            records.update(read_clinical_csv(csv_path))
        folder = Path(cohort.out_dir)
        omit = tuple(omit)
        fake = write_challenge_input(destination, folder / f"{pid}__CT.nii.gz", folder / f"{pid}__PT.nii.gz",
                                     ehr_from_record(records.get(pid, {}), omit), name=f"{seed}/{pid}")
    fake.omitted_keys = omit
    return fake
