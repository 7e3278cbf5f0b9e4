#!/usr/bin/env bash
# Create .venv and install vault into it (with the test and S3 extras when given "test").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install --quiet -e '.[test,s3]'
else
  .venv/bin/python -m pip install --quiet -e .
fi
