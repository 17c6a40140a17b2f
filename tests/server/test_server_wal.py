"""The store's WAL is checkpointed by a thread of its own (not inside a request's commit), and
it still does not grow without bound: once checkpointed, SQLite writes the WAL from its start
again, and past a size limit the checkpointer truncates it."""

from __future__ import annotations

import os
import time

from comet_callbacks.server import store as store_module
from comet_callbacks.server.store import Store


def _write(store: Store, n: int, start: int) -> None:
    for b in range(max(1, n // 500)):
        with store.tx() as tx:
            tx.conn.executemany(
                "INSERT INTO metrics (exp_key, name, value, value_text, ts, step) "
                "VALUES ('k', 'loss', ?, ?, ?, ?)",
                [(0.5, "0.5", start + b * 500 + i, i) for i in range(500)],
            )


def _wait(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_wal_is_checkpointed_in_the_background_and_reused(tmp_path) -> None:
    store = Store(tmp_path / "db.sqlite", tmp_path / "assets")
    wal = str(tmp_path / "db.sqlite") + "-wal"
    try:
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        _write(store, 10_000, 0)
        first = os.path.getsize(wal)
        assert first > 0
        ckpt = store._checkpointer
        # the checkpointer folds the whole log in (about once a second)
        assert _wait(lambda: ckpt.last is not None and ckpt.last[1] == ckpt.last[2] > 0)
        _write(store, 500, 10_000)
        assert os.path.getsize(wal) <= first  # written from its start again, not appended
        assert store.conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 10_500
    finally:
        store.close()
    assert not store._checkpointer._thread.is_alive()


def test_a_wal_past_the_limit_is_truncated(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "WAL_LIMIT", 256 * 1024)
    store = Store(tmp_path / "db.sqlite", tmp_path / "assets")
    wal = str(tmp_path / "db.sqlite") + "-wal"
    try:
        _write(store, 10_000, 0)
        assert os.path.getsize(wal) > 256 * 1024
        assert _wait(lambda: os.path.getsize(wal) == 0)
        assert store.conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 10_000
    finally:
        store.close()


def _restarts(wal: str) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time the log starts
    again from its beginning (it writes the header with the first frame of the new log)."""
    with open(wal, "rb") as fh:
        header = fh.read(16)
    return int.from_bytes(header[12:16], "big") if len(header) == 16 else 0


def test_under_non_stop_writes_the_wal_still_restarts(tmp_path, monkeypatch) -> None:
    """Transactions back to back never leave the log idle for the checkpointer: the writer
    finishes its checkpoint between two transactions, and the log starts again. Without
    that the log holds every page written until the truncation limit, set out of reach here."""
    monkeypatch.setattr(store_module, "WAL_RESTART", 256 * 1024)
    monkeypatch.setattr(store_module, "WAL_LIMIT", 1 << 40)
    store = Store(tmp_path / "db.sqlite", tmp_path / "assets")
    wal = str(tmp_path / "db.sqlite") + "-wal"
    try:
        start, n = time.monotonic(), 0
        _write(store, 500, n)
        first = _restarts(wal)
        while time.monotonic() - start < 20 and _restarts(wal) < first + 2:
            _write(store, 500, n)
            n += 500
        assert _restarts(wal) >= first + 2
        assert store.conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == n + 500
    finally:
        store.close()
