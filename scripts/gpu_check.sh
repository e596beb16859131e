#!/usr/bin/env bash
# The GPU session in one command of at most 8 minutes: scripts/gpu_check.py on a lent GPU
# machine (its image has torch with CUDA, onnx, onnxscript, safetensors and click, but a CPU
# onnxruntime and no package index), without installing this package.
#
#   Here, once:  bash scripts/gpu_check.sh --prepare
#                  the onnxruntime-gpu wheel (../shared/tools/ort-gpu-parts.sh fetches it) in parts
#                  that each fit one device call beside this working tree, and the calls to make
#   There:       the printed part calls, back to back, then
#                bash scripts/gpu_check.sh [gpu_check.py options]   # carry [".ortgpu/NAME", ".ortgpu/SHA256"]
#                  onnxruntime-gpu from /tmp/ortgpu/part-*, then gpu_check.py: the shipped model and
#                  preset B, CUDA then TensorRT (fp32 with TF32 off, then fp16), speed at batch 1, 16
#                  and 64 against torch eager and bf16 autocast; $OUT/gpu_check.json after every
#                  section, the log in $OUT/gpu_check.log
#   Anywhere:    bash scripts/gpu_check.sh --smoke [options]  # the same sequence on CPU, tiny model (CI)
#
# Time: GPU_CHECK_SECONDS (default 470) caps the whole command; gpu_check.py starts no check
# after the last 100 s of it, and is stopped at the cap (its JSON is whole after every check).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
limit=${GPU_CHECK_SECONDS:-470}
python=${PYTHON:-python3}

if [ "${1:-}" = "--prepare" ]; then
  # The device call's working tree (tracked and unignored files) plus one part must stay
  # under 64 MiB, so the parts are sized from this tree, with 4 MiB to spare for growth.
  bash "${ORT_GPU_TOOLS:-../shared/tools}/ort-gpu-parts.sh" > /dev/null
  wheel=$(mktemp -d)/$(cat .ortgpu/NAME)
  cat .ortgpu/part-* > "$wheel"
  tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n1 | cut -f1)
  part=$(( 64 * 1024 * 1024 - tree - 4 * 1024 * 1024 ))
  [ "$part" -gt $(( 8 * 1024 * 1024 )) ] || { echo "the working tree ($tree bytes) leaves no room for wheel parts under 64 MiB" >&2; exit 1; }
  rm -f .ortgpu/part-*
  split -b "$part" -d "$wheel" .ortgpu/part-
  (cd "$(dirname "$wheel")" && sha256sum "$(basename "$wheel")") > .ortgpu/SHA256
  rm -r "$(dirname "$wheel")"
  echo "$(ls .ortgpu/part-* | wc -l) parts of $(( part / 1024 / 1024 )) MiB (working tree $(( tree / 1024 / 1024 )) MiB)."
  echo "Device calls, back to back (the machine goes back after ~30 s idle):"
  for p in .ortgpu/part-*; do
    echo "  run carry=[\"$p\"] command='mkdir -p /tmp/ortgpu && cp $p /tmp/ortgpu/'"
  done
  echo "  run carry=[\".ortgpu/NAME\", \".ortgpu/SHA256\"] timeout_s=540 command='bash scripts/gpu_check.sh'"
  exit 0
fi

smoke=0
if [ "${1:-}" = "--smoke" ]; then
  smoke=1
  shift
fi
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
log=$out/gpu_check.log
say() { echo "[gpu_check.sh $(( SECONDS - start )) s] $*" | tee -a "$log"; }

# onnxruntime-gpu from the parts, first on the path (ahead of the image's CPU onnxruntime).
site=/tmp/ortsite
if [ "$smoke" = 0 ] && [ ! -d "$site/onnxruntime" ]; then
  if [ -f .ortgpu/NAME ] && ls /tmp/ortgpu/part-* > /dev/null 2>&1; then
    wheel=/tmp/ortgpu/$(cat .ortgpu/NAME)
    cat /tmp/ortgpu/part-* > "$wheel"
    # Any failure here is said and the check still runs: its environment section and the
    # CUDA sessions' errors then show which onnxruntime it had.
    if ! (cd /tmp/ortgpu && sha256sum --quiet -c "$root/.ortgpu/SHA256"); then
      say "onnxruntime-gpu: the parts in /tmp/ortgpu do not make the wheel .ortgpu/SHA256 names (a part missing?); going on with the image's onnxruntime"
    elif ! "$python" -m pip install -q --no-index --no-deps --target "$site" "$wheel" 2>&1 | tee -a "$log"; then
      rm -rf "$site"  # half installed would break every import of onnxruntime
      say "onnxruntime-gpu: pip could not install $wheel; going on with the image's onnxruntime"
    fi
  else
    say "onnxruntime-gpu: no parts in /tmp/ortgpu (see --prepare); going on with the image's onnxruntime"
  fi
fi
source scripts/package_path.sh
path=$package_links
[ "$smoke" = 1 ] || path=$site:$package_links  # the GPU wheel, never in a smoke run
export PYTHONPATH=$path${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# TensorRT has no TF32 option in ORT and allows TF32 by default; NVIDIA's libraries read
# this once at start. fp32 parity needs TF32 off (torch and ORT's CUDA turn it off themselves).
export NVIDIA_TF32_OVERRIDE=0

if [ "$smoke" = 1 ]; then
  defaults=(--small --providers cpu --batches 1 --repeats 1)
else
  defaults=(--models default,B --providers cuda,tensorrt --batches 1,16,64)
fi
left=$(( limit - (SECONDS - start) ))
budget=$(( left > 160 ? left - 100 : left / 3 ))
say "gpu_check.py: ${left} s left, no check starts after ${budget} s"
set +e
timeout --kill-after=10 "$left" "$python" scripts/gpu_check.py --out "$out" --budget "$budget" "${defaults[@]}" "$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
set -e
[ "$status" -lt 124 ] || say "stopped at the ${limit} s cap (exit $status); $out/gpu_check.json holds every check that finished"
if [ ! -f "$out/gpu_check.json" ]; then  # it died before its first section (an import, say): still a report
  printf '{"passed": false, "finished": false, "error": "gpu_check.py exited %s before writing a report; see gpu_check.log"}\n' \
    "$status" > "$out/gpu_check.json"
  [ "$status" != 0 ] || status=1
fi
say "exit $status; JSON in $out/gpu_check.json"
exit "$status"
