#!/usr/bin/env bash
# The one test command (README and .ci/run use exactly this):
#
#   bash scripts/test.sh [pytest args...]     set up .venv if needed, then run the test suite
#   bash scripts/test.sh --setup-only         only create/refresh .venv (used by .ci/run before linting)
#
# Works on a fresh machine with only Python 3.11, pip and git. Installs torch==2.13.0 FIRST:
# that pin is the CPU build lying on local disk; any other torch spec pulls a multi-GB CUDA build.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv"
STAMP="$VENV/.comet-callbacks-setup"

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV with $("$PYTHON" --version 2>&1)"
        "$PYTHON" -m venv "$VENV"
    fi
    # Re-install only when pyproject.toml changed (or on the first run): keeps reruns fast.
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
        && "$VENV/bin/python" -c "import comet_callbacks, torch, pytest" 2>/dev/null; then
        echo "==> $VENV is up to date"
        return
    fi
    echo "==> installing torch==2.13.0 (CPU build from local disk)"
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    echo "==> installing comet-callbacks[test] (editable)"
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    echo "$want" > "$STAMP"
}

setup
if [ "${1:-}" = "--setup-only" ]; then
    exit 0
fi

export KERAS_BACKEND=torch
export PYTHONDONTWRITEBYTECODE=1
echo "==> python -m pytest -q $*"
rc=0
"$VENV/bin/python" -m pytest -q "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests (exit 5): that is a failure" >&2
fi
exit "$rc"
