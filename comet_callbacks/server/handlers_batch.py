"""The two clientlib batch endpoints: many metric or parameter values in one request.

``POST /clientlib/batch/logger/experiment/metric`` and ``.../parameter`` take
``{"experimentKey": K, "values": [item, ...]}`` (plain or gzip JSON). A batch is
all-or-nothing: it runs in the request's one transaction, and any bad item is a 400 naming
``values[i].field`` with nothing stored. Items are stored exactly as if each had been sent to
the per-point endpoint, in array order (same rows, same read-back).

The server option ``batch_endpoints=False`` (``--no-batch``) answers 404 on both paths, as a
Comet server without them would, so the client's per-point fallback can be tested for real.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .handlers_write import EK, SAVED, _finite
from .routes import Ctx, route
from .store import series_ids
from .validate import (
    INT64_MAX,
    INT64_MIN,
    bad,
    check,
    metric_value,
    stored_text,
    text_of,
    validate,
)

#: Paths of the batch endpoints (absolute: they live under ``/clientlib/``, not the REST base).
METRIC_PATH = "/clientlib/batch/logger/experiment/metric"
PARAMETER_PATH = "/clientlib/batch/logger/experiment/parameter"
BATCH_PATHS = (METRIC_PATH, PARAMETER_PATH)

METRIC_ITEM = {
    "metricName": "s",
    "metricValue": "m",
    "step?": "i",
    "epoch?": "n",  # the official SDK passes fractional epochs on (transformers' CometCallback)
    "context?": "s",
    "timestamp?": "i",
}
#: A parameter item's ``source``: a user's call, an integration or capture, the command line.
PARAMETER_SOURCES = ("manual", "auto-logged", "cli")
PARAMETER_ITEM = {
    "parameterName": "s",
    "parameterValue?": "j",  # the official SDK sends null for a parameter whose value is None
    "step?": "i",
    "source?": "s",
    "context?": "s",
    "timestamp?": "i",
}


#: 19 digits in a row: an integer orjson would read as a float (``json`` keeps it exact)
LONG_DIGITS = re.compile(rb"[0-9]{19}")
#: A float read from JSON at or beyond 2**63 in magnitude may be such an integer.
_FLOAT_INT_LIMIT = 2.0**63


class _NotPlain(Exception):
    """A metric item off the fast path, in a body read by orjson without the long-integer scan."""


def _opt_int(v: Any) -> bool:
    return v is None or (type(v) is int and INT64_MIN <= v <= INT64_MAX)


def _epoch(field: str, v: Any) -> int | None:
    """A fractional epoch keeps its whole part (2.5 → 2): the official SDK sends those."""
    if v is None:
        return None
    if not -(2**63) <= v < 2**63:
        raise bad(field, "integer out of int64 range")
    return int(v)


def _metric_values(values: Any, plain_only: bool = False) -> list[tuple[Any, ...]]:
    """``(name, number, text, step, epoch, context, timestamp)`` per item, checked; ``number``
    and ``text`` are the two value columns (``text`` as :func:`~.validate.stored_text` has it).

    The common item (a string name, a float or int value, integer or null step/epoch/
    timestamp, string or null context) is checked inline, several times faster than the
    generic validator; anything else goes through the generic one, which accepts the same
    things as the per-point endpoint and names the offending ``values[i].field``. With
    ``plain_only`` an item that is not common raises :class:`_NotPlain` instead (a float
    value beyond 2**63 is not common: read by orjson, it may have been a longer integer).
    """
    if not isinstance(values, list):
        raise bad("values", "expected list")
    out: list[tuple[Any, ...]] = []
    for i, v in enumerate(values):
        if type(v) is dict:
            name, value = v.get("metricName"), v.get("metricValue")
            step, epoch, ctx, ts = (
                v.get("step"),
                v.get("epoch"),
                v.get("context"),
                v.get("timestamp"),
            )
            tv = type(value)
            if (
                type(name) is str
                and name
                and (
                    tv is int
                    or type(value) is float
                    and -_FLOAT_INT_LIMIT < value < _FLOAT_INT_LIMIT
                )
                and _opt_int(step)
                and (epoch is None or type(epoch) is int or type(epoch) is float)
                and _opt_int(ts)
                and (ctx is None or type(ctx) is str)
            ):
                if type(epoch) is float:
                    epoch = _epoch(f"values[{i}].epoch", epoch) if epoch == epoch else None
                    if epoch is None:
                        raise bad(f"values[{i}].epoch", "expected number")
                elif epoch is not None and not INT64_MIN <= epoch <= INT64_MAX:
                    raise bad(f"values[{i}].epoch", "integer out of int64 range")
                f = float(value)  # type: ignore[arg-type]  # a checked number
                if f - f == 0.0:  # finite: the common case, its text made when read
                    out.append((name, f, "", step, epoch, ctx, ts))
                else:
                    out.append((name, None, text_of(f), step, epoch, ctx, ts))
                continue
        if plain_only:
            raise _NotPlain
        prefix = f"values[{i}]"
        if v is None:
            raise bad(prefix, "must not be null")
        item = validate(METRIC_ITEM, v, prefix=prefix + ".")
        if not item["metricName"]:
            raise bad(f"values[{i}].metricName", "must not be empty")
        value = metric_value(prefix + ".metricValue", item["metricValue"])
        number = _finite(value)
        out.append(
            (
                item["metricName"],
                number,
                stored_text(number, value),
                item["step"],
                _epoch(prefix + ".epoch", item["epoch"]),
                item["context"],
                item["timestamp"],
            )
        )
    return out


def check_body(path: str, parsed: Any, data: bytes | None = None) -> dict[str, Any]:
    """The validated body of a batch request (used instead of the generic spec walk).

    ``data`` is the raw body when ``parsed`` came from orjson without the long-integer scan
    (a metric batch): should an item be anything but plain, the scan runs then, and a body
    with a long integer is read again with ``json``, which keeps it exact."""
    if not isinstance(parsed, dict):
        raise bad("body", "expected JSON object")
    key = parsed.get("experimentKey")
    if key is None:
        raise bad("experimentKey", "required")
    if not isinstance(key, str):
        raise bad("experimentKey", "expected string")
    values = parsed.get("values")
    if values is None:
        raise bad("values", "required")
    if path == METRIC_PATH:
        if data is not None:
            try:
                return {"experimentKey": key, "values": _metric_values(values, plain_only=True)}
            except _NotPlain:
                if LONG_DIGITS.search(data) is not None:
                    try:
                        exact = json.loads(data)
                    except (ValueError, RecursionError):  # orjson read it: not expected
                        raise bad("body", "malformed JSON") from None
                    return check_body(path, exact)
        return {"experimentKey": key, "values": _metric_values(values)}
    return {"experimentKey": key, "values": check("values", [PARAMETER_ITEM], values)}


@route("POST", METRIC_PATH, body={**EK, "values": [METRIC_ITEM]})
def batch_metric(ctx: Ctx) -> dict[str, Any]:
    """Store a batch of metric points (all or nothing)."""
    exp = ctx.exp(ctx.body["experimentKey"])
    key, now, values = exp["key"], ctx.now, ctx.body["values"]
    ids = series_ids(ctx.tx.conn, key, {v[0]: None for v in values})  # names, in order
    rows = [
        (key, name, number, text, now if ts is None else ts, step, epoch, context, ids[name])
        for name, number, text, step, epoch, context, ts in values
    ]
    ctx.tx.conn.executemany(
        "INSERT INTO metrics (exp_key, name, value, value_text, ts, step, epoch, context, system, "
        "series) VALUES (?,?,?,?,?,?,?,?,0,?)",
        rows,
    )
    return SAVED


@route("POST", PARAMETER_PATH, body={**EK, "values": [PARAMETER_ITEM]})
def batch_parameter(ctx: Ctx) -> dict[str, Any]:
    """Store a batch of parameter values (all or nothing); the latest value of a name wins.
    Each value keeps its item's ``source`` (NULL when the item has none)."""
    exp = ctx.exp(ctx.body["experimentKey"])
    key, now = exp["key"], ctx.now
    rows = []
    for i, v in enumerate(ctx.body["values"]):
        try:
            value = json.dumps(v["parameterValue"], separators=(",", ":"), allow_nan=True)
        except (TypeError, ValueError):
            raise bad(f"values[{i}].parameterValue", "not serialisable") from None
        source = v["source"]
        if source is not None and source not in PARAMETER_SOURCES:
            raise bad(f"values[{i}].source", f"expected one of {', '.join(PARAMETER_SOURCES)}")
        ts = v["timestamp"] if v["timestamp"] is not None else now
        rows.append((key, v["parameterName"], value, ts, v["step"], source))
    ctx.tx.conn.executemany(
        "INSERT INTO params (exp_key, name, value, ts, step, source) VALUES (?,?,?,?,?,?)", rows
    )
    if rows:
        ctx.touch(exp)
    return SAVED
