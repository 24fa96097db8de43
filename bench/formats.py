"""One text format per quantity, shared by the logs, the tables, the plots and ``bench show``.

- a metric value: counts (ints: active units, dimensions) without decimals, other numbers
  with three decimals below 1 and two from 1 on; a count out of D as ``2 / 8``;
- a parameter value (model, objective, tuned): four significant digits (``lam=0.03995``);
- a duration: ``42s``, ``4m05s``, ``1h02m``;
- an epoch: counted from 1, ``epoch 3 of 4``, in the logs, tables and plots and in the JSON
  files too (``epochs.jsonl``'s ``epoch``, ``record.json``'s ``best_epoch``, from record version
  2; older files are read with their numbers moved up). Only the runner's internal counters
  (``EpochResult.epoch``, the checkpointed state) are indices from 0: :func:`epoch_number`
  turns them into the number shown.

Torch-free: ``bench show`` and ``bench ls`` use it.
"""

from __future__ import annotations

import json
import math
from typing import Any


def is_integer(value: Any) -> bool:
    """True for ints and integral floats (not bools)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is neither NaN nor infinite: what a setting, a metric
    value or a tracker scalar must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_number(value: Any, finite: bool = False) -> float | None:
    """A table cell's value as a float, or None where there is no number: None, a bool, a text
    that is no number, NaN (a missing value in polars and the CSV), and with ``finite`` also
    ±inf. The reporters, the report and ``bench compare`` read cells through it."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(out) or (finite and math.isinf(out)):
        return None
    return out


def digits_for(value: float) -> int:
    """Decimals for a metric value that is not a whole count: 3 below 1, else 2."""
    return 3 if abs(value) < 1 else 2


def number_text(value: float | int, digits: int | None = None) -> str:
    """A metric value: an int (a count) without decimals, a float with ``digits`` decimals
    (default :func:`digits_for`)."""
    if isinstance(value, int) and not isinstance(value, bool) and digits is None:
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.{digits_for(value) if digits is None else digits}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def count_text(value: float | int, of: float | int | None) -> str:
    """A count with what it is out of: ``2 / 8`` (the leaderboard's and the log's AU)."""
    text = number_text(value, 0 if is_integer(value) else None)
    return text if of is None else f"{text} / {number_text(of, 0)}"


def metric_text(value: Any, settings: dict[str, Any] | None = None) -> str:
    """A recorded metric value as the logs and ``bench show run`` print it: counts out of D
    (settings ``of``) as ``k / D``, lists and texts as they are."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        of = (settings or {}).get("of")
        if isinstance(value, int) and isinstance(of, (int, float)):
            return count_text(value, of)
        return number_text(value)
    if value is None:
        return "–"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def param_text(value: Any) -> str:
    """A parameter value: floats to four significant digits, containers as compact JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def duration_text(seconds: float) -> str:
    """``42s``, ``4m05s`` or ``1h02m``; under a second ``0.4s`` (a run time of 0 says little)."""
    if 0 < seconds < 1:
        return f"{seconds:.1f}s"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def epoch_number(index: int) -> int:
    """The epoch's number as shown and stored (from 1) for the runner's 0-based index."""
    return int(index) + 1
