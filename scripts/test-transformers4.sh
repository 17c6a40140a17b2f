#!/usr/bin/env bash
# The Hugging Face integration's tests against transformers 4.4x (the main suite uses 5.x).
# Creates its own venv (.venv-tf4): torch==2.13.0 first (the CPU build on local disk), then
# transformers 4.49 with a matching accelerate, then this package without re-resolving deps.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv-tf4"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q "transformers==4.49.0" "accelerate>=1.0,<1.2" \
    requests psutil fastapi uvicorn python-multipart numpy pytest pytest-timeout
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -c "import transformers; print('==> transformers', transformers.__version__)"
export KERAS_BACKEND=torch
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_transformers.py "$@"
