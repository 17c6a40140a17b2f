"""SQLite storage of the local server: schema, migrations, transactions, users and keys.

One database file in WAL mode and one connection guarded by a lock: every request is
one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``/``ROLLBACK``), so concurrent clients
never see "database is locked" and a failed request leaves nothing half-written.
Asset files live next to the database under server-generated names.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import shutil
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .uploads import clear_incoming

log = logging.getLogger("comet_callbacks.server")

SCHEMA_VERSION = 7

_SCHEMA_V1 = """
CREATE TABLE users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, default_workspace TEXT NOT NULL,
    is_service INTEGER NOT NULL DEFAULT 0, created_by TEXT, created_at INTEGER NOT NULL,
    authorized_workspaces TEXT, organization TEXT
);
CREATE TABLE api_keys (key TEXT PRIMARY KEY, user_id TEXT NOT NULL);
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
    plan TEXT, created_at INTEGER NOT NULL
);
CREATE TABLE members (
    workspace TEXT NOT NULL, user_id TEXT NOT NULL, admin INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, user_id)
);
CREATE TABLE projects (
    id TEXT PRIMARY KEY, workspace TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    is_public INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL, notes TEXT,
    created_at INTEGER NOT NULL, last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX projects_name ON projects(workspace, name) WHERE deleted = 0;
CREATE TABLE share_links (project_id TEXT NOT NULL, code TEXT NOT NULL, PRIMARY KEY (project_id, code));
CREATE TABLE experiments (
    key TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT,
    archived INTEGER NOT NULL DEFAULT 0, stopped INTEGER NOT NULL DEFAULT 0,
    start_ms INTEGER NOT NULL, end_ms INTEGER, last_beat_ms INTEGER NOT NULL,
    file_path TEXT, deleted INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL
);
CREATE INDEX experiments_project ON experiments(project_id);
CREATE TABLE symlinks (exp_key TEXT NOT NULL, project_id TEXT NOT NULL, PRIMARY KEY (exp_key, project_id));
CREATE TABLE exp_values (
    exp_key TEXT NOT NULL, kind TEXT NOT NULL, value BLOB, PRIMARY KEY (exp_key, kind)
);
CREATE TABLE metrics (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, exp_key TEXT NOT NULL, name TEXT NOT NULL,
    value REAL, value_text TEXT NOT NULL, ts INTEGER NOT NULL, step INTEGER, epoch INTEGER,
    context TEXT, system INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX metrics_key ON metrics(exp_key, name, ts);
CREATE TABLE params (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, exp_key TEXT NOT NULL, name TEXT NOT NULL,
    value TEXT NOT NULL, ts INTEGER NOT NULL, step INTEGER
);
CREATE INDEX params_key ON params(exp_key, name);
CREATE TABLE others (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, exp_key TEXT NOT NULL, name TEXT NOT NULL,
    value TEXT NOT NULL, ts INTEGER NOT NULL
);
CREATE INDEX others_key ON others(exp_key, name);
CREATE TABLE tags (exp_key TEXT NOT NULL, tag TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (exp_key, tag));
CREATE TABLE output (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, exp_key TEXT NOT NULL, offset INTEGER NOT NULL,
    text TEXT NOT NULL, stderr INTEGER NOT NULL, ts INTEGER, context TEXT,
    UNIQUE (exp_key, offset)
);
CREATE TABLE text_samples (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, exp_key TEXT NOT NULL, content TEXT NOT NULL,
    step INTEGER, context TEXT, metadata TEXT, ts INTEGER NOT NULL
);
CREATE TABLE assets (
    id TEXT PRIMARY KEY, exp_key TEXT NOT NULL, file_name TEXT NOT NULL, type TEXT NOT NULL,
    extension TEXT, step INTEGER, epoch INTEGER, context TEXT, size INTEGER NOT NULL,
    created_at INTEGER NOT NULL, metadata TEXT, remote INTEGER NOT NULL DEFAULT 0,
    link TEXT, storage TEXT, grouping TEXT, model_id TEXT,
    artifact_id TEXT, artifact_version_id TEXT, seq INTEGER NOT NULL
);
CREATE INDEX assets_key ON assets(exp_key);
CREATE TABLE asset_tags (asset_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (asset_id, tag));
CREATE TABLE exp_models (
    id TEXT PRIMARY KEY, exp_key TEXT NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL,
    UNIQUE (exp_key, name)
);
CREATE TABLE registry_models (
    id TEXT PRIMARY KEY, workspace TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    is_public INTEGER NOT NULL DEFAULT 0, notes TEXT, created_at INTEGER NOT NULL,
    last_updated INTEGER NOT NULL, UNIQUE (workspace, name)
);
CREATE TABLE registry_items (
    id TEXT PRIMARY KEY, model_id TEXT NOT NULL, version TEXT NOT NULL, comment TEXT,
    stages TEXT NOT NULL, exp_model_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    UNIQUE (model_id, version)
);
CREATE TABLE webhooks (
    workspace TEXT NOT NULL, model_name TEXT NOT NULL, url TEXT NOT NULL, headers TEXT,
    PRIMARY KEY (workspace, model_name, url)
);
CREATE TABLE artifacts (
    id TEXT PRIMARY KEY, workspace TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 0, UNIQUE (workspace, name)
);
CREATE TABLE artifact_versions (
    id TEXT PRIMARY KEY, artifact_id TEXT NOT NULL, version TEXT NOT NULL, exp_key TEXT NOT NULL,
    state TEXT NOT NULL, metadata TEXT, aliases TEXT, tags TEXT, created_at INTEGER NOT NULL,
    UNIQUE (artifact_id, version)
);
CREATE TABLE viz_store (instance_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, store TEXT NOT NULL);
"""

# v2: answers of writes sent with an `X-Comet-Request-Id`, so a retried write (the client
# never saw the first answer) is acknowledged with the first answer instead of stored twice.
_SCHEMA_V2 = """
CREATE TABLE request_ids (
    user_id TEXT NOT NULL, request_id TEXT NOT NULL, path TEXT NOT NULL,
    response TEXT NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, request_id)
)
"""

# v3: output lines are no longer unique per offset. The official SDK's `log_output` numbers
# each call's lines from 0, so two requests may carry different lines at the same offset;
# only a true retry (same offset, stream, text and timestamp) is a duplicate (checked on write).
_SCHEMA_V3 = """
CREATE TABLE output_v3 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, exp_key TEXT NOT NULL, offset INTEGER NOT NULL,
    text TEXT NOT NULL, stderr INTEGER NOT NULL, ts INTEGER, context TEXT
);
INSERT INTO output_v3 (seq, exp_key, offset, text, stderr, ts, context)
    SELECT seq, exp_key, offset, text, stderr, ts, context FROM output;
DROP TABLE output;
ALTER TABLE output_v3 RENAME TO output;
CREATE INDEX output_key ON output(exp_key, offset)
"""


def _schema_v4(conn: sqlite3.Connection) -> None:
    """v4: API keys at rest are salted SHA-256 hashes; the plain admin key copy is gone.

    Existing keys keep working (each is hashed in place). ``secure_delete`` overwrites the
    freed pages, so the plain keys do not linger in the file either.
    """
    conn.execute(
        "CREATE TABLE api_keys_hashed (salt TEXT NOT NULL, hash TEXT NOT NULL, "
        "user_id TEXT NOT NULL, created_at INTEGER NOT NULL)"
    )
    for key, user_id in conn.execute("SELECT key, user_id FROM api_keys").fetchall():
        salt = secrets.token_hex(16)
        conn.execute(
            "INSERT INTO api_keys_hashed VALUES (?,?,?,?)",
            (salt, hash_key(key, salt), user_id, now_ms()),
        )
    conn.execute("DROP TABLE api_keys")
    conn.execute("ALTER TABLE api_keys_hashed RENAME TO api_keys")
    conn.execute("CREATE INDEX api_keys_user ON api_keys(user_id)")
    conn.execute("DELETE FROM exp_values WHERE exp_key='' AND kind='admin_key'")


# v5: the web UI's charts bucket a metric's points by step in SQL: each bucket is a range
# scan of this index, which holds the value too (a million points never leave SQLite).
_SCHEMA_V5 = "CREATE INDEX metrics_step ON metrics(exp_key, name, step, value)"

# v6: ``metrics`` is rebuilt without AUTOINCREMENT. Its ``seq`` stays the table's row id, and
# as no metric row is ever deleted, a plain row id still only grows: what the readers rely on
# (arrival order, the charts' "stored since" check). AUTOINCREMENT's bookkeeping in
# ``sqlite_sequence`` cost about 1.3 µs of each row's insert. Rows and ``seq`` values are
# copied as they are. ``params`` gets the ``source`` of a value sent in a parameter batch
# (``manual``, ``auto-logged``, ``cli``; NULL when unknown, e.g. sent one by one).
_SCHEMA_V6 = """
CREATE TABLE metrics_v6 (
    seq INTEGER PRIMARY KEY, exp_key TEXT NOT NULL, name TEXT NOT NULL,
    value REAL, value_text TEXT NOT NULL, ts INTEGER NOT NULL, step INTEGER, epoch INTEGER,
    context TEXT, system INTEGER NOT NULL DEFAULT 0
);
INSERT INTO metrics_v6 (seq, exp_key, name, value, value_text, ts, step, epoch, context, system)
    SELECT seq, exp_key, name, value, value_text, ts, step, epoch, context, system
    FROM metrics ORDER BY seq;
DROP TABLE metrics;
ALTER TABLE metrics_v6 RENAME TO metrics;
DELETE FROM sqlite_sequence WHERE name='metrics';
CREATE INDEX metrics_key ON metrics(exp_key, name, ts);
CREATE INDEX metrics_step ON metrics(exp_key, name, step, value);
ALTER TABLE params ADD COLUMN source TEXT
"""

# v7: a metric's points are found through its series, ``(exp_key, name)`` numbered once in
# ``series``: the two indexes of ``metrics`` hold that small integer instead of a 32-character
# key and the name, which made each stored point's index entries about three times smaller
# and its insert about a fifth cheaper. The rows keep ``exp_key`` and ``name``.
_SCHEMA_V7 = """
CREATE TABLE series (
    id INTEGER PRIMARY KEY, exp_key TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (exp_key, name)
);
INSERT INTO series (exp_key, name)
    SELECT exp_key, name FROM metrics GROUP BY exp_key, name ORDER BY MIN(seq);
ALTER TABLE metrics ADD COLUMN series INTEGER;
UPDATE metrics SET series =
    (SELECT id FROM series WHERE series.exp_key=metrics.exp_key AND series.name=metrics.name);
DROP INDEX metrics_key;
DROP INDEX metrics_step;
CREATE INDEX metrics_ts ON metrics(series, ts);
CREATE INDEX metrics_step ON metrics(series, step, value)
"""

#: A metric's series in a WHERE clause, from ``exp_key`` and ``name`` parameters (one probe of
#: the ``series`` key; none such: no row).
SERIES = "series=(SELECT id FROM series WHERE exp_key=? AND name=?)"
#: All series of an experiment, from an ``exp_key`` parameter.
SERIES_OF = "series IN (SELECT id FROM series WHERE exp_key=?)"


def series_ids(conn: sqlite3.Connection, exp_key: str, names: Iterable[str]) -> dict[str, int]:
    """The series ids of metrics ``names`` of experiment ``exp_key``, numbered when new (in the
    caller's transaction): every ``metrics`` row carries its id (see ``_SCHEMA_V7``). Each
    name once: a batch passes its names without repeats."""
    out: dict[str, int] = {}
    for name in names:
        row = conn.execute(
            "SELECT id FROM series WHERE exp_key=? AND name=?", (exp_key, name)
        ).fetchone()
        if row is None:
            cur = conn.execute("INSERT INTO series (exp_key, name) VALUES (?,?)", (exp_key, name))
            out[name] = cur.lastrowid  # type: ignore[assignment]
        else:
            out[name] = row[0]
    return out


MIGRATIONS: dict[int, str | Callable[[sqlite3.Connection], None]] = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _schema_v4,
    5: _SCHEMA_V5,
    6: _SCHEMA_V6,
    7: _SCHEMA_V7,
}

#: Modes of everything the server writes: only the owner may read keys' hashes and data.
FILE_MODE = 0o600
DIR_MODE = 0o700


def now_ms() -> int:
    """Current time in epoch milliseconds."""
    return int(time.time() * 1000)


def new_id() -> str:
    """A server-made id: 32 lowercase hex characters."""
    return uuid.uuid4().hex


def new_api_key() -> str:
    """A fresh random API key (no ``*`` in it)."""
    return secrets.token_urlsafe(24).replace("*", "x")


def hash_key(key: str, salt: str) -> str:
    """The stored form of an API key: hex SHA-256 of salt + key.

    Generated keys carry 192 random bits, so one salted hash is enough to make the
    stored value useless to a reader of the database; a key chosen with ``--api-key``
    should be as long and random.
    """
    return hashlib.sha256(salt.encode() + key.encode("utf-8", "surrogatepass")).hexdigest()


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) and make it owner-only (0700), whatever the umask."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)


def _private_file(path: Path) -> None:
    """Make an existing file owner-only (0600); a missing one is fine."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        pass


#: Under non-stop writes a passive checkpoint never finds the WAL idle, so the log would never
#: restart and would grow without end. Past this size the checkpointer asks the writer to
#: finish the job between two transactions (:meth:`Checkpointer.finish`): a short checkpoint of
#: the frames written since its own, after which the next write starts the log again.
WAL_RESTART = 16 * 1024 * 1024
#: Should the WAL grow past this anyway (a reader holding an old snapshot keeps the log from
#: restarting), the checkpointer truncates it, holding writers back while it does.
WAL_LIMIT = 64 * 1024 * 1024
#: Bytes of a WAL frame: a 4 KiB page and its header.
WAL_FRAME = 4096 + 24


class Checkpointer:
    """Checkpoints the database's WAL about once a second (``PASSIVE``: never waits for, nor
    blocks, a writer) from its own thread and connection, so requests never pay for it.
    SQLite runs the checkpoint without the GIL, on another core when there is one. Past
    :data:`WAL_RESTART` it sets :attr:`restart` for the writer (see :meth:`finish`); past
    :data:`WAL_LIMIT` it checkpoints with ``TRUNCATE`` instead, so the WAL stays bounded.
    ``last`` is the answer of the latest checkpoint (busy, frames in the log, frames copied)."""

    def __init__(self, db_path: str | os.PathLike[str], interval: float = 1.0) -> None:
        self.last: tuple[int, int, int] | None = None
        #: set when the WAL should restart: the writer calls :meth:`finish` after its commit
        self.restart = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(str(db_path), interval), name="sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self, db_path: str, interval: float) -> None:
        conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            while not self._stop.wait(interval):
                try:
                    size = os.path.getsize(db_path + "-wal")
                except OSError:
                    size = 0
                try:
                    mode = "TRUNCATE" if size > WAL_LIMIT else "PASSIVE"
                    self.last = tuple(conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone())  # type: ignore[assignment]
                except sqlite3.Error as exc:  # e.g. busy: the next round catches up
                    log.debug("WAL checkpoint failed: %r", exc)
                    continue
                # right after this checkpoint, little is left for the writer to copy (the file
                # keeps its size when the log restarts: its frames tell how much the log holds)
                self.restart = self.last[1] * WAL_FRAME > WAL_RESTART and size <= WAL_LIMIT  # type: ignore[index]
        finally:
            conn.close()

    def finish(self, conn: sqlite3.Connection) -> None:
        """Called by the writer, between transactions, when :attr:`restart` is set: a passive
        checkpoint that, no write coming in the meantime, copies the whole log, so that the
        next write starts the log from its beginning. The bulk was copied by this thread."""
        self.restart = False
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next round asks again
            log.debug("WAL checkpoint by the writer failed: %r", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)


class Store:
    """The database plus the asset folder; all access goes through :meth:`tx`."""

    def __init__(self, db_path: str | os.PathLike[str], assets_dir: str | os.PathLike[str]):
        self.db_path = Path(db_path)
        self.assets_dir = Path(assets_dir).absolute()  # a later chdir must not move it
        if not self.db_path.parent.exists():
            private_dir(self.db_path.parent)  # ours: owner-only (an existing folder is left as is)
        private_dir(self.assets_dir)
        clear_incoming(self.assets_dir)
        # create the database file owner-only before SQLite opens it: SQLite gives the -wal
        # and -shm files the database file's mode
        os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        for suffix in ("", "-wal", "-shm"):
            _private_file(Path(str(self.db_path) + suffix))
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(
            str(self.db_path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.execute("PRAGMA secure_delete=ON")  # a dropped key hash leaves no trace
        self._migrate()
        # The WAL is folded into the database by a thread of its own, not inside a commit:
        # SQLite's automatic checkpoint runs in the committing request (copying pages and an
        # fsync); measured, it more than halved the rate of a 1M-point upload.
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = Checkpointer(self.db_path)

    # -- lifecycle -------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`, one migration per transaction."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._lock:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    migration = MIGRATIONS[target]
                    if callable(migration):
                        migration(self.conn)
                    else:
                        for stmt in migration.split(";"):
                            if stmt.strip():
                                self.conn.execute(stmt)
                    self.conn.execute(f"PRAGMA user_version={target}")
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
        if version < 4 <= SCHEMA_VERSION:  # plain keys were in the WAL: fold it in and empty it
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self._checkpointer.stop()
        with self._lock:
            self.conn.close()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """Read-only access without opening a transaction (e.g. checking a key before a
        request's body is read); the caller must not write through it."""
        with self._lock:
            yield Tx(self)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """One transaction: commit on success, roll back (and drop new files) on error."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            tx = Tx(self)
            try:
                yield tx
            except BaseException:
                self.conn.execute("ROLLBACK")
                for path in tx.new_files:
                    path.unlink(missing_ok=True)
                raise
            self.conn.execute("COMMIT")
            for path in tx.dropped_files:
                path.unlink(missing_ok=True)
            if self._checkpointer.restart:
                self._checkpointer.finish(self.conn)
        for fn in tx.after_commit:
            fn()

    # -- users and keys (Python API used by tests and the CLI) -----------------------------

    def ensure_admin(self, api_key: str | None = None) -> tuple[str | None, bool]:
        """Create the ``local`` admin user and workspace on first start.

        Returns ``(key, created)``: a new admin's key, or ``api_key`` when given (it is
        then (also) accepted for the admin). Keys are stored hashed, so an existing
        admin's key cannot be returned: ``(None, False)``; see :meth:`new_admin_key`.
        """
        with self.tx() as tx:
            row = tx.one("SELECT id FROM users WHERE name='local'")
            created = row is None
            key: str | None = None
            if created:
                user_id = tx.add_user("local", "local")
                if not api_key:
                    key = tx.add_key(user_id)
            else:
                assert row is not None
                user_id = row["id"]
            if api_key:
                if tx.key_user(api_key) is None:
                    tx.add_key(user_id, api_key)
                key = api_key
            return key, created

    def new_admin_key(self) -> str:
        """Replace every key of the ``local`` admin with a new one and return it (shown once).

        How an admin gets back in after losing the key: works on the data folder (no
        server needed; a running server accepts the new key at once).
        """
        with self.tx() as tx:
            row = tx.one("SELECT id FROM users WHERE name='local'")
            user_id = row["id"] if row is not None else tx.add_user("local", "local")
            tx.drop_keys(user_id)
            return tx.add_key(user_id)

    def add_admin_key(self) -> str:
        """One more key for the existing ``local`` admin (the others keep working)."""
        with self.tx() as tx:
            row = tx.one("SELECT id FROM users WHERE name='local'")
            if row is None:
                raise ValueError("no admin user 'local' in this store")
            return tx.add_key(row["id"])

    def key_user(self, key: str) -> str | None:
        """The id of the user owning ``key``, or None."""
        with self.read() as tx:
            return tx.key_user(key)

    def drop_key(self, key: str) -> None:
        """Revoke one key (whoever owns it)."""
        with self.tx() as tx:
            for row in tx.all("SELECT rowid, salt, hash FROM api_keys"):
                if hmac.compare_digest(hash_key(key, row["salt"]), row["hash"]):
                    tx.execute("DELETE FROM api_keys WHERE rowid=?", (row["rowid"],))

    def create_user(self, name: str, workspace: str | None = None) -> str:
        """Create a user owning a new default workspace; return its key.

        The workspace is ``workspace`` (an error if that name is taken) or, by default,
        the user's name, or ``name-2``, ``name-3`` … when taken: a new user never joins
        somebody else's workspace by name.
        """
        with self.tx() as tx:
            if tx.one("SELECT 1 FROM users WHERE name=?", (name,)):
                raise ValueError(f"user {name!r} exists")
            if workspace is not None and tx.one(
                "SELECT 1 FROM workspaces WHERE name=?", (workspace,)
            ):
                raise ValueError(f"workspace {workspace!r} exists (owned by another user)")
            user_id = tx.add_user(name, workspace or name)
            return tx.add_key(user_id)


class Tx:
    """Helpers bound to the current transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn
        self.new_files: list[Path] = []
        self.dropped_files: list[Path] = []
        self.after_commit: list[Callable[[], None]] = []

    def execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, args).fetchone()

    def row(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row:
        """The row that must exist (an aggregate, or one a foreign key points at)."""
        found = self.conn.execute(sql, args).fetchone()
        if found is None:
            raise LookupError(f"no row for: {sql}")
        return found

    def all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def add_user(
        self,
        name: str,
        workspace: str,
        *,
        is_service: bool = False,
        created_by: str | None = None,
        authorized: str | None = None,
        organization: str | None = None,
    ) -> str:
        """Insert a user; a non-service user also owns a new workspace named ``workspace``,
        or the first free ``workspace-N`` when that name is taken (never an existing one:
        whoever created it could read and delete the new user's work)."""
        user_id = new_id()
        if not is_service:
            base, n = workspace, 1
            while self.one("SELECT 1 FROM workspaces WHERE name=?", (workspace,)):
                n += 1
                workspace = f"{base}-{n}"
        self.execute(
            "INSERT INTO users VALUES (?,?,?,?,?,?,?,?)",
            (
                user_id,
                name,
                workspace,
                int(is_service),
                created_by,
                now_ms(),
                authorized,
                organization,
            ),
        )
        if not is_service:
            self.add_workspace(workspace, user_id)
        return user_id

    # -- API keys (stored as salted hashes; the plain key exists only in the answer) ------

    def add_key(self, user_id: str, key: str | None = None) -> str:
        """Store (the hash of) ``key`` or of a new random key for ``user_id``; return the key."""
        key = key or new_api_key()
        salt = secrets.token_hex(16)
        self.execute(
            "INSERT INTO api_keys VALUES (?,?,?,?)", (salt, hash_key(key, salt), user_id, now_ms())
        )
        return key

    def key_user(self, key: str) -> str | None:
        """The id of the user owning ``key``, or None. Compares every stored hash (there are
        few keys, and a salted hash cannot be looked up by value) in constant time each."""
        found = None
        for row in self.all("SELECT salt, hash, user_id FROM api_keys"):
            if hmac.compare_digest(hash_key(key, row["salt"]), row["hash"]):
                found = row["user_id"]
        return found

    def drop_keys(self, user_id: str) -> None:
        """Revoke every key of ``user_id`` (they stop working when this transaction commits)."""
        self.execute("DELETE FROM api_keys WHERE user_id=?", (user_id,))

    def add_workspace(self, name: str, owner_id: str, plan: str | None = None) -> str:
        ws_id = str(uuid.uuid4())
        self.execute(
            "INSERT INTO workspaces VALUES (?,?,?,?,?)", (ws_id, name, owner_id, plan, now_ms())
        )
        self.execute("INSERT OR REPLACE INTO members VALUES (?,?,1)", (name, owner_id))
        return ws_id

    def write_file(self, data: bytes | IO[bytes]) -> str:
        """Write bytes, or a file's content streamed from its start, atomically (tmp +
        rename) and owner-only under a server-made name; return the name."""
        name = new_id()
        final = self.store.assets_dir / name[:2] / name
        if not final.parent.is_dir():
            private_dir(final.parent)
        tmp = final.with_suffix(".tmp")
        received = getattr(data, "path", None)  # an upload spooled next to the assets
        if (
            isinstance(received, Path)
            and received.resolve().parent.parent == self.store.assets_dir.resolve()
        ):
            data.file.flush()  # type: ignore[union-attr]
            os.fsync(data.file.fileno())  # type: ignore[union-attr]
            os.replace(received, final)  # same file system: a rename, not a second copy
            self.new_files.append(final)
            return name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with open(fd, "wb") as fh:
            if isinstance(data, (bytes, bytearray, memoryview)):
                fh.write(data)
            else:  # a file object, or an upload spooled elsewhere (copied, in pieces)
                src = getattr(data, "file", data)
                src.seek(0)
                shutil.copyfileobj(src, fh, 1 << 20)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self.new_files.append(final)
        return name

    def file_path(self, name: str) -> Path:
        return self.store.assets_dir / name[:2] / name

    def drop_file(self, name: str | None) -> None:
        """Delete a stored file once the transaction commits."""
        if name:
            self.dropped_files.append(self.file_path(name))
