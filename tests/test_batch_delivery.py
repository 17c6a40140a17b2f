"""Batches end to end against the real local server: the BATCH.md §4 fallback matrix (no batch
endpoints, an HTML page, one bad value, a batch too large, throttling) and the WIRE.md §6
retries, each checked by reading back exactly what the server stored, once."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from quiet import quiet

from comet_callbacks import Experiment
from comet_callbacks.config import Settings
from comet_callbacks.offline import RunStore, read_acks
from comet_callbacks.rest.client import RestClient
from comet_callbacks.rest.delivery import batch_supported
from comet_callbacks.rest.endpoints import calls
from comet_callbacks.sender import Sender
from comet_callbacks.server.embedded import start_server
from comet_callbacks.server.reader import Reader
from comet_callbacks.upload import upload_run

QUIET: dict[str, Any] = quiet(timeout_cleaning=60)
BATCH_PATH = "/clientlib/batch/logger/experiment/"


@pytest.fixture(autouse=True)
def _forget_capabilities() -> Iterator[None]:
    """Capability is remembered per server root and process: start each test unknown."""
    from comet_callbacks.rest import delivery

    delivery._support.clear()
    yield
    delivery._support.clear()


def _run(
    n: int = 2500, before: Any = None, **settings: Any
) -> tuple[Experiment, list[tuple[int, float]]]:
    exp = Experiment(project_name="batch", **QUIET, **settings)
    assert exp.mode == "online"
    if before is not None:
        before(exp)
    exp.log_parameters({"lr": 0.1, "opt": {"name": "adam"}})
    logged = []
    for i in range(n):
        exp.log_metric("loss", i / 7, step=i)
        logged.append((i, i / 7))
    exp.log_parameter("lr", 0.2)
    exp.end()
    return exp, logged


def _assert_once(reader: Reader, key: str, logged: list[tuple[int, float]]) -> None:
    stored = collections.Counter(
        (p["step"], float(p["metricValue"])) for p in reader.metrics(key, "loss")
    )
    expected = collections.Counter(logged)
    assert stored == expected, (
        f"missing {len(expected - stored)}, duplicated {len(stored - expected)}"
    )
    params = reader.parameters(key)
    assert params["lr"] == "0.2" and params["opt|name"] == "adam"


def _requests_to(proxy_log: list[str], part: str) -> int:
    return sum(1 for p in proxy_log if part in p)


def test_batches_are_used_and_stored_once(comet_env, reader, monkeypatch) -> None:
    seen: list[str] = []

    def record(method: str, path: str) -> bool:
        seen.append(path)
        return False

    with FaultProxy(comet_env.url, match=record) as proxy:
        monkeypatch.setenv("COMET_URL_OVERRIDE", proxy.url)
        exp, logged = _run(2500)
    _assert_once(reader, exp.key, logged)
    assert _requests_to(seen, BATCH_PATH + "metric") >= 3  # 2500 points: at least 3 batches
    assert _requests_to(seen, "write/experiment/metric") == 0
    assert len(seen) < 40, seen  # not one request per point


def test_server_without_batch_endpoints_falls_back_per_point(comet_env, reader) -> None:
    comet_env.limits.batch_endpoints = False  # the server answers 404 on both paths
    exp, logged = _run(300)
    _assert_once(reader, exp.key, logged)
    assert not batch_supported(comet_env.url, "metric")
    assert not batch_supported(comet_env.url, "parameter")


def test_html_page_on_the_batch_path_falls_back_per_point(comet_env, reader, monkeypatch) -> None:
    def batch_only(method: str, path: str) -> bool:
        return path.startswith(BATCH_PATH)

    with FaultProxy(comet_env.url, faults={"html": 1.0}, match=batch_only) as proxy:
        monkeypatch.setenv("COMET_URL_OVERRIDE", proxy.url)
        exp, logged = _run(300)
        assert proxy.stats["html"] >= 1
        assert not batch_supported(proxy.url, "metric")
    _assert_once(reader, exp.key, logged)


def test_one_bad_value_fails_alone(comet_env, reader, tmp_path) -> None:
    """A 400 on a batch re-sends its points one by one: the bad one is refused, the rest stored."""
    client = RestClient(comet_env.url, comet_env.api_key)
    key = client.create_experiment("local", "batch")["experimentKey"]
    store = RunStore(str(tmp_path / "run"))
    sender = Sender(store, key, client)
    now = time.time()
    for i in range(50):
        if i == 17:  # a value only the server refuses, built as an event by hand
            sender.put(calls.log_metric(key, "m", "not a number", step=i, timestamp=1))
        else:
            sender.put(("m", float(i), i, None, None, now))
    assert sender.close(30)  # the refused point is handled (reported), not pending
    steps = sorted(p["step"] for p in reader.metrics(key, "m"))
    assert steps == [i for i in range(50) if i != 17]
    assert sender.stats.failed  # reported, with the server's message naming the field
    assert any("metricValue" in m for m in sender.stats.first_errors.values())
    assert read_acks(store.path) == set(range(1, 51))  # refused for good: never replayed
    assert batch_supported(comet_env.url, "metric")  # one bad batch does not switch off
    store.close()
    client.close()


def test_batch_too_large_is_split(tmp_path) -> None:
    with start_server(db_path=tmp_path / "s" / "db.sqlite", max_json_bytes=30_000) as srv:
        seen: list[str] = []

        def record(method: str, path: str) -> bool:
            seen.append(path)
            return False

        with FaultProxy(srv.url, match=record) as proxy:
            kw = dict(url_override=proxy.url, api_key=srv.api_key)
            kw["offline_directory"] = str(tmp_path / "off")
            exp, logged = _run(1500, **kw)
        rd = Reader(srv.url, srv.api_key)
        _assert_once(rd, exp.key, logged)
        rd.close()
    # 1000 items (~100 KB) do not fit: halves, quarters... until they do; still batches
    assert _requests_to(seen, BATCH_PATH + "metric") > 2
    assert _requests_to(seen, "write/experiment/metric") == 0


def test_throttled_batches_wait_and_are_resent(comet_env, reader) -> None:
    """429 (Retry-After-Custom) → the same batch again after the wait; never per point."""
    senders = []

    def throttle(exp: Experiment) -> None:
        senders.append(exp._sender)
        comet_env.throttle(2.0, retry_after=0.5)

    t0 = time.monotonic()
    exp, logged = _run(2000, before=throttle)
    assert time.monotonic() - t0 >= 1.5  # it did wait for the window
    _assert_once(reader, exp.key, logged)
    assert batch_supported(comet_env.url, "metric")
    stats = senders[0].stats
    assert any(status == "429" for _, status in stats.retried), stats.summary()
    assert not stats.failed


def test_upload_waits_out_throttling_in_one_run(comet_env, reader, capsys) -> None:
    """The quick version of "20 s of 429 with Retry-After: 5": one upload, complete, and the
    progress line says what it is waiting for."""
    exp = Experiment(project_name="batch", mode="offline", **QUIET)
    for i in range(3000):
        exp.log_metric("loss", i / 7, step=i)
    exp.log_parameter("lr", 0.2)
    exp.end()
    comet_env.throttle(2.0, retry_after=1.0)
    res = upload_run(exp.offline_path, Settings.resolve(), progress=True)
    assert res.complete and res.failed == 0, res.errors
    assert "server busy (429), retrying in 1 s" in capsys.readouterr().err
    key = res.experiment_key
    assert sorted(p["step"] for p in reader.metrics(key, "loss")) == list(range(3000))
    assert reader.parameters(key)["lr"] == "0.2"


def test_upload_through_faults_is_complete_in_one_run(comet_env, reader, monkeypatch) -> None:
    exp = Experiment(project_name="batch", mode="offline", **QUIET)
    logged = []
    for i in range(5000):
        exp.log_metric("loss", i / 7, step=i)
        logged.append((i, i / 7))
        if i % 500 == 0:
            exp.log_other("progress", i)
    exp.log_parameters({"lr": 0.2, "opt": {"name": "adam"}})
    exp.end()
    faults = {"drop": 0.1, "500": 0.1, "503": 0.1, "429": 0.1, "cut_after_commit": 0.1}

    def not_create(method: str, path: str) -> bool:
        return not path.endswith("write/experiment/create")

    with FaultProxy(comet_env.url, faults=faults, retry_after=0.2, match=not_create) as proxy:
        monkeypatch.setenv("COMET_URL_OVERRIDE", proxy.url)
        res = upload_run(exp.offline_path, Settings.resolve())
        assert sum(proxy.stats[k] for k in faults) > 0, proxy.stats
    assert res.complete and res.failed == 0, res.errors
    _assert_once(reader, res.experiment_key, logged)
    assert reader.others(res.experiment_key)["progress"] == "4500"


def test_upload_with_batching_off_sends_per_point(comet_env, reader, monkeypatch) -> None:
    exp = Experiment(project_name="batch", mode="offline", **QUIET)
    for i in range(30):
        exp.log_metric("loss", float(i), step=i)
    exp.end()
    monkeypatch.setenv("COMET_BATCH", "false")
    seen: list[str] = []

    def record(method: str, path: str) -> bool:
        seen.append(path)
        return False

    with FaultProxy(comet_env.url, match=record) as proxy:
        monkeypatch.setenv("COMET_URL_OVERRIDE", proxy.url)
        res = upload_run(exp.offline_path, Settings.resolve())
    assert res.complete
    assert _requests_to(seen, "write/experiment/metric") == 30
    assert _requests_to(seen, BATCH_PATH) == 0
    assert Path(exp.offline_path).is_dir()


def test_reupload_after_deleting_the_experiment_stores_everything_again(comet_env, reader) -> None:
    """Request ids name the target experiment: a run uploaded again into a new experiment
    (its experiment deleted, its upload state reset) is stored again, not answered from the
    cache of the first upload."""
    exp = Experiment(project_name="batch", mode="offline", **QUIET)
    for i in range(300):
        exp.log_metric("loss", float(i), step=i)
    exp.log_html("<p>x</p>")
    exp.end()
    run = Path(exp.offline_path)
    first = upload_run(str(run), Settings.resolve())
    assert first.complete
    client = RestClient(comet_env.url, comet_env.api_key)
    client.delete_experiment(first.experiment_key)
    client.close()
    meta = json.loads((run / "meta.json").read_text())
    for k in ("uploaded", "uploadedKey", "uploadedWorkspace"):
        meta.pop(k, None)
    (run / "meta.json").write_text(json.dumps(meta))
    (run / "acks.log").write_text("")
    second = upload_run(str(run), Settings.resolve())
    assert second.complete and second.failed == 0, second.errors
    assert second.experiment_key != first.experiment_key
    assert sorted(p["step"] for p in reader.metrics(second.experiment_key, "loss")) == list(
        range(300)
    )
    assert reader.html(second.experiment_key) == "<p>x</p>"


def test_three_refused_batches_whose_points_pass_switch_batching_off(httpserver) -> None:
    """BATCH §4: a server that refuses every batch (400) but takes each point gets per-point
    requests after three such batches; every point is reported stored exactly once."""
    from comet_callbacks.rest.delivery import Deliverer

    httpserver.expect_request(BATCH_PATH + "metric", method="POST").respond_with_json(
        {"msg": "values: no", "code": 400}, status=400
    )
    httpserver.expect_request("/api/rest/v2/write/experiment/metric").respond_with_json(
        {"msg": "Saved"}
    )
    root = httpserver.url_for("/").rstrip("/")
    client = RestClient(root, "k" * 20, retries=0)
    deliver = Deliverer(client)
    outcomes: list[tuple[int, Any]] = []
    for b in range(4):
        entries = [(b * 10 + i, ("m", float(i), i, None, None, 1.0)) for i in range(10)]
        deliver.send_batch(
            "metric",
            "e" * 32,
            entries,
            lambda ev: {
                "metricName": ev[0],
                "metricValue": ev[1],
                "step": ev[2],
                "epoch": None,
                "context": None,
                "timestamp": 1000,
            },  # fmt: skip
            lambda ev: calls.log_metric("e" * 32, ev[0], ev[1], step=ev[2], timestamp=1000),
            lambda tag: f"r.{tag}",
            lambda seq, exc, call: outcomes.append((seq, exc)),
        )
        assert batch_supported(root, "metric") is (b < 2)
    client.close()
    assert sorted(s for s, _ in outcomes) == list(range(40))
    assert all(exc is None for _, exc in outcomes)
    paths = [req.path for req, _ in httpserver.log]
    assert paths.count(BATCH_PATH + "metric") == 3  # the fourth batch went per point at once
    assert paths.count("/api/rest/v2/write/experiment/metric") == 40


def test_experiment_creation_waits_out_throttling(comet_env, reader, caplog) -> None:
    """Creating the experiment during a 429 window waits as the sender would (Retry-After
    honoured, one status line) instead of failing after three quick tries."""
    comet_env.throttle(3.0, retry_after=1.0)
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="comet_callbacks"):
        exp = Experiment(project_name="batch", **QUIET)
    waited = time.monotonic() - t0
    assert exp.mode == "online" and exp.key
    assert waited >= 2.0, waited  # it waited for the window, not 3 tries of 1 s
    assert [r for r in caplog.records if "server busy (429)" in r.getMessage()]
    exp.log_metric("loss", 0.5, step=1)
    exp.end()
    assert [p["step"] for p in reader.metrics(exp.key, "loss")] == [1]


def test_experiment_creation_gives_up_at_the_deadline(comet_env) -> None:
    """Past the cleaning timeout the 429 is reported, naming the server."""
    from comet_callbacks.experiment import ExperimentError

    comet_env.throttle(30.0, retry_after=2.0)
    t0 = time.monotonic()
    try:
        with pytest.raises(ExperimentError, match="could not create the experiment.*429"):
            Experiment(project_name="batch", **{**QUIET, "timeout_cleaning": 3})
    finally:
        comet_env.throttle(0)
    assert time.monotonic() - t0 < 10
