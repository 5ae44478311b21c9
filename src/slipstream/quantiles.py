"""The one percentile the report and the slow-query list use."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of sorted, non-empty samples, rounded to the microsecond."""
    return round(ordered[max(0, math.ceil(len(ordered) * q) - 1)], 6)
