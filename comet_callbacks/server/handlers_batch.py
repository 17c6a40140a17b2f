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
from typing import Any

from .handlers_write import EK, SAVED, _finite
from .routes import Ctx, route
from .validate import bad, text_of

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
PARAMETER_ITEM = {
    "parameterName": "s",
    "parameterValue?": "j",  # the official SDK sends null for a parameter whose value is None
    "step?": "i",
    "source?": "s",
    "context?": "s",
    "timestamp?": "i",
}


@route("POST", METRIC_PATH, body={**EK, "values": [METRIC_ITEM]})
def batch_metric(ctx: Ctx) -> dict[str, Any]:
    """Store a batch of metric points (all or nothing)."""
    exp = ctx.exp(ctx.body["experimentKey"])
    key, now = exp["key"], ctx.now
    rows = []
    for i, v in enumerate(ctx.body["values"]):
        if not v["metricName"]:
            raise bad(f"values[{i}].metricName", "must not be empty")
        value = v["metricValue"]
        ts = v["timestamp"] if v["timestamp"] is not None else now
        epoch = v["epoch"]
        if epoch is not None:  # a fractional epoch keeps its whole part (2.5 → 2)
            if not -(2**63) <= epoch < 2**63:
                raise bad(f"values[{i}].epoch", "integer out of int64 range")
            epoch = int(epoch)
        rows.append(
            (
                key,
                v["metricName"],
                _finite(value),
                text_of(value),
                ts,
                v["step"],
                epoch,
                v["context"],
            )
        )
    ctx.tx.conn.executemany(
        "INSERT INTO metrics (exp_key, name, value, value_text, ts, step, epoch, context, system) "
        "VALUES (?,?,?,?,?,?,?,?,0)",
        rows,
    )
    return SAVED


@route("POST", PARAMETER_PATH, body={**EK, "values": [PARAMETER_ITEM]})
def batch_parameter(ctx: Ctx) -> dict[str, Any]:
    """Store a batch of parameter values (all or nothing); the latest value of a name wins."""
    exp = ctx.exp(ctx.body["experimentKey"])
    key, now = exp["key"], ctx.now
    rows = []
    for i, v in enumerate(ctx.body["values"]):
        try:
            value = json.dumps(v["parameterValue"], separators=(",", ":"), allow_nan=True)
        except (TypeError, ValueError):
            raise bad(f"values[{i}].parameterValue", "not serialisable") from None
        ts = v["timestamp"] if v["timestamp"] is not None else now
        rows.append((key, v["parameterName"], value, ts, v["step"]))
    ctx.tx.conn.executemany(
        "INSERT INTO params (exp_key, name, value, ts, step) VALUES (?,?,?,?,?)", rows
    )
    if rows:
        ctx.touch(exp)
    return SAVED
