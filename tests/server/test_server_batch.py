"""The clientlib batch endpoints of the local server: all-or-nothing, stored exactly as the
per-point endpoints store, gzip or plain, the ``--no-batch`` 404 switch, throttling 429s, and
the request-id cache answering only the same request."""

from __future__ import annotations

import gzip
import json
import math
import time

import requests

from comet_callbacks.server.reader import Reader

BATCH = "/clientlib/batch/logger/experiment/"


def _post(api, kind: str, body: object, *, gz: bool = False, rid: str | None = None):
    data = json.dumps(body).encode()
    headers = {"Authorization": api.key, "Content-Type": "application/json;charset=utf-8"}
    if gz:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    if rid:
        headers["X-Comet-Request-Id"] = rid
    return requests.post(api.server.url + BATCH + kind, data=data, headers=headers, timeout=10)


def _m(name, value, step=None, epoch=None, context=None, ts=None):
    return {
        "metricName": name,
        "metricValue": value,
        "step": step,
        "epoch": epoch,
        "context": context,
        "timestamp": ts,
    }


def test_metric_batch_reads_back_like_per_point_writes(api, reader: Reader) -> None:
    one, many = api.create("b"), api.create("b")
    points = [
        _m("loss", 0.5, 1, 0, None, 1000),
        _m("loss", "NaN", 2, 0, None, 1001),
        _m("acc", 3, 2, 1, "train", 1002),
        _m("loss", "-Infinity", None, None, None, 1003),
        _m("loss", "Infinity", 3, None, None, 1004),
        # numbers whose text is made when read (see validate.stored_text): read back as the
        # per-point endpoint has them
        *(
            _m("edge", v, i, None, None, 2000 + i)
            for i, v in enumerate(
                [2**53 + 1, 10**16, -0.0, 1e-05, 1.5e300, 0.1 + 0.2, 7, 7.0, -3.25, "2.50", 2**62]
            )
        ),
    ]
    for p in points:
        body = {"experimentKey": one, **{k: v for k, v in p.items() if v is not None}}
        api.ok(api.post("write/experiment/metric", body))
    r = _post(api, "metric", {"experimentKey": many, "values": points}, gz=True)
    assert r.status_code == 200 and r.json() == {"msg": "Saved"}
    assert r.headers["content-type"] == "application/json"

    def strip(rows):
        return [
            {k: v for k, v in row.items() if k not in ("experimentKey", "offset")} for row in rows
        ]

    for name in ("loss", "acc", "edge"):
        assert strip(reader.metrics(many, name)) == strip(reader.metrics(one, name))
    assert reader.metric_summary(many) == reader.metric_summary(one)
    assert [m["metricValue"] for m in reader.metrics(many, "edge")] == [
        "9007199254740992",  # a metric value is a double (the official backend's too)
        "1e+16",
        "0",
        "1e-05",
        "1.5e+300",
        "0.30000000000000004",
        "7",
        "7",
        "-3.25",
        "2.5",
        "4.611686018427388e+18",
    ]
    assert [m["metricValue"] for m in reader.metrics(many, "loss")] == [
        "0.5",
        "NaN",
        "-Infinity",
        "Infinity",
    ]


def test_parameter_batch_plain_json_and_latest_wins(api, reader: Reader) -> None:
    key = api.create("b")
    values = [
        {"parameterName": "lr", "parameterValue": 0.1, "step": None, "source": "manual",
         "context": None, "timestamp": 1},
        {"parameterName": "layers", "parameterValue": [1, 2], "step": None,
         "source": "auto-logged", "context": None, "timestamp": 2},
        {"parameterName": "lr", "parameterValue": 0.2, "step": 5, "source": "manual",
         "context": None, "timestamp": 3},
    ]  # fmt: skip
    r = _post(api, "parameter", {"experimentKey": key, "values": values})
    assert r.status_code == 200, r.text
    params = reader.parameters(key)
    assert params["lr"] == "0.2"
    assert json.loads(params["layers"]) == [1, 2]


def test_one_bad_item_names_its_index_and_stores_nothing(api, reader: Reader) -> None:
    key = api.create("b")
    values = [_m("loss", i, i) for i in range(20)]
    values[17]["metricValue"] = "not a number"
    r = _post(api, "metric", {"experimentKey": key, "values": values}, gz=True)
    assert r.status_code == 400
    assert r.json()["msg"].startswith("values[17].metricValue:"), r.json()
    assert reader.metrics(key, "loss") == []
    values[17] = _m("", 1)
    r = _post(api, "metric", {"experimentKey": key, "values": values})
    assert r.status_code == 400 and r.json()["msg"].startswith("values[17].metricName:")
    r = _post(api, "parameter", {"experimentKey": key, "values": [{"parameterValue": 1}]})
    assert r.status_code == 400 and r.json()["msg"].startswith("values[0].parameterName:")
    assert reader.parameters(key) == {}


def test_batch_checks_key_and_experiment(api, make_api, comet_server) -> None:
    key = api.create("b")
    body = {"experimentKey": key, "values": [_m("x", 1)]}
    assert _post(make_api("wrong"), "metric", body).status_code == 401
    other = make_api(comet_server.create_user("eve"))
    assert _post(other, "metric", body).status_code == 403
    r = _post(api, "metric", {"experimentKey": "0" * 32, "values": [_m("x", 1)]})
    assert r.status_code == 404 and r.json()["msg"].startswith("experimentKey")


def test_no_batch_switch_answers_404(api, comet_server) -> None:
    key = api.create("b")
    comet_server.limits.batch_endpoints = False
    try:
        r = _post(api, "metric", {"experimentKey": key, "values": [_m("x", 1)]})
        assert r.status_code == 404
        assert _post(api, "parameter", {"experimentKey": key, "values": []}).status_code == 404
    finally:
        comet_server.limits.batch_endpoints = True
    r = _post(api, "metric", {"experimentKey": key, "values": [_m("x", 1)]})
    assert r.status_code == 200


def test_throttle_answers_429_with_both_headers(api, reader: Reader, comet_server) -> None:
    key = api.create("b")
    comet_server.throttle(30, retry_after=2.5)
    try:
        r = _post(api, "metric", {"experimentKey": key, "values": [_m("x", 1)]})
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "3" and r.headers["Retry-After-Custom"] == "2.5"
        assert api.post("write/experiment/metric", {"experimentKey": key, "metricName": "x",
                        "metricValue": 1}).status_code == 429  # fmt: skip
        assert api.get("experiment/metadata", experimentKey=key).status_code == 200
    finally:
        comet_server.limits.throttle_until = 0.0
    assert reader.metrics(key, "x") == []


def test_request_id_repeat_is_answered_once_but_a_reused_id_is_409(api, reader: Reader) -> None:
    k1, k2 = api.create("b"), api.create("b")
    body = {"experimentKey": k1, "values": [_m("x", 1, 1), _m("x", 2, 2)]}
    for _ in range(3):
        assert _post(api, "metric", body, gz=True, rid="run-1-2").status_code == 200
    assert len(reader.metrics(k1, "x")) == 2
    # the same id for another experiment, or another body: refused, nothing stored
    other = {"experimentKey": k2, "values": body["values"]}
    r = _post(api, "metric", other, rid="run-1-2")
    assert r.status_code == 409 and r.json()["msg"].startswith("x-comet-request-id")
    assert reader.metrics(k2, "x") == []
    r = requests.post(
        api.base + "write/experiment/metric",
        json={"experimentKey": k1, "metricName": "x", "metricValue": 9},
        headers={"Authorization": api.key, "X-Comet-Request-Id": "run-1-2"},
        timeout=10,
    )
    assert r.status_code == 409
    assert len(reader.metrics(k1, "x")) == 2


def test_thousand_point_batch_is_one_transaction(api, reader: Reader) -> None:
    key = api.create("b")
    values = [_m("loss", math.sin(i), i, None, None, 10_000 + i) for i in range(1000)]
    t = time.monotonic()
    assert _post(api, "metric", {"experimentKey": key, "values": values}, gz=True).ok
    assert time.monotonic() - t < 30  # not a timing assertion: a hang guard
    got = reader.metrics(key, "loss")
    assert [m["step"] for m in got] == list(range(1000))


def test_parameter_batch_keeps_each_values_source(api, reader: Reader, comet_server) -> None:
    """Each value keeps its item's ``source`` (a value sent one by one has none); a source other
    than the three is a 400 naming the item, and nothing of the batch is stored."""
    import sqlite3

    key = api.create("b")
    api.ok(
        api.post(
            "write/experiment/parameter",
            {"experimentKey": key, "parameterName": "one", "parameterValue": 1},
        )
    )
    values = [
        {"parameterName": "lr", "parameterValue": 0.1, "source": "manual"},
        {"parameterName": "layers", "parameterValue": [1, 2], "source": "auto-logged"},
        {"parameterName": "argv|0", "parameterValue": "x.py", "source": "cli"},
        {"parameterName": "plain", "parameterValue": 3},
    ]
    assert _post(api, "parameter", {"experimentKey": key, "values": values}).status_code == 200
    bad = [{"parameterName": "a", "parameterValue": 1}, {"parameterName": "b", "source": "auto"}]
    r = _post(api, "parameter", {"experimentKey": key, "values": bad})
    assert r.status_code == 400
    assert r.json()["msg"] == "values[1].source: expected one of manual, auto-logged, cli"
    assert set(reader.parameters(key)) == {"one", "lr", "layers", "argv|0", "plain"}
    with sqlite3.connect(comet_server.db_path) as conn:
        stored = conn.execute(
            "SELECT name, source FROM params WHERE exp_key=? ORDER BY seq", (key,)
        ).fetchall()
    assert stored == [
        ("one", None),
        ("lr", "manual"),
        ("layers", "auto-logged"),
        ("argv|0", "cli"),
        ("plain", None),
    ]
