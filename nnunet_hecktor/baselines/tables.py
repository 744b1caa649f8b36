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


def write_predictions_csv(destination: str | os.PathLike, rows: Mapping[str, Mapping[str, float | int]]) -> Path:
    """Write ``PatientID,hpv_probability,hpv_status,risk`` for ``rows`` (PatientID -> values).

    A column a baseline does not predict is left empty for every patient (``evaluate`` then skips
    that task). Risk: higher = earlier relapse; ``hpv_status`` 1 = positive.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for pid in sorted(rows):
        values = rows[pid]
        out = [pid]
        for column in PREDICTION_COLUMNS[1:]:
            value = values.get(column)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out.append("")
            elif column == "hpv_status":
                out.append(str(int(value)))
            else:
                out.append(repr(float(value)))
        writer.writerow(out)
    write_text_atomic(destination, buffer.getvalue())
    return Path(destination)
