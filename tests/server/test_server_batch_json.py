"""The batch endpoints read their body with orjson (the server extra) and fall back to the
standard parser for whatever orjson refuses or reads differently: the stored values are
exactly those of the standard parser."""

from __future__ import annotations

import json

import pytest

from comet_callbacks.server.app import _loads_batch

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
