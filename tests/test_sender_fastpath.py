"""The one named metric fast path (`FastMetricEncoder` in the REST core) is the REST core's
encoding, byte for byte: its event-log line is exactly what `RunStore.append` writes for
`calls.log_metric(...)`, and its batch body exactly what the transport sends for
`calls.log_metric_batch(...)`."""

from __future__ import annotations

import json
import math

import pytest

from comet_callbacks.offline import RunStore, event_line
from comet_callbacks.rest import calls, metric_item
from comet_callbacks.rest.endpoints import FastMetricEncoder, metric_item_of_body
from comet_callbacks.sender import Sender

KEY = "k" * 32
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
    ("neg", -3, -1, None, "ctx\u2028", 1e9),
    ('back\\slash\t"q"\\', 0.5, 1, None, "c\x01tl\x1f", 6.0),
    ("\\", 1, None, None, '\\"', 7.0),
    # every control character's escape: the short ones (\b \t \n \f \r) and \u00XX
    ("".join(map(chr, range(32))) + "\x7f", 1.5, 1, None, "\x08\x0c\r\x0b\x00", 8.0),
]


def _generic_call(item):
    name, value, step, epoch, context, t = item
    return calls.log_metric(KEY, name, value, step, epoch, context, int(t * 1000))


@pytest.mark.parametrize("item", ITEMS)
def test_event_line_is_the_generic_line_byte_for_byte(item) -> None:
    assert FastMetricEncoder(KEY).event_line(17, item) == event_line(17, _generic_call(item))


def test_batch_body_is_the_generic_body_byte_for_byte() -> None:
    fast = FastMetricEncoder(KEY).batch_call(ITEMS)
    generic = calls.log_metric_batch(
        KEY, [metric_item(n, v, s, e, c, int(t * 1000)) for n, v, s, e, c, t in ITEMS]
    )
    assert (fast.method, fast.path, fast.gzip) == (generic.method, generic.path, True)
    assert fast.body_text() == generic.body_text()


def test_batch_of_events_read_back_from_disk_is_the_same_body() -> None:
    """A batch mixing tuples with points read back from the event log (the sender's refill)
    encodes each read-back point as the same item."""
    enc = FastMetricEncoder(KEY)
    read_back = [
        metric_item_of_body(json.loads(event_line(i, _generic_call(it)))["call"]["json"])
        for i, it in enumerate(ITEMS)
    ]
    mixed = [it if i % 2 else read_back[i] for i, it in enumerate(ITEMS)]
    assert enc.batch_call(mixed).body_text() == enc.batch_call(ITEMS).body_text()


def test_the_sender_writes_the_fast_line_to_its_event_log(tmp_path) -> None:
    """The offline sender's log holds exactly the generic lines (the fast path is the one
    the sender uses, not a copy of it)."""
    store = RunStore(str(tmp_path))
    sender = Sender(store, KEY, None)
    for item in ITEMS:
        sender.put(item)
    assert sender.close(10)
    store.close()
    with open(tmp_path / store.run_id / "events.jsonl", encoding="utf-8") as fh:
        lines = fh.read().split("\n")[:-1]
    assert lines == [event_line(i + 1, _generic_call(it)) for i, it in enumerate(ITEMS)]


def _generic_item_text(line: str) -> str:
    body = json.loads(line)["call"]["json"]
    return json.dumps(
        metric_item_of_body(body), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@pytest.mark.parametrize("item", ITEMS)
def test_replay_reads_a_line_into_the_generic_item_byte_for_byte(item) -> None:
    """`upload` takes a metric line's batch item without parsing the JSON; that text is
    exactly what parsing the line and encoding its item makes."""
    line = FastMetricEncoder(KEY).event_line(41, item) + "\n"
    seq, text, ts = FastMetricEncoder.item_of_line(line)
    assert (seq, ts) == (41, int(item[5] * 1000))
    assert text == _generic_item_text(line)


@pytest.mark.parametrize(
    "line",
    [
        # what json.dumps never writes: the generic path must read these
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"\\u00b5","metricValue":1.0,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.50,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1e+400,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":2,"step":007,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":-0,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a\\x","metricValue":1,"timestamp":5}}}',
        # another key order, an extra key, no timestamp, another path, a file part
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricValue":1.0,"metricName":"a","timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"timestamp":5,"x":1}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/parameter","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"timestamp":5}}}',
        '{"seq":-1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"timestamp":5}}}',
        # escapes json.dumps writes otherwise (\b, \n, lowercase hex): the parsed name differs
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a\\u0008","metricValue":1.0,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a\\u000a","metricValue":1.0,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"context":"\\u001F","timestamp":5}}}',
        # what json.loads refuses: a raw control character, integers past its digit limit,
        # digits that are not ASCII
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k\x01","metricName":"a","metricValue":1.0,"timestamp":5}}}',
        '{"seq":'
        + "1" * 5000
        + ',"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":'
        + "9" * 5000
        + ',"timestamp":5}}}',
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"timestamp":'
        + "5" * 5000
        + "}}}",
        '{"seq":\u0661,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"timestamp":5}}}',
        # a second line after the first
        '{"seq":1,"call":{"method":"POST","path":"write/experiment/metric","json":{"experimentKey":"k","metricName":"a","metricValue":1.0,"timestamp":5}}}\n',
    ],
)
def test_replay_fast_path_leaves_any_other_line_to_the_parser(line) -> None:
    assert FastMetricEncoder.item_of_line(line + "\n") is None


def test_replay_fast_path_reads_lines_of_several_keys_and_seqs() -> None:
    """Lines of other experiment keys, seq 0 and a long seq are read like any other line."""
    lines = [
        FastMetricEncoder(key).event_line(seq, ITEMS[0]) + "\n"
        for key in ("a" * 32, "", "b", "a" * 32)
        for seq in (0, 7, 10**50)
    ]
    assert [FastMetricEncoder.item_of_line(ln)[:2] for ln in lines] == [
        (json.loads(ln)["seq"], _generic_item_text(ln)) for ln in lines
    ]
