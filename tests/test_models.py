"""``Experiment.log_model``: files and nested folders as experiment models (WIRE.md §5).

Everything is checked against what the local server stored: the model-element assets, their
grouping into an experiment model, and the bytes read back. Uploads are streamed from disk
(bounded memory), retried on transient failures, and kept for ``comet-callbacks upload``
when delivery fails.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from modelfiles import make_model_folder, stored_model_files
from quiet import quiet
from werkzeug import Response

from comet_callbacks import Experiment
from comet_callbacks.rest.call import FilePart
from comet_callbacks.rest.client import RestClient
from comet_callbacks.rest.endpoints import calls
from comet_callbacks.upload import upload_run

#: Start-up capture off: these tests are about models, and the box is busy.
QUIET: dict[str, Any] = quiet()


def test_log_model_nested_folder_round_trip(comet_env, reader, tmp_path: Path) -> None:
    expected = make_model_folder(tmp_path / "net")
    with Experiment(project_name="models", **QUIET) as exp:
        exp.log_model("My Net", tmp_path / "net", metadata={"framework": "torch", "epochs": 3})
        key = exp.key
    models = reader.models(key)
    assert [m["modelName"] for m in models] == ["My Net"]
    assert len(models[0]["experimentModelId"]) == 32
    assert stored_model_files(reader, key) == expected
    assets = reader.assets(key, type="model-element")
    assert {a["type"] for a in assets} == {"model-element"}
    assert all(json.loads(a["metadata"]) == {"epochs": 3, "framework": "torch"} for a in assets)
    # nothing is left behind on disk once everything was delivered
    assert not os.path.exists(exp.offline_path or "")


def test_log_model_single_file_and_file_name(comet_env, reader, tmp_path: Path) -> None:
    f = tmp_path / "model.pt"
    f.write_bytes(b"\x00weights" * 1000)
    with Experiment(project_name="models", **QUIET) as exp:
        exp.log_model("clf", f)
        exp.log_model("clf-best", f, file_name="best.pt", step=7)
        key = exp.key
    assert sorted(m["modelName"] for m in reader.models(key)) == ["clf", "clf-best"]
    by_name = {a["fileName"]: a for a in reader.assets(key, type="model-element")}
    assert set(by_name) == {"model.pt", "best.pt"}
    assert by_name["best.pt"]["step"] == 7
    assert reader.get_asset(key, by_name["best.pt"]["assetId"]) == f.read_bytes()


def test_log_model_bad_path_reported_or_raised(
    comet_env, reader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.WARNING, logger="comet_callbacks"):
        with Experiment(project_name="models", **QUIET) as exp:
            exp.log_model("m", tmp_path / "missing.pt")  # reported, training goes on
            exp.log_model("m", tmp_path / "empty")  # reported once per kind: not repeated
            key = exp.key
    assert "neither a file nor a folder" in caplog.text
    assert reader.models(key) == []
    with Experiment(project_name="models", strict=True, **QUIET) as exp:
        with pytest.raises(ValueError, match="contains no files"):
            exp.log_model("m", tmp_path / "empty")


def test_failed_model_upload_is_kept_and_uploaded_later(comet_env, reader, tmp_path: Path) -> None:
    """Server down while the model is logged: the run folder keeps the events (the file is
    referenced by path, not copied) and ``upload_run`` delivers them later."""
    expected = make_model_folder(tmp_path / "ckpt", seed=1)
    exp = Experiment(project_name="models", timeout_cleaning=1.0, **QUIET)
    key = exp.key
    comet_env.stop()
    try:
        exp.log_model("ckpt", tmp_path / "ckpt")
        exp.end()
    finally:
        comet_env.start()
    path = exp.offline_path
    assert path and os.path.isdir(path), "the undelivered events must stay on disk"
    res = upload_run(path)
    assert res.complete and res.failed == 0, res.errors
    assert res.experiment_key == key
    assert stored_model_files(reader, key) == expected
    assert reader.metadata(key)["running"] is False


def test_upload_is_retried_with_the_same_streamed_bytes(httpserver, tmp_path: Path) -> None:
    """A 503 on the first try: the multipart body is rewound and sent again from disk."""
    payload = os.urandom(700 * 1024)
    (tmp_path / "w.bin").write_bytes(payload)
    bodies: list[bytes] = []

    def handler(request: Any) -> Response:
        bodies.append(request.get_data())
        if len(bodies) == 1:
            return Response('{"msg":"busy","code":503}', 503, content_type="application/json")
        return Response('{"msg":"Saved","assetId":"a1"}', 200, content_type="application/json")

    httpserver.expect_request("/api/rest/v2/write/experiment/upload-asset").respond_with_handler(
        handler
    )
    call = calls.upload_asset(
        "k" * 32,
        FilePart("net/w.bin", path=str(tmp_path / "w.bin")),
        file_name="net/w.bin",
        type="model-element",
        grouping_name="net",
        overwrite=False,
    )
    client = RestClient(httpserver.url_for("/").rstrip("/"), "key", backoff_factor=0.01)
    try:
        assert client.send(call) == {"msg": "Saved", "assetId": "a1"}
    finally:
        client.close()
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert payload in bodies[1]
    req_query = httpserver.log[-1][0].args
    assert req_query["type"] == "model-element" and req_query["groupingName"] == "net"
    assert req_query["fileName"] == "net/w.bin"


class _DrainHandler(http.server.BaseHTTPRequestHandler):
    """Reads the request body in 64 KiB pieces and throws it away (a memory-neutral sink)."""

    received = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        left = int(self.headers["Content-Length"])
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)
            type(self).received += len(chunk)
        body = b'{"msg":"Saved","assetId":"a1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_large_model_file_is_streamed_not_read_whole(tmp_path: Path) -> None:
    """Python allocations while sending a 48 MiB model file stay far below its size."""
    size = 48 * 1024 * 1024
    f = tmp_path / "big.bin"
    with open(f, "wb") as fh:
        for _ in range(size // (1 << 20)):
            fh.write(os.urandom(1 << 20))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DrainHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client = RestClient(f"http://127.0.0.1:{srv.server_address[1]}", "key")
    call = calls.upload_asset(
        "k" * 32, FilePart("big.bin", path=str(f)), type="model-element", grouping_name="big"
    )
    tracemalloc.start()
    try:
        client.send(call)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
        srv.shutdown()
        srv.server_close()
    assert _DrainHandler.received >= size
    assert peak < 8 * 1024 * 1024, f"peak Python allocations {peak / 2**20:.1f} MiB"


def test_model_files_are_snapshotted_off_the_caller_thread_and_removed_once_delivered(
    comet_env, reader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One snapshot per logged model file, made by the core: a hard link when logged, and a
    copy on the sender's thread while the original is the same file (it may be rewritten in
    place later). A file replaced by rename or deleted after logging still uploads what was
    logged. Each snapshot is removed once its upload is acknowledged."""
    import shutil

    copies: list[tuple[threading.Thread, str]] = []
    real_copy = shutil.copyfile

    def recording_copy(src: str, dst: str, *args: Any, **kwargs: Any) -> Any:
        copies.append((threading.current_thread(), dst))
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", recording_copy)
    kept, renamed, deleted = (tmp_path / n for n in ("kept.pt", "renamed.pt", "deleted.pt"))
    for f, data in ((kept, b"kept"), (renamed, b"logged"), (deleted, b"deleted")):
        f.write_bytes(data * 100_000)
    exp = Experiment(project_name="models", **QUIET)
    key, run = exp.key, exp.offline_path
    assert run is not None
    exp.log_model("m", kept)
    exp.log_model("m", renamed)
    exp.log_model("m", deleted)
    (tmp_path / "new").write_bytes(b"rewritten")
    os.replace(tmp_path / "new", renamed)  # how Lightning's checkpoint IO rewrites a file
    deleted.unlink()  # how the Trainer rotates checkpoints
    assert exp.flush()
    files = {a["fileName"]: a for a in reader.assets(key, type="model-element")}
    assert reader.get_asset(key, files["kept.pt"]["assetId"]) == b"kept" * 100_000
    assert reader.get_asset(key, files["renamed.pt"]["assetId"]) == b"logged" * 100_000
    assert reader.get_asset(key, files["deleted.pt"]["assetId"]) == b"deleted" * 100_000
    # kept.pt needed a copy (still the same file); the other two only when the sender got to
    # them before the rename/unlink above (it starts at once): every copy is made on the
    # sender's thread, into the run's files/, never on the caller's
    assert 1 <= len(copies) <= 3
    assert {os.path.dirname(dst) for _, dst in copies} == {os.path.join(run, "files")}
    assert all(t is not threading.current_thread() for t, _ in copies)
    assert all(t.name.startswith("comet") for t, _ in copies)
    assert os.listdir(os.path.join(run, "files")) == []  # delivered: snapshots removed
    exp.end()
    assert not os.path.exists(run)


def test_offline_run_keeps_the_logged_content_for_upload(comet_env, reader, tmp_path: Path) -> None:
    """Offline, the snapshot is the run's own copy: rewriting the original in place after the
    sender copied it changes nothing in what ``upload`` sends."""
    f = tmp_path / "model.pt"
    f.write_bytes(b"epoch-0" * 1000)
    exp = Experiment(project_name="models", mode="offline", **QUIET)
    exp.log_model("m", f)
    assert exp.flush()
    with open(f, "r+b") as fh:  # in place, as Keras' ModelCheckpoint and torch.save do
        fh.write(b"epoch-1" * 1000)
    exp.end()
    res = upload_run(exp.offline_path or "")
    assert res.complete, res.errors
    (asset,) = reader.assets(res.experiment_key, type="model-element")
    assert reader.get_asset(res.experiment_key, asset["assetId"]) == b"epoch-0" * 1000
