#!/usr/bin/env bash
# GRPO on one machine, laid out by `reasoner plan`: with several GPUs, a vLLM server on its own
# GPU(s) and training on the others; with one GPU, vLLM colocated; on CPU, training only.
#
#   launch/grpo_local.sh RECIPE [--key value ...]      # overrides go to plan, prefetch and train
#
# Steps: plan -> pin and prefetch the model and data set once -> (server + health wait) -> train on
# the pinned commits, offline (HF_HUB_OFFLINE=1). The server is stopped on every exit path. Each
# step is one `reasoner` command (reasoner/launch/); this script only runs them in order.
#
# Variables (all optional):
#   REASONER_PYTHON           python that has reasoner installed (default: python3)
#   REASONER_LOG_DIR          where the pins and the server log go (default: runs/logs)
#   REASONER_VLLM_TIMEOUT     seconds to wait for the server's /health (default: 900)
#   REASONER_GPUS_PER_NODE, REASONER_GPU_MEMORY_GB, REASONER_ACCELERATE_CONFIG, REASONER_PLACEMENT,
#   REASONER_TP_SIZE, REASONER_PROCS_PER_NODE, REASONER_MAIN_PORT, REASONER_VLLM_PORT, ...
#                             layout overrides (reasoner/topology/environment.py)
set -euo pipefail

die() { printf '[grpo_local] error: %s\n' "$*" >&2; exit 2; }

[[ $# -ge 1 && "$1" != -* ]] || die "usage: launch/grpo_local.sh RECIPE [--key value ...]"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${REASONER_PYTHON:-python3}"
reasoner() { "$PY" -m reasoner.cli "$@"; }

SERVER_PID=""
# shellcheck disable=SC2317,SC2329  # called from a trap
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$SERVER_PID" ]]; then
        reasoner stop-process "$SERVER_PID" --group --grace 30 --kill || true
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. plan: refuse a layout that cannot work before downloading anything ---------------------
launch_vars="$(reasoner launch-env local --check "$@")" || die "reasoner plan refused this layout (see the message above)"
eval "$launch_vars"

# ---- 2. pin and prefetch: the only step that talks to the hub -----------------------------------
env -u HF_HUB_OFFLINE "$PY" -m reasoner.cli prefetch "${PREFETCH_ARGS[@]}" --pins-out "$PINS_FILE" \
    || die "prefetch failed (see the message above)"
export HF_HUB_OFFLINE=1

# ---- 3. the layout, memory and checkpoints against the pinned commits, and the commands --------
launch_vars="$(reasoner launch-env local --pins "$PINS_FILE" "$@")" || die "reasoner plan refused this run (see the message above)"
eval "$launch_vars"

# ---- 4. generation server on its own GPU(s), in its own session so that stopping it stops vLLM's workers
if ((${#SERVER_COMMAND[@]})); then
    setsid "${SERVER_COMMAND[@]}" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    reasoner wait-health "$SERVER_URL" --timeout "$HEALTH_TIMEOUT" --pid "$SERVER_PID" --log "$SERVER_LOG" || exit 2
fi

# ---- 5. training --------------------------------------------------------------------------------
"${TRAIN_COMMAND[@]}"
