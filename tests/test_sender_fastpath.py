"""The sender's metric fast path writes exactly the event `Call.to_json()` would."""

from __future__ import annotations

import json
import math

import pytest

from comet_callbacks.offline import RunStore
from comet_callbacks.sender import Sender


@pytest.mark.parametrize(
    "item",
    [
        ("loss", 0.25, 3, 1, None, 1700000000.123),
        ("loss", 7, None, None, None, 1700000000.0),
        ("acc", 1e-300, 0, 0, "train", 1.5),
        ("acc", -2.5e20, 12, None, 'val/ctx "quoted"', 2.0),
        ("nan", math.nan, 1, None, None, 3.0),
        ("inf", math.inf, 1, None, None, 3.0),
        ("-inf", -math.inf, 1, None, None, 3.0),
        ("unicode µ/名前\n", 0.1 + 0.2, 2**40, 3, None, 4.0),
        ("big", 2**62, 1, 1, None, 5.0),
    ],
)
def test_metric_line_equals_the_generic_encoding(item, tmp_path) -> None:
    sender = Sender(RunStore(str(tmp_path)), "k" * 32, None)
    try:
        fast = json.loads(sender._metric_line(17, item))
        generic = {"seq": 17, "call": sender._build(item).to_json()}
        assert fast == json.loads(json.dumps(generic, allow_nan=False))
    finally:
        sender.close(1)
