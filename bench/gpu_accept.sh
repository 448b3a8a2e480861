#!/usr/bin/env bash
# The GPU acceptance run as one prepared command for an air-gapped GPU node:
#
#   bash bench/gpu_accept.sh [bench/gpu.py arguments...]      # e.g. --sizes 0.5b,1.5b
#
# First, where the package registry is reachable: `make gpu-wheels` (bench/wheels/, ignored by git), and carry
# that folder with the working tree (the device run: carry ["bench/wheels"]). This script
#   1. prints the machine, the GPU and the versions of the packages that matter (the whole `pip list` goes to
#      $OUT/pip-list-before.txt and pip-list-after.txt: what the image held, and what the install changed),
#   2. runs bench/gpu.py under a timeout: it installs from bench/wheels alone (pip --no-index, never an index),
#      builds the model on the GPU, trains (full fine-tune and LoRA), pushes to a local hub, verifies the push
#      and prints one table, stopping itself inside its 8-minute budget,
#   3. leaves gpu.json (the results), gpu.log (everything printed) and the pip lists in $OUT (default
#      bench/results). Exit code: bench/gpu.py's (0: every run complete and its push verified; 3: no GPU; 4:
#      the wheels do not make the environment complete, with the missing package named; 124: the timeout).
# Rehearsal on a CPU machine (what CI checks): bash bench/gpu_accept.sh --rehearse-on-cpu --skip-install
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-bench/results}"
LIMIT_S="${GPU_ACCEPT_TIMEOUT_S:-585}"  # under one device command's 600 s; bench/gpu.py's own budget ends first
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
log="$OUT/gpu.log"
: >"$log"

packages='^(torch|transformers|trl|accelerate|peft|huggingface[-_]hub|datasets|tokenizers|safetensors|pyarrow|numpy|fsspec|click|hf[-_]xet|math[-_]verify|reasoner|reasoner-hub|setuptools|wheel) '
versions() {
  "$PYTHON" -m pip list --disable-pip-version-check 2>/dev/null >"$OUT/$1"
  grep -i -E "$packages" "$OUT/$1" || echo "(pip list printed nothing)"
}

{
  echo "== machine: $(uname -srm), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: no GPU listed"
  echo "== python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  echo "== packages before"
  versions pip-list-before.txt
  echo "== bench/wheels"
  "$PYTHON" bench/gpu_wheels.py check || echo "(the wheel set does not match bench/gpu-wheels.txt: see above)"
  echo "== bench/gpu.py $*"
} 2>&1 | tee -a "$log"

timeout --kill-after=10 "$LIMIT_S" "$PYTHON" bench/gpu.py --out "$OUT/gpu.json" "$@" 2>&1 | tee -a "$log"
code=${PIPESTATUS[0]}

{
  echo "== packages after"
  versions pip-list-after.txt
  echo "bench/gpu_accept.sh: bench/gpu.py exited $code; results in $OUT"
} 2>&1 | tee -a "$log"
exit "$code"
