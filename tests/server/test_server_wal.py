"""The store's WAL is checkpointed by a thread of its own (not inside a request's commit), and
it still does not grow without bound: once checkpointed, SQLite writes the WAL from its start
again."""

from __future__ import annotations

import os
import time

from comet_callbacks.server.store import Store


def _write(store: Store, n: int, start: int) -> None:
    for b in range(n // 500):
        with store.tx() as tx:
            tx.conn.executemany(
                "INSERT INTO metrics (exp_key, name, value, value_text, ts, step) "
                "VALUES ('k', 'loss', ?, ?, ?, ?)",
                [(0.5, "0.5", start + b * 500 + i, i) for i in range(500)],
            )


def test_wal_is_checkpointed_in_the_background_and_reused(tmp_path) -> None:
    store = Store(tmp_path / "db.sqlite", tmp_path / "assets")
    wal = str(tmp_path / "db.sqlite") + "-wal"
    try:
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        _write(store, 20_000, 0)
        first = os.path.getsize(wal)
        assert first > 0
        time.sleep(2.5)  # the checkpointer folds the WAL in about once a second
        _write(store, 20_000, 20_000)
        assert os.path.getsize(wal) <= first * 1.2  # written from its start again, not appended
        assert store.conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 40_000
    finally:
        store.close()
    assert not store._checkpointer._thread.is_alive()
