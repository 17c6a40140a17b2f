"""The README's quick starts run as written, and its configuration table is complete."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from comet_callbacks.config import FIELDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _snippets() -> dict[str, str]:
    blocks = re.findall(r"<!-- readme-test: (\w+) -->\s*```python\n(.*?)```", README, re.S)
    return dict(blocks)


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [ln.split("#")[0].strip() for ln in first_block.group(1).splitlines() if ln.strip()]
    assert commands == ["bash scripts/main.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci


def test_configuration_table_lists_every_setting() -> None:
    for f in FIELDS:
        section, key = f.file_key()
        row = re.search(rf"^\| `{f.env}` \| `\[{section}\] {key}` \|", README, re.M)
        assert row, f"README configuration table lacks {f.env} ([{section}] {key})"


def test_every_quickstart_is_marked_for_testing() -> None:
    assert set(_snippets()) == {"lightning", "transformers", "keras", "experiment"}


@pytest.mark.parametrize("name", ["experiment", "lightning", "keras", "transformers"])
def test_quickstart_runs_against_the_local_server(name, comet_env, reader, tmp_path) -> None:
    code = _snippets()[name]
    script = tmp_path / f"quickstart_{name}.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update(
        COMET_URL_OVERRIDE=comet_env.url,
        COMET_API_KEY=comet_env.api_key,
        COMET_OFFLINE_DIRECTORY=str(tmp_path / "offline"),
        KERAS_BACKEND="torch",
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    experiments = reader.experiments(comet_env.workspace, "readme")
    assert len(experiments) == 1, experiments
    exp = experiments[0]
    assert exp["running"] is False
    assert reader.others(exp["experimentKey"]).get("status") == "success"
    summary = reader.metric_summary(exp["experimentKey"])
    user_metrics = [m["name"] for m in summary if not m["name"].startswith("sys.")]
    assert user_metrics, f"no metrics stored for the {name} quick start"


DOCS = [ROOT / "README.md", ROOT / "RELIABILITY.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_point_into_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/spec" not in text
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
        assert resolved.exists(), f"{doc.name} links to a missing file: {target}"
        if anchor:
            titles = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", t).strip().lower().replace(" ", "-") for t in titles}
            assert anchor in slugs, f"{doc.name}: no heading for #{anchor} in {path or doc.name}"


def test_install_instructions_use_the_clone() -> None:
    # the package is not on an index: every install line installs this checkout or a wheel
    for line in re.findall(r"pip install[^`\n]*", README):
        assert "comet-callbacks[" not in line.replace('"', "").split("/")[0], line
    assert 'pip install -e "' in README
    assert ".venv/bin/comet-callbacks" in README and "source .venv/bin/activate" in README
