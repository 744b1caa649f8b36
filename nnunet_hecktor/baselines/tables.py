"""``predictions.csv`` files for baselines (same columns as the plugin's own, see
:mod:`nnunet_hecktor.prediction.outputs`), so ``evaluate`` scores them like a model."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Mapping

from nnunet_hecktor.fileio import write_text_atomic
from nnunet_hecktor.prediction.outputs import PREDICTION_COLUMNS
from nnunet_hecktor.prediction.outputs import STAGE_PREDICTION_COLUMNS as STAGE_COLUMNS


def write_predictions_csv(destination: str | os.PathLike, rows: Mapping[str, Mapping[str, float | int | str]]) -> Path:
    """Write ``PatientID,hpv_probability,hpv_status,risk[,t_stage,n_stage]`` for ``rows`` (PatientID -> values).

    A column a baseline does not predict is left empty for every patient (``evaluate`` then skips
    that task); ``t_stage`` / ``n_stage`` (stage labels) are added only when some row holds them.
    Risk: higher = earlier relapse; ``hpv_status`` 1 = positive.
    """
    stages = [c for c in STAGE_COLUMNS if any(values.get(c) for values in rows.values())]
    columns = list(PREDICTION_COLUMNS) + stages
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for pid in sorted(rows):
        values = rows[pid]
        out = [pid]
        for column in columns[1:]:
            value = values.get(column)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out.append("")
            elif column in STAGE_COLUMNS:
                out.append(str(value))
            elif column == "hpv_status":
                out.append(str(int(value)))
            else:
                out.append(repr(float(value)))
        writer.writerow(out)
    write_text_atomic(destination, buffer.getvalue())
    return Path(destination)
