#!/usr/bin/env bash
# scripts/gpu_check.py on a bare GPU machine (torch with CUDA and a CPU onnxruntime in its
# image, no package index), without installing this package.
#
#   Here, once:  bash scripts/gpu_check.sh --prepare   # cp312 wheels of onnx, onnxscript, safetensors,
#                                                       # click (+ their deps) into .gpuwheels/ (~25 MB)
#                bash ../shared/tools/ort-gpu-parts.sh  # onnxruntime-gpu in parts; make the device calls it prints
#   There:       bash scripts/gpu_check.sh [gpu_check.py options]   # carry [".gpuwheels"]; JSON into $OUT
#
# The onnxruntime-gpu wheel is put together from /tmp/ortgpu/part-* (the parts script's calls)
# and goes first on PYTHONPATH, ahead of the image's CPU onnxruntime.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .gpuwheels
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx '/.gpuwheels/' "$exclude" 2>/dev/null || echo '/.gpuwheels/' >> "$exclude"
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpuwheels \
    onnx onnxscript safetensors click
  rm -f .gpuwheels/numpy-*.whl .gpuwheels/sympy-*.whl .gpuwheels/mpmath-*.whl  # the image's (torch needs them) stay
  ls .gpuwheels
  exit 0
fi
if [ -d /tmp/ortgpu ] && [ ! -d /tmp/ortsite/onnxruntime ]; then
  wheel=/tmp/ortgpu/$(cat .ortgpu/NAME 2>/dev/null || ls /tmp/ortgpu | grep -m1 '\.whl$')
  [ -f "$wheel" ] || cat /tmp/ortgpu/part-* > "$wheel"
  python3 -m pip install -q --no-index --no-deps --target /tmp/ortsite "$wheel"
fi
site=/tmp/gpucheck-site
if [ -d .gpuwheels ] && [ ! -d "$site" ]; then
  python3 -m pip install -q --no-index --no-deps --target "$site" .gpuwheels/*.whl
fi
# The package as installed (models/, runtime/, export/ inside magvit_onnx), as links.
src=/tmp/gpucheck-src/magvit_onnx
rm -rf /tmp/gpucheck-src && mkdir -p "$src"
for entry in "$root"/magvit_onnx/*; do ln -s "$entry" "$src/"; done
for part in models runtime export; do ln -s "$root/$part" "$src/$part"; done
export PYTHONPATH=/tmp/ortsite:$site:/tmp/gpucheck-src${PYTHONPATH:+:$PYTHONPATH}
python3 -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'
exec python3 scripts/gpu_check.py --out "${OUT:-runs/gpu_check}" "$@"
