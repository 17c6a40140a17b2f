#!/usr/bin/env bash
# Install and run the main job (the demo): bash scripts/main.sh [demo args...]
# Installs like scripts/test.sh: torch==2.13.0 FIRST (the CPU build on local disk; any other
# torch spec pulls a multi-GB CUDA build), then the package with its Lightning and server extras.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
echo "==> installing torch==2.13.0 (CPU build from local disk)"
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
echo "==> installing comet-callbacks[lightning,server] (editable)"
"$VENV/bin/python" -m pip install -q -e ".[lightning,server]"

export KERAS_BACKEND=torch
exec "$VENV/bin/python" -m comet_callbacks.demo "$@"
