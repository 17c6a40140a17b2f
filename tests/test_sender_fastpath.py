"""The sender's metric fast paths: the event line is exactly what `Call.to_json()` would
write, and a batch body is exactly the bytes `log_metric_batch` would send."""

from __future__ import annotations

import json
import math

import pytest

from comet_callbacks.offline import RunStore
from comet_callbacks.rest import calls, metric_item
from comet_callbacks.sender import Sender

ITEMS = [
    ("loss", 0.25, 3, 1, None, 1700000000.123),
    ("loss", 7, None, None, None, 1700000000.0),
    ("acc", 1e-300, 0, 0, "train", 1.5),
    ("acc", -2.5e20, 12, None, 'val/ctx "quoted"', 2.0),
    ("nan", math.nan, 1, None, None, 3.0),
    ("inf", math.inf, 1, None, None, 3.0),
    ("-inf", -math.inf, 1, None, None, 3.0),
    ("unicode µ/名前\n", 0.1 + 0.2, 2**40, 3, None, 4.0),
    ("big", 2**62, 1, 1, None, 5.0),
]


@pytest.mark.parametrize("item", ITEMS)
def test_metric_line_equals_the_generic_encoding(item, tmp_path) -> None:
    sender = Sender(RunStore(str(tmp_path)), "k" * 32, None)
    try:
        fast = json.loads(sender._metric_line(17, item))
        generic = {"seq": 17, "call": sender._build(item).to_json()}
        assert fast == json.loads(json.dumps(generic, allow_nan=False))
    finally:
        sender.close(1)


def test_metric_batch_text_equals_the_generic_encoding(tmp_path) -> None:
    sender = Sender(RunStore(str(tmp_path)), "k" * 32, None)
    try:
        fast = sender._encode_metrics(list(enumerate(ITEMS)))
        generic = calls.log_metric_batch(
            "k" * 32,
            [metric_item(n, v, s, e, c, int(t * 1000)) for n, v, s, e, c, t in ITEMS],
        )
        assert (fast.method, fast.path, fast.gzip) == (generic.method, generic.path, True)
        text = json.dumps(generic.json, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        assert str(fast.json) == text  # byte for byte
    finally:
        sender.close(1)
