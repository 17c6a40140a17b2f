"""Schema v6: a store as the schema-5 code left it (``metrics`` with AUTOINCREMENT, no parameter
``source``) opens with the current code, reads back exactly as before, and keeps numbering
new points after the old ones.

The current code cannot write an old store, so the old store is made from a new one: written
through the API, read back, then turned into the old layout (:func:`as_schema`: the same rows,
the old tables and indexes, value texts as the old code stored them)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import requests
from conftest import Api

from comet_callbacks.server import store as store_module
from comet_callbacks.server.embedded import start_server
from comet_callbacks.server.reader import Reader
from comet_callbacks.server.validate import text_of

KEY = "schema-six-admin-key-0123456789abcdef"
BATCH = "/clientlib/batch/logger/experiment/"


def _batch(api: Api, kind: str, key: str, values: list[dict[str, Any]]) -> None:
    r = requests.post(
        api.server.url + BATCH + kind,
        data=gzip.compress(json.dumps({"experimentKey": key, "values": values}).encode()),
        headers={"Authorization": api.key, "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def _points(names: tuple[str, ...], n: int, t0: int) -> list[dict[str, Any]]:
    """``n`` points per name; two points share each timestamp, and the steps run backwards
    every tenth point, so both read orders (timestamp, then arrival; step) are exercised."""
    return [
        {
            "metricName": name,
            "metricValue": "NaN" if i == 7 else (i % 13) / 4,
            "step": i - 5 if i % 10 == 0 else i,
            "epoch": i // 50,
            "context": "train" if i % 2 else None,
            "timestamp": t0 + i // 2,
        }
        for i in range(n)
        for name in names
    ]


def as_schema(db: Path, version: int) -> None:
    """Turn a store of the current schema into the same store as the schema-``version`` code
    (5 or 6) left it: ``metrics`` without ``series`` and with the indexes of that time, every
    value's text stored (the old code had no empty text); for 5, ``metrics`` with
    AUTOINCREMENT and ``params`` without ``source``."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.create_function("text_of", 1, text_of)
    old_indexes = (
        "CREATE INDEX metrics_key ON metrics(exp_key, name, ts);"
        "CREATE INDEX metrics_step ON metrics(exp_key, name, step, value);"
    )
    conn.executescript(
        "DROP INDEX metrics_ts; DROP INDEX metrics_step;"
        "ALTER TABLE metrics DROP COLUMN series; DROP TABLE series;"
        "UPDATE metrics SET value_text=text_of(value) WHERE value_text='';" + old_indexes
    )
    if version == 5:
        conn.executescript(
            "CREATE TABLE metrics_v5 (seq INTEGER PRIMARY KEY AUTOINCREMENT, exp_key TEXT NOT NULL,"
            " name TEXT NOT NULL, value REAL, value_text TEXT NOT NULL, ts INTEGER NOT NULL,"
            " step INTEGER, epoch INTEGER, context TEXT, system INTEGER NOT NULL DEFAULT 0);"
            "INSERT INTO metrics_v5 SELECT * FROM metrics ORDER BY seq; DROP TABLE metrics;"
            "ALTER TABLE metrics_v5 RENAME TO metrics;"
            + old_indexes
            + "ALTER TABLE params DROP COLUMN source;"
        )
    conn.execute(f"PRAGMA user_version={version}")
    conn.close()


def _everything(api: Api, reader: Reader, key: str) -> dict[str, Any]:
    """What the REST reads and the UI's chart API answer for ``key``."""
    out: dict[str, Any] = {
        "summary": reader.metric_summary(key),
        "parameters": reader.parameters_raw(key),
    }
    for name in ("loss", "acc", "sys.ram.total"):
        out[name] = reader.metrics(key, name)
        for x in ("step", "time", "epoch"):
            out[name, x] = requests.get(
                api.server.url + "/ui-api/series",
                params={"experimentKey": key, "metricName": name, "x": x, "points": 40},
                headers={"Authorization": api.key},
                timeout=10,
            ).json()
    out["system"] = api.ok(api.get("experiment/system-details", experimentKey=key))
    return out


def _schema(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return {
            name: sql
            for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql NOT NULL")
        }


def test_a_schema_5_store_migrates_and_reads_back_the_same(tmp_path: Path) -> None:
    db, assets = tmp_path / "comet.sqlite", tmp_path / "assets"
    with start_server(db_path=db, assets_dir=assets, api_key=KEY) as server:
        api = Api(server)
        key = api.create("old")
        _batch(api, "metric", key, _points(("loss", "acc"), 300, 1_000))
        for i in range(3):  # one by one too, and a system metric
            body = {"experimentKey": key, "metricName": "sys.ram.total", "metricValue": 8 + i}
            api.ok(api.post("write/experiment/metric", {**body, "timestamp": 2_000 + i}))
        for name, value in (("lr", 0.1), ("opt|name", "adam"), ("lr", 0.2)):
            # one by one: this code's parameter batches store a source, which schema 5 lacks
            body = {"experimentKey": key, "parameterName": name, "parameterValue": value}
            api.ok(api.post("write/experiment/parameter", body))
        reader = Reader(server.url, KEY)
        before = _everything(api, reader, key)
        reader.close()
    as_schema(db, 5)
    old = _schema(db)
    assert "AUTOINCREMENT" in old["metrics"] and "source" not in old["params"]
    with sqlite3.connect(db) as conn:
        old_rows = conn.execute("SELECT * FROM metrics ORDER BY seq").fetchall()
        old_top = conn.execute("SELECT MAX(seq) FROM metrics").fetchone()[0]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5

    with start_server(db_path=db, assets_dir=assets, api_key=KEY) as server:
        api = Api(server)
        reader = Reader(server.url, KEY)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
            rows = conn.execute("SELECT * FROM metrics ORDER BY seq").fetchall()
            assert [r[:10] for r in rows] == old_rows
            assert conn.execute(
                "SELECT COUNT(*) FROM sqlite_sequence WHERE name='metrics'"
            ).fetchone() == (0,)
            assert conn.execute("SELECT DISTINCT source FROM params").fetchall() == [(None,)]
        new = _schema(db)
        assert "AUTOINCREMENT" not in new["metrics"] and "seq INTEGER PRIMARY KEY" in new["metrics"]
        assert "metrics_step" in set(new)
        assert _everything(api, reader, key) == before
        # new points are numbered after the old ones and read back after them
        _batch(api, "metric", key, _points(("loss",), 3, 9_000))
        loss = reader.metrics(key, "loss")
        assert [p["offset"] for p in loss[-3:]] == [old_top + 1, old_top + 2, old_top + 3]
        assert [p["timestamp"] for p in loss[-3:]] == [9_000, 9_000, 9_001]
        # and a parameter batch's sources are kept next to the old values
        item = {"parameterName": "seed", "parameterValue": 7, "source": "auto-logged"}
        _batch(api, "parameter", key, [item])
        assert reader.parameters(key) == {"lr": "0.2", "opt|name": "adam", "seed": "7"}
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT name, source FROM params ORDER BY seq").fetchall()
        assert rows == [("lr", None), ("opt|name", None), ("lr", None), ("seed", "auto-logged")]
        reader.close()
