"""What a user sees on stderr: every row of the README's troubleshooting table is produced by
a real run (a script in a fresh interpreter, against the local server or an unreachable URL),
the link and summary lines of online runs, and warnings that follow the program's logging
configuration when it has one."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from tmpfs import mounted_tmpfs

from comet_callbacks.config import register_secret
from comet_callbacks.log import StderrFallbackHandler, _has_other_handler

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

SCRIPT = """
import comet_callbacks

with comet_callbacks.start(project_name="msgs") as exp:
    for i in range(5):
        exp.log_metric("loss", 1.0 / (i + 1), step=i)
    exp.log_metric("loss", "abc", step=9)
    exp.log_metric("loss", "def", step=10)  # a second bad value: not reported again
"""


def _table_rows() -> list[str]:
    """The quoted messages of the troubleshooting table (first column)."""
    table = README.split("<!-- troubleshooting-table -->", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `(.+?)` \|", table, re.M)


def _line_pattern(quoted: str) -> re.Pattern[str]:
    """A whole-line regex for a quoted message: ``<name>`` is any text, ``...`` any tail."""
    out = ""
    for part in re.split(r"(<[a-z]+>|\.\.\.)", quoted):
        if part == "...":
            out += ".*"
        elif re.fullmatch(r"<[a-z]+>", part):
            out += ".+?"
        else:
            out += re.escape(part)
    if not quoted.startswith(("comet_callbacks: ", "error: ")):
        # raised (the traceback's last line) or, where a caller reports it, a warning line
        out = r"(?:\S*(?:ExperimentError|ConfigError): |comet_callbacks: )" + out
    return re.compile(f"^{out}$", re.M)


def _run(
    tmp_path: Path, env: dict[str, str], code: str = SCRIPT, args: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    full = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    full.update(
        COMET_OFFLINE_DIRECTORY=str(tmp_path / "runs"),
        COMET_AUTO_LOG_ENV_DETAILS="false",  # quicker; nothing here depends on them
        COMET_AUTO_LOG_GIT_METADATA="false",
        COMET_AUTO_LOG_GIT_PATCH="false",
    )
    full.update(env)
    return subprocess.run(
        [sys.executable, *(args or [str(script)])],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _online(server: Any, **extra: str) -> dict[str, str]:
    return {"COMET_URL_OVERRIDE": server.url, "COMET_API_KEY": server.api_key, **extra}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_cache: dict[str, subprocess.CompletedProcess[str]] = {}


def _undelivered(tmp_path: Path, server: Any) -> subprocess.CompletedProcess[str]:
    """Every metric write answers 503: retried (with a warning) until end() gives up.

    One run shows two rows; it is made once for both (the output is all that is checked).
    """
    if "undelivered" not in _cache:
        with FaultProxy(server.url, {"503": 1.0}, match=lambda m, p: "metric" in p) as proxy:
            env = _online(server, COMET_URL_OVERRIDE=proxy.url, COMET_TIMEOUT_CLEANING="8")
            _cache["undelivered"] = _run(tmp_path, env)
    return _cache["undelivered"]


FORK_SCRIPT = """
import os
import comet_callbacks

with comet_callbacks.start(project_name="msgs") as exp:
    exp.log_metric("loss", 1.0, step=0)
    pid = os.fork()
    if pid == 0:  # a worker forked from the training process logs to the parent's experiment
        exp.log_metric("loss", 2.0, step=1)
        exp.log_metric("loss", 3.0, step=2)  # warned once only
        os._exit(0)
    os.waitpid(pid, 0)
"""


def _below_a_file(tmp_path: Path) -> str:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return str(blocker / "runs")


DISK_SCRIPT = """
import comet_callbacks

with comet_callbacks.start(project_name="msgs") as exp:
    for i in range(20_000):  # about 4 MB of event log: more than the 1 MiB disk holds
        exp.log_metric("loss", 1.0 / (i + 1), step=i)
"""


def _disk_full(tmp_path: Path, server: Any) -> subprocess.CompletedProcess[str]:
    with mounted_tmpfs(tmp_path / "small", size="1m") as small:
        return _run(tmp_path, _online(server, COMET_OFFLINE_DIRECTORY=str(small)), DISK_SCRIPT)


#: A distinctive piece of each table row -> the real run that must print that row.
SCENARIOS: dict[str, Any] = {
    "(401)": lambda tmp, srv: _run(tmp, _online(srv, COMET_API_KEY="not-the-servers-key")),
    "(403)": lambda tmp, srv: _run(tmp, _online(srv, COMET_WORKSPACE="someone-else")),
    "(404)": lambda tmp, srv: _run(tmp, _online(srv, COMET_EXPERIMENT_KEY="0" * 32)),
    "COMET_MODE": lambda tmp, srv: _run(tmp, _online(srv, COMET_MODE="onlin")),
    "cannot reach": lambda tmp, srv: _run(
        tmp, {"COMET_URL_OVERRIDE": f"http://127.0.0.1:{_closed_port()}"}
    ),
    "offline mode": lambda tmp, srv: _run(tmp, {}),
    "is not a number": lambda tmp, srv: _run(tmp, _online(srv)),
    "delivery is failing": _undelivered,
    "could not be delivered": _undelivered,
    "forked child process": lambda tmp, srv: _run(tmp, _online(srv), code=FORK_SCRIPT),
    "continuing online with undelivered events": lambda tmp, srv: _run(
        tmp, _online(srv, COMET_OFFLINE_DIRECTORY=_below_a_file(tmp))
    ),
    "invalid offline_directory": lambda tmp, srv: _run(
        tmp, {"COMET_MODE": "offline", "COMET_OFFLINE_DIRECTORY": _below_a_file(tmp)}
    ),
    "the event log stops here": _disk_full,
    "no server configured": lambda tmp, srv: _run(
        tmp, {}, args=["-m", "comet_callbacks.cli", "upload"]
    ),
}


def test_every_troubleshooting_row_has_a_real_run() -> None:
    rows = _table_rows()
    assert len(rows) == len(SCENARIOS), rows
    for row in rows:
        keys = [k for k in SCENARIOS if k in row]
        assert len(keys) == 1, f"row {row!r} matches scenarios {keys}"


@pytest.mark.parametrize("key", list(SCENARIOS))
def test_troubleshooting_row_quotes_the_real_message(key: str, comet_server: Any, tmp_path):
    row = next(r for r in _table_rows() if key in r)
    proc = SCENARIOS[key](tmp_path, comet_server)
    lines = _line_pattern(row).findall(proc.stderr)
    assert len(lines) == 1, f"{row!r} not printed exactly once in:\n{proc.stderr[-3000:]}"
    if key == "cannot reach":  # the right diagnosis, and a command that names the run
        assert "offline mode" not in proc.stderr
        path = lines[0].rsplit("comet-callbacks upload ", 1)[1]
        assert (Path(path) / "events.jsonl").is_file()
    if key == "no server configured":
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and "Retrying" not in proc.stderr
        assert proc.stdout == ""


def test_online_run_prints_its_link_once_and_a_summary(comet_server, reader, tmp_path) -> None:
    proc = _run(tmp_path, _online(comet_server))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (exp,) = reader.experiments("local", "msgs")
    link = f"{comet_server.url}/local/msgs/{exp['experimentKey']}"
    assert proc.stderr.count(f"comet_callbacks: experiment is live at {link}\n") == 1
    ended = re.findall(
        r"^comet_callbacks: experiment ended \(success\): (\d+) events delivered, "
        rf"none failed; {re.escape(link)}$",
        proc.stderr,
        re.M,
    )
    assert len(ended) == 1 and int(ended[0]) >= 6, proc.stderr
    assert not (tmp_path / "runs").exists()  # delivered: no empty spool folder left behind


def test_display_summary_level_0_prints_no_link_and_no_summary(comet_server, tmp_path) -> None:
    proc = _run(tmp_path, _online(comet_server, COMET_DISPLAY_SUMMARY_LEVEL="0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "experiment is live" not in proc.stderr
    assert "experiment ended" not in proc.stderr
    assert "is not a number" in proc.stderr  # warnings still show


def test_bad_summary_level_is_a_config_error_naming_it(tmp_path) -> None:
    proc = _run(tmp_path, {"COMET_DISPLAY_SUMMARY_LEVEL": "loud"})
    assert proc.returncode == 1
    assert (
        "invalid display_summary_level = 'loud' (from environment variable "
        "COMET_DISPLAY_SUMMARY_LEVEL)" in proc.stderr
    )


CONFIGURED = """
import logging, sys
{setup}
import comet_callbacks

with comet_callbacks.start(project_name="msgs") as exp:
    exp.log_metric("loss", "abc", step=1)
"""


@pytest.mark.parametrize(
    "setup",
    [
        'logging.basicConfig(stream=sys.stdout, format="CONFIGURED %(message)s")',
        'logging.getLogger("comet_callbacks").addHandler(logging.StreamHandler(sys.stdout))',
    ],
    ids=["root-handler", "package-handler"],
)
def test_warnings_follow_the_programs_logging_configuration(setup: str, tmp_path) -> None:
    proc = _run(tmp_path, {}, code=CONFIGURED.format(setup=setup))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "value 'abc' is not a number" in proc.stdout  # where the program sends its logs
    assert "is not a number" not in proc.stderr  # and not a second time on stderr
    assert "offline mode, logging to" in proc.stderr  # the run's own lines are still printed


def test_silenced_logger_prints_no_warning(tmp_path) -> None:
    setup = 'logging.getLogger("comet_callbacks").setLevel(logging.ERROR)'
    proc = _run(tmp_path, {}, code=CONFIGURED.format(setup=setup))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is not a number" not in proc.stderr + proc.stdout


def test_upload_label_names_a_run_given_with_a_trailing_slash(comet_server, tmp_path) -> None:
    proc = _run(tmp_path, {})  # an offline run
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    up = _run(
        tmp_path,
        _online(comet_server),
        args=["-m", "comet_callbacks.cli", "upload", str(run) + "/"],
    )
    assert up.returncode == 0, up.stderr[-3000:]
    assert f"uploading {run.name}" in up.stderr
    assert "— complete" in up.stdout


CONTINUED = """
import comet_callbacks

exp = comet_callbacks.start(project_name="msgs")
exp.log_metric("loss", 1.0, step=1)
exp.end()
again = comet_callbacks.start(experiment_key=exp.key)  # e.g. evaluate() after fit()
again.log_metric("eval_loss", 0.5, step=1)
again.end()
"""


def test_a_continued_experiment_does_not_print_its_link_again(comet_server, tmp_path) -> None:
    proc = _run(tmp_path, _online(comet_server), code=CONTINUED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("comet_callbacks: experiment is live at ") == 1, proc.stderr
    assert proc.stderr.count("comet_callbacks: experiment ended (success): ") == 2, proc.stderr


def _record(msg: str, level: int = logging.WARNING, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("comet_callbacks.x", level, __file__, 1, msg, None, exc_info)


def test_fallback_lines_have_one_prefix_and_no_key() -> None:
    register_secret("sekrit-key-123456")
    h = StderrFallbackHandler()
    assert h.format(_record("comet_callbacks: a\nb")) == "comet_callbacks: a b"
    assert h.format(_record("key sekrit-key-123456")) == "comet_callbacks: key <redacted>"
    assert h.format(_record("hook failed", exc=True)) == "comet_callbacks: hook failed"
    error = h.format(_record("server bug", logging.ERROR, exc=True))
    assert error.startswith("comet_callbacks: server bug\nTraceback") and "boom" in error


def test_fallback_steps_aside_for_any_other_handler() -> None:
    own = StderrFallbackHandler()
    parent = logging.Logger("p")
    child = logging.Logger("p.c")
    child.parent = parent
    parent.addHandler(own)
    parent.addHandler(logging.NullHandler())
    assert not _has_other_handler(child, own)
    parent.addHandler(logging.StreamHandler(sys.stdout))
    assert _has_other_handler(child, own)
    child.propagate = False  # records stop at the child, which has no handler
    assert not _has_other_handler(child, own)


def test_upload_help_says_where_it_uploads_and_what_it_reads(capsys) -> None:
    from comet_callbacks.cli import main

    with pytest.raises(SystemExit) as done:
        main(["upload", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for needle in (
        "COMET_URL_OVERRIDE",
        "https://www.comet.com",
        "COMET_API_KEY",
        "COMET_WORKSPACE",
        "COMET_PROJECT_NAME",
        "COMET_OFFLINE_DIRECTORY",
        ".comet.config",
        "Exit status",
    ):
        assert needle in text, needle
