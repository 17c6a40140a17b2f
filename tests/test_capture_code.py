"""Code capture: entry-script detection in real child processes, folder listing, reading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from comet_callbacks.capture.code import entry_script_path, iter_code_files, read_source

PROBE = (
    "import json\n"
    "from comet_callbacks.capture.code import entry_script_path\n"
    "print(json.dumps(entry_script_path()))\n"
)


def run_probe(args: list[str], cwd: Path) -> str | None:
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_entry_script_of_a_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(PROBE)
    assert run_probe([str(script)], tmp_path) == str(script)
    # a relative invocation still gives an absolute path
    assert run_probe(["train.py"], tmp_path) == str(script)


def test_entry_script_of_python_m(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(PROBE)
    assert run_probe(["-m", "mypkg"], tmp_path) == str(pkg / "__main__.py")


def test_no_entry_script_for_dash_c(tmp_path: Path) -> None:
    assert run_probe(["-c", PROBE], tmp_path) is None


def test_no_entry_script_for_installed_tool() -> None:
    # under `python -m pytest` __main__ is pytest's own module in site-packages
    main = sys.modules["__main__"]
    if str(getattr(main, "__file__", "")).endswith(".py"):
        assert entry_script_path() is None


def test_read_source(tmp_path: Path) -> None:
    good = tmp_path / "a.py"
    good.write_bytes("x = 'héllo'\n".encode() + b"# \xff broken byte\n")
    text = read_source(str(good))
    assert text is not None
    assert text.startswith("x = 'héllo'\n") and "\ufffd" in text
    assert read_source(str(good), max_bytes=5) is None
    assert read_source(str(tmp_path / "missing.py")) is None
    assert read_source(str(tmp_path)) is None  # a directory


def test_iter_code_files_skips_ignored_dirs(tmp_path: Path) -> None:
    files = [
        "main.py",
        "pkg/__init__.py",
        "pkg/model.py",
        "pkg/sub/deep.py",
        "pkg/notes.txt",
        ".git/hooks/x.py",
        ".venv/lib/y.py",
        "pkg/__pycache__/model.cpython-311.py",
        "node_modules/z.py",
        ".hidden/h.py",
    ]
    for rel in files:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("pass\n")
    found = iter_code_files(str(tmp_path))
    assert [rel for _, rel in found] == [
        "main.py",
        "pkg/__init__.py",
        "pkg/model.py",
        "pkg/sub/deep.py",
    ]
    assert all(Path(p).is_absolute() and Path(p) == tmp_path / rel for p, rel in found)
    txt = iter_code_files(str(tmp_path), patterns=("*.py", "*.txt"))
    assert "pkg/notes.txt" in [rel for _, rel in txt]
    assert len(iter_code_files(str(tmp_path), max_files=2)) == 2
    assert iter_code_files(str(tmp_path / "missing")) == []
