"""Values made ready for strict JSON: the one ``json_safe`` every writer of a JSON file uses."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars/arrays made plain Python and NaN/inf replaced by ``None``.

    JSON has no NaN: an undefined metric (e.g. a C-index without a comparable pair) becomes
    ``null``. Dict keys become strings; tuples and arrays become lists; any other object (a
    ``Path``, say) becomes its ``str``.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
