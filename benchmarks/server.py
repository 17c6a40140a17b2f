"""The one local-server launcher of the benchmarks: ``python -m comet_callbacks.server`` in a
child process on a free loopback port, with a known admin key.

A separate process, so the server never shares the measured client's GIL (a real Comet server
is on another machine anyway) and its CPU and memory can be metered apart (``pid``)::

    with LocalServer(data_dir) as srv:
        os.environ.update(srv.env())   # COMET_URL_OVERRIDE, COMET_API_KEY
        ...
        srv.reader().metrics(key, "loss")

Every benchmark module that needs a server uses this class (``benchmarks.peers.ours`` re-exports
it under its old import path).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

API_KEY = "benchmark-admin-key-0123456789"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """The local server in a child process; ready (port open) when the constructor returns.

    ``data_dir`` holds its SQLite store (a temporary folder, removed at :meth:`stop`, when
    None); ``extra_args`` go to the server's command line (e.g. ``["--max-upload-bytes", N]``).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        extra_args: list[str] | None = None,
        api_key: str = API_KEY,
        timeout: float = 60.0,
    ) -> None:
        self._tmp = (
            tempfile.TemporaryDirectory(prefix="bench-server-") if data_dir is None else None
        )
        self.data_dir = data_dir or self._tmp.name  # type: ignore[union-attr]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        # the server must not inherit a client configuration (or a real key) from the caller
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
        cmd = [sys.executable, "-m", "comet_callbacks.server", "--port", str(self.port)]
        cmd += ["--data-dir", self.data_dir, "--api-key", api_key, *(extra_args or [])]
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.data_dir, "server.log")
        with open(self.log_path, "w") as log:  # a file, not a pipe: it can never fill up
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as fh:
                    err = fh.read()[-2000:]
                self.stop()
                raise RuntimeError(f"local server exited with {self.proc.returncode}: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"local server did not start in {timeout:g} s") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def env(self, offline_dir: str | None = None) -> dict[str, str]:
        """What points our client (or ``comet_ml``) at this server (and, given, where the
        client keeps its run on disk)."""
        env = {"COMET_URL_OVERRIDE": self.url, "COMET_API_KEY": self.api_key}
        if offline_dir is not None:
            env["COMET_OFFLINE_DIRECTORY"] = offline_dir
        return env

    def reader(self) -> Any:
        """A read client of the server's REST API (``comet_callbacks.server.reader.Reader``)."""
        from comet_callbacks.server.reader import Reader

        return Reader(self.url, self.api_key)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    close = stop

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def set_env(env: dict[str, str]) -> None:
    """Replace every ``COMET_*`` variable of this process by ``env`` (no leftover setting of
    the user's, or of an earlier measurement, can leak into the next one)."""
    for name in list(os.environ):
        if name.startswith("COMET_"):
            del os.environ[name]
    os.environ.update(env)
