"""Wire fidelity, round 2: output lines sharing an offset, the output run context, and the
read order of metric points (logging order, not arrival order)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import requests

from comet_callbacks.server.embedded import start_server
from comet_callbacks.server.reader import Reader
from comet_callbacks.server.store import MIGRATIONS

OUT = "write/experiment/output"


def _line(text: str, offset: int, ts: int, stderr: bool = False) -> dict[str, object]:
    return {"output": text, "stderr": stderr, "localTimestamp": ts, "offset": offset}


def _stored_output(server, key: str) -> list[tuple[int, str, int, str | None]]:
    with sqlite3.connect(server.db_path) as conn:
        return conn.execute(
            "SELECT offset, text, stderr, context FROM output WHERE exp_key=? ORDER BY seq", (key,)
        ).fetchall()


def test_lines_of_two_requests_at_the_same_offset_are_both_kept(api, reader: Reader) -> None:
    # What the official SDK's APIExperiment.log_output sends: each call numbers from 0.
    key = api.create()
    api.ok(
        api.post(
            OUT, {"experimentKey": key, "outputLines": [_line("a\n", 0, 10), _line("b\n", 1, 10)]}
        )
    )
    api.ok(api.post(OUT, {"experimentKey": key, "outputLines": [_line("oops\n", 0, 20, True)]}))
    # Read order: offset, then arrival.
    assert reader.output(key) == "a\noops\nb\n"
    assert len(_stored_output(api.server, key)) == 3


def test_a_retried_line_is_stored_once(api, reader: Reader) -> None:
    key = api.create()
    body = {"experimentKey": key, "outputLines": [_line("x\n", 0, 5), _line("y\n", 1, 5)]}
    api.ok(api.post(OUT, body))
    api.ok(api.post(OUT, body))  # same offset, stream, text and timestamp: a retry
    # Same text at the same offset but another timestamp or stream is a different line.
    api.ok(api.post(OUT, {"experimentKey": key, "outputLines": [_line("x\n", 0, 6)]}))
    api.ok(api.post(OUT, {"experimentKey": key, "outputLines": [_line("x\n", 0, 5, True)]}))
    assert reader.output(key) == "x\nx\nx\ny\n"


def test_a_retry_with_the_same_request_id_is_stored_once(api, reader: Reader) -> None:
    key = api.create()
    headers = {"Authorization": api.key, "X-Comet-Request-Id": "out-1"}
    body = {"experimentKey": key, "outputLines": [_line("once\n", 0, 1)]}
    for _ in range(2):  # a true retry: same id, same request
        resp = requests.post(api.base + OUT, json=body, headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
    assert reader.output(key) == "once\n"
    # The same id on a different request is refused, never answered from the cache.
    other = {"experimentKey": key, "outputLines": [_line("other\n", 0, 2)]}
    resp = requests.post(api.base + OUT, json=other, headers=headers, timeout=10)
    assert resp.status_code == 409, resp.text
    assert "x-comet-request-id" in resp.json()["msg"].lower()
    assert reader.output(key) == "once\n"


def test_output_run_context_either_key_and_run_context_wins(api) -> None:
    key = api.create()
    api.ok(
        api.post(
            OUT, {"experimentKey": key, "runContext": "train", "outputLines": [_line("r", 0, 1)]}
        )
    )
    api.ok(
        api.post(OUT, {"experimentKey": key, "context": "val", "outputLines": [_line("c", 1, 1)]})
    )
    api.ok(
        api.post(
            OUT,
            {
                "experimentKey": key,
                "context": "no",
                "runContext": "yes",
                "outputLines": [_line("b", 2, 1)],
            },
        )
    )
    assert [row[3] for row in _stored_output(api.server, key)] == ["train", "val", "yes"]


def test_metric_points_come_back_in_logging_order(api, reader: Reader) -> None:
    key = api.create()
    # Arrival order differs from logging order (parallel senders, several batches).
    arrival = [(9, 1009), (4, 1004), (14, 1014), (0, 1000), (19, 1019), (2, 1004)]
    for step, ts in arrival:
        api.ok(
            api.post(
                "write/experiment/metric",
                {
                    "experimentKey": key,
                    "metricName": "loss",
                    "metricValue": step / 10,
                    "step": step,
                    "timestamp": ts,
                },
            )
        )
    points = reader.metrics(key, "loss")
    # By timestamp; the two points logged in the same millisecond keep their arrival order.
    assert [p["step"] for p in points] == [0, 4, 2, 9, 14, 19]
    assert [p["timestamp"] for p in points] == [1000, 1004, 1004, 1009, 1014, 1019]
    summary = {s["name"]: s for s in reader.metric_summary(key)}["loss"]
    assert summary["valueCurrent"] == "1.9" and summary["stepCurrent"] == 19


def test_a_version_2_database_keeps_its_output_and_accepts_shared_offsets(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    for version in (1, 2):
        conn.executescript(MIGRATIONS[version])
    conn.execute("PRAGMA user_version=2")
    conn.execute(
        "INSERT INTO output (exp_key, offset, text, stderr, ts, context) VALUES ('k', 0, 'old\n', 0, 1, NULL)"
    )
    conn.commit()
    conn.close()
    with start_server(db_path=db, assets_dir=tmp_path / "assets") as server:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            assert conn.execute("SELECT text FROM output WHERE exp_key='k'").fetchall() == [
                ("old\n",)
            ]
        base = server.url + "/api/rest/v2/"
        auth = {"Authorization": server.api_key}
        key = requests.post(
            base + "write/experiment/create",
            json={"workspaceName": server.workspace, "projectName": "p"},
            headers=auth,
            timeout=10,
        ).json()["experimentKey"]
        for text, ts in (("1\n", 1), ("2\n", 2)):
            body = {"experimentKey": key, "outputLines": [_line(text, 0, ts)]}
            assert requests.post(base + OUT, json=body, headers=auth, timeout=10).status_code == 200
        assert Reader(server.url, server.api_key).output(key) == "1\n2\n"
