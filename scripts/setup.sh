#!/usr/bin/env bash
# Create .venv and install vault into it (with the test, S3 and mount extras when given "test").
# `vault mount` also needs the system's libfuse3 and fusermount3 (Debian/Ubuntu: apt-get install fuse3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install --quiet -e '.[test,s3,mount]'
else
  .venv/bin/python -m pip install --quiet -e .
fi
# Byte-compile the package once: an editable install leaves vault/ as sources, and where PYTHONDONTWRITEBYTECODE is
# set (CI images often do) every `vault` process would compile all of it again (a third of a short command's time).
.venv/bin/python -m compileall -q vault >/dev/null
