"""Schema v7: a metric's points are found through its series (``series``: ``(exp_key, name)``
numbered once, the id in every ``metrics`` row and in both of its indexes). A store as the
schema-6 code left it (made as ``test_server_schema_v6`` makes old stores) opens with the
current code and reads back exactly as before; new points join their old series."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import Api
from test_server_schema_v6 import KEY, _batch, _everything, _points, _schema, as_schema

from comet_callbacks.server import store as store_module
from comet_callbacks.server.embedded import start_server
from comet_callbacks.server.reader import Reader


def test_a_schema_6_store_migrates_to_7_and_reads_back_the_same(tmp_path: Path) -> None:
    db, assets = tmp_path / "comet.sqlite", tmp_path / "assets"
    with start_server(db_path=db, assets_dir=assets, api_key=KEY) as server:
        api = Api(server)
        keys = [api.create("old"), api.create("old")]
        for n, key in enumerate(keys):
            _batch(api, "metric", key, _points(("loss", "acc"), 200 + n, 1_000))
            for i in range(3):  # one by one too, and a system metric
                body = {"experimentKey": key, "metricName": "sys.ram.total", "metricValue": 8 + i}
                api.ok(api.post("write/experiment/metric", {**body, "timestamp": 2_000 + i}))
        reader = Reader(server.url, KEY)
        before = [_everything(api, reader, key) for key in keys]
        reader.close()
    as_schema(db, 6)
    assert "series" not in _schema(db)["metrics"]
    with sqlite3.connect(db) as conn:
        old_rows = conn.execute("SELECT * FROM metrics ORDER BY seq").fetchall()
        old_top = conn.execute("SELECT MAX(seq) FROM metrics").fetchone()[0]

    with start_server(db_path=db, assets_dir=assets, api_key=KEY) as server:
        api = Api(server)
        reader = Reader(server.url, KEY)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
            # the rows are the old ones, each with its series
            rows = conn.execute("SELECT * FROM metrics ORDER BY seq").fetchall()
            assert [r[:-1] for r in rows] == old_rows
            series = dict(
                ((k, n), i) for i, k, n in conn.execute("SELECT id, exp_key, name FROM series")
            )
            assert len(series) == 6  # two experiments x (loss, acc, sys.ram.total)
            assert all(r[-1] == series[r[1], r[2]] for r in rows)
        new = _schema(db)
        assert {"metrics_ts", "metrics_step"} <= set(new) and "metrics_key" not in new
        assert "(series, step, value)" in new["metrics_step"]
        assert [_everything(api, reader, key) for key in keys] == before
        # new points join their old series and read back after the old ones
        _batch(api, "metric", keys[0], _points(("loss",), 3, 9_000))
        loss = reader.metrics(keys[0], "loss")
        assert [p["offset"] for p in loss[-3:]] == [old_top + 1, old_top + 2, old_top + 3]
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM series").fetchone()[0] == 6
        reader.close()


def test_a_new_store_starts_at_the_latest_schema(tmp_path: Path) -> None:
    db = tmp_path / "comet.sqlite"
    with start_server(db_path=db, assets_dir=tmp_path / "assets", api_key=KEY) as server:
        api = Api(server)
        key = api.create("new")
        _batch(api, "metric", key, _points(("loss", "acc"), 4, 1_000))
        api.ok(api.post("write/experiment/metric", {"experimentKey": key, "metricName": "x",
                                                     "metricValue": 1}))  # fmt: skip
        offsets = [p["offset"] for p in Reader(server.url, KEY).metrics(key, "loss")]
        assert offsets == sorted(offsets) and len(set(offsets)) == 4
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
        names = conn.execute("SELECT name FROM series WHERE exp_key=? ORDER BY id", (key,))
        assert [r[0] for r in names] == ["loss", "acc", "x"]  # numbered in logging order
        assert conn.execute("SELECT COUNT(*) FROM metrics WHERE series IS NULL").fetchone() == (0,)
    schema = _schema(db)
    assert "AUTOINCREMENT" not in schema["metrics"] and "series" in schema["metrics"]
