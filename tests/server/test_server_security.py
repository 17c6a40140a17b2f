"""Server-side security: workspace squatting, bodies read only after authentication,
streamed uploads, secrets at rest (file modes, hashed keys, migration), safe asset names."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import stat
import time
from pathlib import Path

import pytest
import requests

from comet_callbacks.server.embedded import ServerHandle, start_server
from comet_callbacks.server.names import safe_asset_name, safe_join
from comet_callbacks.server.reader import Reader
from comet_callbacks.server.store import MIGRATIONS, SCHEMA_VERSION, Store
from comet_callbacks.server.uploads import INCOMING

REST = "/api/rest/v2/"


class Api:
    """Plain HTTP against one server with one key (as the ``api`` fixture, for servers
    these tests start themselves)."""

    def __init__(self, server: ServerHandle, key: str | None = None) -> None:
        self.server = server
        self.key = server.api_key if key is None else key
        self.base = server.url + REST

    def post(self, path: str, body: object = None, **params: object) -> requests.Response:
        return requests.post(
            self.base + path,
            json=body,
            params=params or None,
            headers={"Authorization": self.key},
            timeout=10,
        )

    def get(self, path: str, **params: object) -> requests.Response:
        return requests.get(
            self.base + path, params=params or None, headers={"Authorization": self.key}, timeout=10
        )

    def upload(self, path: str, data: bytes, filename: str, **params: object) -> requests.Response:
        return requests.post(
            self.base + path,
            params=params,
            files={"file": (filename, data)},
            headers={"Authorization": self.key},
            timeout=30,
        )

    def ok(self, resp: requests.Response) -> dict:
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return resp.json()

    def create(self, project: str = "proj", workspace: str = "local") -> str:
        body = {"workspaceName": workspace, "projectName": project}
        return self.ok(self.post("write/experiment/create", body))["experimentKey"]


# -- 16.4 workspace squatting -----------------------------------------------------------------


def test_new_user_never_joins_an_existing_workspace(comet_server: ServerHandle) -> None:
    """B creates a workspace named ``alice`` before the admin creates user alice: alice gets
    a new workspace of her own (``alice-2``), B cannot see her work."""
    b = Api(comet_server, comet_server.create_user("b"))
    b.ok(b.post("write/workspace/new", {"name": "alice"}))
    alice = Api(comet_server, comet_server.create_user("alice"))
    details = alice.ok(alice.get("account-details"))
    assert details["defaultWorkspaceName"] == "alice-2"
    assert alice.ok(alice.get("workspaces"))["workspaceNames"] == ["alice-2"]
    key = alice.create("secret", workspace="alice-2")
    alice.ok(
        alice.post(
            "write/experiment/parameter",
            {"experimentKey": key, "parameterName": "lr", "parameterValue": "0.1"},
        )
    )
    assert b.get("experiment/parameters", experimentKey=key).status_code == 403
    assert b.ok(b.get("workspaces"))["workspaceNames"] == ["alice", "b"]
    # asking for a taken workspace explicitly is an error naming it, and creates nobody
    with pytest.raises(ValueError, match="workspace 'alice' exists"):
        comet_server.create_user("carol", workspace="alice")
    assert comet_server.store.key_user("nothing") is None
    with sqlite3.connect(comet_server.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM users WHERE name='carol'").fetchone() == (0,)
    conn.close()


# -- 16.6 bodies only after authentication; uploads streamed to disk -------------------------


def _raw_request(srv: ServerHandle, head: str, body: bytes = b"") -> tuple[int, bytes, float]:
    """Send a request head (and maybe part of a body) on a raw socket; return the status,
    the answer and how long it took. The declared body is never sent in full."""
    start = time.monotonic()
    with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1], time.monotonic() - start


@pytest.mark.parametrize(
    ("path", "ctype", "declared"),
    [  # bodies within the size limits, so only authentication can refuse them early
        (
            "write/experiment/upload-asset?experimentKey=x",
            "multipart/form-data; boundary=zz",
            150 * 1024**2,
        ),
        ("write/experiment/metric", "application/json", 15 * 1024**2),
    ],
)
def test_wrong_key_is_refused_before_the_body_is_read(
    comet_server: ServerHandle, path: str, ctype: str, declared: int
) -> None:
    """A wrong (or missing) key declaring a large body gets its 401 at once: the server
    does not wait for, nor buffer, the body (the client here never sends it)."""
    for auth in ("Authorization: wrong-key\r\n", ""):
        head = (
            f"POST {REST}{path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: {ctype}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        status, body, took = _raw_request(comet_server, head, b"--zz\r\n")
        assert status == 401, body
        assert b"Authorization" in body
        assert took < 5
    # the server is fine afterwards
    assert Api(comet_server).get("workspaces").status_code == 200


def test_streamed_upload_limits_and_leftovers(tmp_path: Path) -> None:
    """Uploads are streamed to a temporary file and renamed into the store: the stored
    bytes are exact, a body over the limit is refused (declared or not, gzip or not), and
    no temporary file stays behind in any case."""
    import gzip

    with start_server(db_path=tmp_path / "db.sqlite", max_upload_bytes=8 * 1024 * 1024) as srv:
        api = Api(srv)
        key = api.create()
        data = os.urandom(3 * 1024 * 1024 + 17)
        asset = api.ok(
            api.upload("write/experiment/upload-asset", data, "big.bin", experimentKey=key)
        )
        reader = Reader(srv.url, srv.api_key)
        assert (
            hashlib.sha256(reader.get_asset(key, asset["assetId"])).digest()
            == hashlib.sha256(data).digest()
        )
        listed = reader.assets(key)
        reader.close()
        assert listed[0]["fileSize"] == len(data)
        incoming = srv.assets_dir / INCOMING
        assert list(incoming.iterdir()) == []

        # too large, announced by Content-Length: refused before reading
        big = b"x" * (9 * 1024 * 1024)
        resp = api.upload("write/experiment/upload-asset", big, "big2.bin", experimentKey=key)
        assert resp.status_code == 413 and "body" in resp.json()["msg"]

        # too large, sent chunked (no Content-Length): refused once the limit is passed
        def chunks():
            body = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="c.bin"\r\n\r\n'
            yield body
            for _ in range(10):
                yield b"y" * (1024 * 1024)
            yield b"\r\n--zz--\r\n"

        resp = requests.post(
            srv.url + REST + "write/experiment/upload-asset",
            params={"experimentKey": key},
            data=chunks(),
            headers={
                "Authorization": srv.api_key,
                "Content-Type": "multipart/form-data; boundary=zz",
            },
            timeout=10,
        )
        assert resp.status_code == 413, resp.text
        # a gzip body inflating past the limit (a zip bomb) is refused too
        part = (
            b'--zz\r\nContent-Disposition: form-data; name="file"; filename="g.bin"\r\n\r\n'
            + b"\0" * (9 * 1024 * 1024)
            + b"\r\n--zz--\r\n"
        )
        resp = requests.post(
            srv.url + REST + "write/experiment/upload-asset",
            params={"experimentKey": key},
            data=gzip.compress(part),
            headers={
                "Authorization": srv.api_key,
                "Content-Type": "multipart/form-data; boundary=zz",
                "Content-Encoding": "gzip",
            },
            timeout=10,
        )
        assert resp.status_code == 413, resp.text
        # a refused handler (unknown experiment) and a body cut short leave nothing either
        resp = api.upload("write/experiment/upload-asset", data, "x.bin", experimentKey="nope")
        assert resp.status_code == 404
        head = (
            f"POST {REST}write/experiment/upload-asset?experimentKey={key} HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: {srv.api_key}\r\n"
            "Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 5000000\r\n\r\n"
        )
        with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
            sock.sendall(
                head.encode()
                + b'--zz\r\nContent-Disposition: form-data; name="file"; filename="cut"\r\n\r\n'
                + b"z" * 100_000
            )
        deadline = time.monotonic() + 5
        while list(incoming.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(incoming.iterdir()) == []
        assert len(Reader(srv.url, srv.api_key).assets(key)) == 1


# -- 16.7 secrets at rest ----------------------------------------------------------------------


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]
    }


def test_files_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """With a wide-open umask (0000), every file the server writes is 0600 and every
    folder 0700: the database, its -wal/-shm, asset folders and asset files."""
    old = os.umask(0)
    try:
        with start_server(db_path=tmp_path / "data" / "comet.sqlite") as srv:
            api = Api(srv)
            key = api.create()
            api.ok(
                api.upload("write/experiment/upload-asset", b"weights", "w.bin", experimentKey=key)
            )
            api.ok(
                api.post(
                    "write/experiment/metric",
                    {"experimentKey": key, "metricName": "m", "metricValue": 1},
                )
            )
            modes = _modes(tmp_path / "data")
            assert {"comet.sqlite", "comet.sqlite-wal", "comet.sqlite-shm"} <= set(modes)
            wrong = {
                name: oct(mode)
                for name, mode in modes.items()
                if mode != (0o700 if (tmp_path / "data" / name).is_dir() else 0o600)
            }
            assert not wrong, wrong
            assert len([p for p in (tmp_path / "data").rglob("*") if p.is_file()]) >= 4
    finally:
        os.umask(old)


def test_existing_store_is_made_private(tmp_path: Path) -> None:
    """A store written by an earlier version with umask 022 (0644 files, 0755 assets) is
    tightened when opened."""
    Store(tmp_path / "db.sqlite", tmp_path / "assets").close()
    os.chmod(tmp_path / "db.sqlite", 0o644)
    os.chmod(tmp_path / "assets", 0o755)
    Store(tmp_path / "db.sqlite", tmp_path / "assets").close()
    assert stat.S_IMODE((tmp_path / "db.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "assets").stat().st_mode) == 0o700


def _raw_bytes(db: Path) -> bytes:
    return b"".join(
        Path(str(db) + s).read_bytes() for s in ("", "-wal", "-shm") if Path(str(db) + s).exists()
    )


def test_keys_are_stored_as_salted_hashes(comet_server: ServerHandle) -> None:
    """No key (admin, service account, user, rotated) is in the database files; each
    stored hash has its own random salt."""
    api = Api(comet_server)
    sa = api.ok(
        api.post(
            "write/service-account",
            {"name": "ci", "teamName": "local", "organizationName": "o"},
        )
    )["apiKey"]
    user = comet_server.create_user("bob")
    rotated = api.ok(api.get("write/api/rotate", userName="ci"))["apiKey"]
    for key in (comet_server.api_key, sa, user, rotated):
        assert Api(comet_server, key).get("workspaces").status_code == (401 if key == sa else 200)
    raw = _raw_bytes(comet_server.db_path)
    for key in (comet_server.api_key, sa, user, rotated):
        assert key.encode() not in raw
    with sqlite3.connect(comet_server.db_path) as conn:
        rows = conn.execute("SELECT salt, hash FROM api_keys").fetchall()
    conn.close()
    assert rows and all(len(h) == 64 and len(s) == 32 for s, h in rows)
    assert len({s for s, _ in rows}) == len(rows)


def test_migration_hashes_existing_plain_keys(tmp_path: Path) -> None:
    """A version-2 store (plain keys, the admin key also copied in exp_values) is
    migrated: the old keys keep working, and no plain key is left in the files."""
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for version in (1, 2):
        for stmt in str(MIGRATIONS[version]).split(";"):
            if stmt.strip():
                conn.execute(stmt)
    admin_key, bob_key = "plain-admin-key-" + "a" * 20, "plain-bob-key-" + "b" * 20
    conn.execute("INSERT INTO users VALUES ('u1','local','local',0,NULL,0,NULL,NULL)")
    conn.execute("INSERT INTO users VALUES ('u2','bob','bob',0,NULL,0,NULL,NULL)")
    conn.execute("INSERT INTO workspaces VALUES ('w1','local','u1',NULL,0)")
    conn.execute("INSERT INTO members VALUES ('local','u1',1)")
    conn.execute("INSERT INTO api_keys VALUES (?, 'u1')", (admin_key,))
    conn.execute("INSERT INTO api_keys VALUES (?, 'u2')", (bob_key,))
    conn.execute("INSERT INTO exp_values VALUES ('', 'admin_key', ?)", (admin_key,))
    conn.execute("PRAGMA user_version=2")
    conn.close()
    assert admin_key.encode() in _raw_bytes(db)

    store = Store(db, tmp_path / "assets")
    try:
        assert store.key_user(admin_key) == "u1" and store.key_user(bob_key) == "u2"
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.ensure_admin() == (None, False)  # a hashed key cannot be shown
    finally:
        store.close()
    raw = _raw_bytes(db)
    assert admin_key.encode() not in raw and bob_key.encode() not in raw
    with start_server(db_path=db, assets_dir=tmp_path / "assets", api_key=admin_key) as srv:
        assert Api(srv, admin_key).ok(Api(srv, admin_key).get("workspaces"))["workspaceNames"] == [
            "local"
        ]


def test_embedded_server_on_existing_data_gets_a_session_key(tmp_path: Path) -> None:
    """Reopening existing data in-process: the admin key cannot be read back, so the
    handle gets its own admin key, revoked when it stops; the first key keeps working."""
    db = tmp_path / "db.sqlite"
    with start_server(db_path=db) as first:
        first_key = first.api_key
    with start_server(db_path=db) as second:
        session = second.api_key
        assert session != first_key
        for key in (session, first_key):
            assert Api(second, key).get("workspaces").status_code == 200
    with start_server(db_path=db, api_key=first_key) as third:
        assert Api(third, session).get("workspaces").status_code == 401
        assert Api(third, first_key).get("workspaces").status_code == 200


# -- 16.11 asset names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../x.txt", "x.txt"),
        ("/etc/passwd", "etc/passwd"),
        ("a\x00b.txt", "ab.txt"),
        ("C:\\Windows\\evil.dll", "Windows/evil.dll"),
        ("dir/./sub/../f.png", "dir/sub/f.png"),
        ("..", "asset"),
        ("plain.bin", "plain.bin"),
    ],
)
def test_safe_asset_name(sent: str, stored: str) -> None:
    assert safe_asset_name(sent) == stored


def test_asset_names_stored_safe_and_downloads_stay_inside(
    comet_server: ServerHandle, tmp_path: Path
) -> None:
    api = Api(comet_server)
    key = api.create()
    for name in ("../../escape.txt", "/abs/p.txt", "n\x00ul.txt", "ok/inner.txt"):
        api.ok(
            api.upload(
                "write/experiment/upload-asset",
                name.encode(),
                "f",
                experimentKey=key,
                fileName=name,
            )
        )
    api.ok(
        api.post(
            "write/experiment/assets/remote/batch",
            {"remoteAssets": [{"link": "s3://b/k", "fileName": "../../remote"}]},
            experimentKey=key,
        )
    )
    reader = Reader(comet_server.url, comet_server.api_key)
    try:
        names = sorted(a["fileName"] for a in reader.assets(key))
        assert names == ["abs/p.txt", "escape.txt", "nul.txt", "ok/inner.txt", "remote"]
        # a store from before (or a hostile server) may still hold a raw name: the server
        # shows it safe, and the download keeps it inside the target folder anyway
        with sqlite3.connect(comet_server.db_path) as conn:
            conn.execute(
                "UPDATE assets SET file_name='../../../outside.txt' WHERE file_name='nul.txt'"
            )
        conn.close()
        target = tmp_path / "dl" / "here"
        written = reader.download_assets(key, target)
    finally:
        reader.close()
    assert sorted(str(p.relative_to(target.resolve())) for p in written) == [
        "abs/p.txt",
        "escape.txt",
        "ok/inner.txt",
        "outside.txt",
    ]
    assert (target / "escape.txt").read_bytes() == b"../../escape.txt"
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_safe_join_refuses_a_symlink_out(tmp_path: Path) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        safe_join(tmp_path / "dl", "link/x.txt")
    assert safe_join(tmp_path / "dl", "../x.txt") == (tmp_path / "dl" / "x.txt").resolve()


def test_only_stale_partial_uploads_are_removed_at_open(tmp_path: Path) -> None:
    """Opening the store (a restart, or ``--new-admin-key`` while a server runs) removes
    uploads left half-received long ago, never one another process is still receiving."""
    Store(tmp_path / "db.sqlite", tmp_path / "assets").close()
    incoming = tmp_path / "assets" / INCOMING
    incoming.mkdir(exist_ok=True)
    (incoming / "stale.part").write_bytes(b"old")
    (incoming / "live.part").write_bytes(b"new")
    day_ago = time.time() - 86400
    os.utime(incoming / "stale.part", (day_ago, day_ago))
    Store(tmp_path / "db.sqlite", tmp_path / "assets").close()
    assert sorted(p.name for p in incoming.iterdir()) == ["live.part"]


def test_upload_with_relative_data_folder_after_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server started on a relative data folder keeps storing uploads after the process
    changes directory (the demo does both)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with start_server(db_path="rel/comet.sqlite", assets_dir="rel/assets") as srv:
        monkeypatch.chdir(tmp_path / "elsewhere")
        api = Api(srv)
        key = api.create()
        asset = api.ok(
            api.upload("write/experiment/upload-asset", b"data", "d.bin", experimentKey=key)
        )
        reader = Reader(srv.url, srv.api_key)
        try:
            assert reader.get_asset(key, asset["assetId"]) == b"data"
        finally:
            reader.close()
    assert not (tmp_path / "elsewhere" / "rel").exists()
