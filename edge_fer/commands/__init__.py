"""One module per CLI command; each imports only click at import time.

edge_fer/cli.py maps command names to these modules and imports them lazily.
"""

from __future__ import annotations

import math


def finite_float(ctx, param, value: float | None) -> float | None:
    """click callback: refuse inf and nan (``--input-scale inf`` made every score NaN)."""
    if value is not None and not math.isfinite(value):
        from ..errors import OptionsError

        raise OptionsError(f"{param.opts[0]} must be a finite number, got {value}")
    return value
