"""The sender: several requests in flight, memory-bounded spill to the event log and refill,
delivery through a server outage, failures counted and summarised, and a flush that is
never fooled by the dispatcher being between two events."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from quiet import quiet

from comet_callbacks import Experiment
from comet_callbacks.experiment import ExperimentError
from comet_callbacks.offline import RunStore, read_acks, read_events
from comet_callbacks.rest.client import RestClient
from comet_callbacks.rest.endpoints import calls
from comet_callbacks.sender import Sender
from comet_callbacks.server.embedded import start_server
from comet_callbacks.server.reader import Reader

QUIET: dict[str, Any] = quiet(timeout_cleaning=60)


def _steps(reader: Reader, key: str, name: str) -> list[int]:
    return sorted(m["step"] for m in reader.metrics(key, name))


def test_tiny_queue_spills_to_disk_and_every_point_arrives_once(comet_env, reader) -> None:
    exp = Experiment(**QUIET, max_queue_size=100, workers=4)
    sender = exp._sender
    assert sender is not None and sender.max_pending == 100
    spilled = False
    for i in range(5000):
        exp.log_metric("loss", float(i), step=i)
        if i % 100 == 0:
            time.sleep(0.001)  # let the dispatcher route while we log
            spilled = spilled or sender._spill_from is not None
            assert sender._pending <= 100
    assert spilled, "the lanes never filled up: the test did not exercise the spill"
    exp.log_parameter("last", "yes")
    exp.end()
    assert _steps(reader, exp.key, "loss") == list(range(5000))
    assert reader.parameters(exp.key)["last"] == "yes"


def test_outage_mid_run_every_point_once(comet_env, reader, caplog) -> None:
    exp = Experiment(**QUIET)
    for i in range(100):
        exp.log_metric("m", float(i), step=i)
    assert exp.flush(30)
    comet_env.stop()
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="comet_callbacks"):
        for i in range(100, 400):
            exp.log_metric("m", float(i), step=i)
            exp.log_parameter("p", i)
            if i % 50 == 0:
                time.sleep(0.3)
        assert time.monotonic() - t0 < 5, "log_* blocked during the outage"
        # longer than the transport's own retries (~3 s): the lanes back off and probe
        time.sleep(max(0.0, 4.5 - (time.monotonic() - t0)))
        sender = exp._sender
        assert sender is not None and sender.pending() > 0
        comet_env.start()
        exp.end()
    assert _steps(reader, exp.key, "m") == list(range(400))
    assert reader.parameters(exp.key)["p"] == "399"
    assert reader.metadata(exp.key)["running"] is False
    failing = [r for r in caplog.records if "delivery is failing" in r.getMessage()]
    assert len(failing) == 1  # reported once, not per event
    assert not sender.stats.failed and sender.stats.retried


class _SlowHandler(BaseHTTPRequestHandler):
    """Answers every request after 50 ms and records the most requests seen at once."""

    lock = threading.Lock()
    active = 0
    peak = 0
    count = 0

    def do_POST(self) -> None:  # noqa: N802
        cls = type(self)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        time.sleep(0.05)
        with cls.lock:
            cls.active -= 1
            cls.count += 1
        body = b'{"msg":"Saved"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_several_requests_in_flight(tmp_path) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        client = RestClient(f"http://127.0.0.1:{srv.server_port}", "k" * 20)
        sender = Sender(RunStore(str(tmp_path)), "e" * 32, client, workers=4, batch=False)
        for i in range(40):
            sender.put(("loss", float(i), i, None, None, time.time()))
        t0 = time.monotonic()
        assert sender.close(30)
        elapsed = time.monotonic() - t0
    finally:
        srv.shutdown()
    assert _SlowHandler.count == 40
    assert _SlowHandler.peak >= 3, _SlowHandler.peak
    assert elapsed < 40 * 0.05  # faster than one request at a time


def test_flush_waits_for_everything_logged_before_it(comet_env, reader) -> None:
    """Many flushes right after logging: each sees all earlier points delivered."""
    exp = Experiment(**QUIET)
    for round_ in range(20):
        for i in range(5):
            exp.log_metric("f", float(i), step=round_ * 5 + i)
        assert exp.flush(20) is True
        assert len(reader.metrics(exp.key, "f")) == (round_ + 1) * 5
    exp.end()


def test_offline_flush_writes_to_the_log(tmp_path) -> None:
    store = RunStore(str(tmp_path))
    sender = Sender(store, "k" * 32, None)
    for i in range(3000):
        sender.put(("m", float(i), i, None, None, time.time()))
    assert sender.flush(10) is True
    seqs = [e["seq"] for e in read_events(store.path)]
    assert seqs == list(range(1, 3001))
    assert sender.close(5) is True
    store.close()


def test_refused_events_are_counted_and_summarised(tmp_path, monkeypatch, caplog) -> None:
    """A 413 (asset too large) is refused for good: counted per endpoint and status, not
    retried, not replayed, summarised at end(); strict mode raises at end()."""
    srv = start_server(db_path=tmp_path / "s" / "db.sqlite", max_upload_bytes=1000)
    try:
        for name in ("COMET_URL_OVERRIDE", "COMET_API_KEY", "COMET_OFFLINE_DIRECTORY"):
            monkeypatch.delenv(name, raising=False)
        kw = dict(QUIET, url_override=srv.url, api_key=srv.api_key)
        kw["offline_directory"] = str(tmp_path / "off")
        exp = Experiment(**kw)
        with caplog.at_level(logging.WARNING, logger="comet_callbacks"):
            for i in range(3):
                exp.log_asset(b"x" * 5000, file_name=f"big{i}.bin")
            exp.log_metric("ok", 1.0)
            exp.end()
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "write/experiment/upload-asset (413): 3" in text
        rd = Reader(srv.url, srv.api_key)
        assert len(rd.metrics(exp.key, "ok")) == 1 and rd.assets(exp.key) == []
        rd.close()
        strict = Experiment(**kw, strict=True)
        strict.log_asset(b"x" * 5000, file_name="big.bin")
        with pytest.raises(ExperimentError, match="413"):
            strict.end()
    finally:
        srv.close()


def test_acks_are_written_through(tmp_path) -> None:
    """An ack is in the file as soon as ack() returns (a SIGKILL cannot lose it)."""
    store = RunStore(str(tmp_path))
    store.append(1, calls.log_other("k" * 32, "a", 1))
    store.ack(1, True)
    assert read_acks(store.path) == {1}
    store.close()
    store.ack(2, False)  # a late answer after close is still recorded
    assert read_acks(store.path) == {1, 2}
    assert json.loads(Path(store.path, "events.jsonl").read_text())["seq"] == 1
