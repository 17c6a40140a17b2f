"""The batch endpoints read their body with orjson (the server extra) and fall back to the
standard parser for whatever orjson refuses or reads differently: the stored values are
exactly those of the standard parser."""

from __future__ import annotations

import json

import pytest

from comet_callbacks.server.app import _loads_batch
from comet_callbacks.server.handlers_batch import METRIC_PATH, check_body
from comet_callbacks.server.validate import ApiError

BODIES = [
    b'{"experimentKey":"k","values":[{"metricName":"a","metricValue":0.30000000000000004}]}',
    b'{"values":[{"parameterName":"big","parameterValue":123456789012345678901234567890}]}',
    b'{"values":[{"parameterName":"neg","parameterValue":-9223372036854775809}]}',
    b'{"values":[{"metricName":"n","metricValue":NaN},{"metricName":"i","metricValue":1e400}]}',
    b'{"values":[{"metricName":"\\ud800","metricValue":1}]}',
    b'{"a":1,"a":2}',
    '{"values":[{"metricName":"µ名","metricValue":-0}]}'.encode(),
]


@pytest.mark.parametrize("body", BODIES)
def test_batch_bodies_read_as_the_standard_parser_reads_them(body) -> None:
    got, want = _loads_batch(body), json.loads(body)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    assert repr(got) == repr(want)  # ints stay ints, floats floats


@pytest.mark.parametrize("body", [b"{", b'{"values":[1,]}', b"\xff\xfe"])
def test_malformed_batch_bodies_raise_as_the_standard_parser_does(body) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        _loads_batch(body)


def _checked(body: bytes, fast: bool) -> object:
    """What the metric batch checker makes of a body, read by orjson as the server reads a
    metric batch (``fast``) or by ``json``: the stored values, or the 400's message."""
    try:
        if fast:
            return check_body(METRIC_PATH, _loads_batch(body, METRIC_PATH), body)
        return check_body(METRIC_PATH, json.loads(body))
    except ApiError as exc:
        return f"{exc.code} {exc.msg}"


def _batch(*items: str) -> bytes:
    return ('{"experimentKey":"k","values":[' + ",".join(items) + "]}").encode()


def _item(value: str, **extra: str) -> str:
    fields = "".join(f',"{k}":{v}' for k, v in extra.items())
    return f'{{"metricName":"m","metricValue":{value}{fields}}}'


METRIC_BODIES = [
    _batch(_item("0.5"), _item("7", step="3", epoch="1.5", timestamp="1700000000000")),
    # long integers (orjson reads them as floats), alone and after plain items
    _batch(_item("123456789012345678901234567890")),
    _batch(_item("1"), _item("-99999999999999999999")),
    _batch(_item("1e19"), _item("-1.5e300"), _item("18446744073709551615")),
    _batch(_item("1", step="123456789012345678901")),
    _batch(_item("1", timestamp="12345678901234567890")),
    _batch(_item("1", epoch="99999999999999999999")),
    _batch(_item('"NaN"'), _item('"2.5"'), _item("true")),
]


@pytest.mark.parametrize("body", METRIC_BODIES)
def test_metric_batches_skip_the_long_integer_scan_yet_check_as_the_standard_parser(
    body,
) -> None:
    """A metric batch is read by orjson without the scan for long integers; what the checker
    stores (or the 400 it answers) is still exactly what it makes of ``json``'s reading."""
    got, want = _checked(body, fast=True), _checked(body, fast=False)
    assert repr(got) == repr(want)
