"""The one json_safe used by every JSON writer."""

import json
import math
from pathlib import Path

import numpy as np

from nnunet_hecktor.strict_json import json_safe


def test_json_safe_makes_strict_json():
    value = {"c": math.nan, 1: [np.float32(0.5), np.int64(3), np.array([1.0, np.inf])], "p": Path("a/b"),
             "t": (True, None, "x")}
    out = json_safe(value)
    assert out == {"c": None, "1": [0.5, 3, [1.0, None]], "p": "a/b", "t": [True, None, "x"]}
    json.dumps(out, allow_nan=False)
