#!/usr/bin/env bash
# GRPO on one machine, laid out by `reasoner plan`: with several GPUs, a vLLM server on its own
# GPU(s) and training on the others; with one GPU, vLLM colocated; on CPU, training only.
#
#   launch/grpo_local.sh RECIPE [--key value ...]      # overrides go to plan, prefetch and train
#
# Steps: plan -> pin and prefetch the model and data set once -> (server + health wait) -> train on
# the pinned commits, offline (HF_HUB_OFFLINE=1). The server is stopped on every exit path.
#
# Variables (all optional):
#   REASONER_PYTHON           python that has reasoner installed (default: python3)
#   REASONER_GPUS_PER_NODE    GPUs to plan for (default: CUDA_VISIBLE_DEVICES, else nvidia-smi, else 0)
#   REASONER_ACCELERATE_CONFIG, REASONER_PLACEMENT, REASONER_GENERATION_GPUS, REASONER_TP_SIZE,
#   REASONER_PROCS_PER_NODE, REASONER_MAIN_PORT, REASONER_VLLM_PORT, REASONER_MODEL_PATH
#                             overrides read by `reasoner plan` (see reasoner/topology.py)
#   REASONER_VLLM_TIMEOUT     seconds to wait for the server's /health (default: 900)
#   REASONER_LOG_DIR          where the server log goes (default: runs/logs)
set -euo pipefail

log() { printf '[grpo_local] %s\n' "$*" >&2; }
die() { printf '[grpo_local] error: %s\n' "$*" >&2; exit 2; }

if [[ $# -lt 1 || "$1" == -* ]]; then
    die "usage: launch/grpo_local.sh RECIPE [--key value ...]"
fi
RECIPE="$1"
shift

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${REASONER_PYTHON:-python3}"
HEALTH_TIMEOUT="${REASONER_VLLM_TIMEOUT:-900}"
LOG_DIR="${REASONER_LOG_DIR:-runs/logs}"
# The CLI through the chosen python, so one interpreter runs every step.
CLI_PY='import sys; from reasoner.cli import main; sys.argv[0] = "reasoner"; sys.exit(main())'
# The prefetched model's local folder (what the generation server loads, offline).
MODEL_PATH_PY='import sys
from reasoner import hub
from reasoner.recipe import load_recipe
recipe = load_recipe(sys.argv[1], sys.argv[2:])
source = hub.pin(hub.classify_model(recipe.model["id"], recipe.model["revision"]), "model")
print(hub.materialize(source, "model", download=False).path)'

reasoner() { "$PY" -c "$CLI_PY" "$@"; }

detect_gpus() {
    if [[ -n "${REASONER_GPUS_PER_NODE:-}" ]]; then
        echo "$REASONER_GPUS_PER_NODE"
    elif [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
        local ids
        IFS=',' read -ra ids <<<"${CUDA_VISIBLE_DEVICES}"
        echo "${#ids[@]}"
    elif command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
    else
        echo 0
    fi
}

health_ok() {  # health_ok URL: true when the URL answers 2xx (proxies bypassed: it is a local address)
    "$PY" -c '
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(sys.argv[1], timeout=5)
' "$1" >/dev/null 2>&1
}

SERVER_PID=""
# shellcheck disable=SC2317,SC2329  # called from a trap
stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        log "stopping the vLLM server (process group $SERVER_PID)"
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 60); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
# shellcheck disable=SC2317,SC2329  # called from a trap
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# `reasoner plan` and `reasoner prefetch` take the recipe overrides, not train's own flags.
recipe_args=()
skip_value=0
for arg in "$@"; do
    if ((skip_value)); then skip_value=0; continue; fi
    case "$arg" in
    --resume-from-hub | --no-resume | --dry-run | --time-budget-minutes=*) ;;
    --time-budget-minutes) skip_value=1 ;;
    *) recipe_args+=("$arg") ;;
    esac
done

# ---- 1. plan: refuse a layout that cannot work before downloading anything ---------------------
GPUS="$(detect_gpus)"
plan_args=(plan --recipe "$RECIPE" --nodes 1 --gpus-per-node "$GPUS")
reasoner "${plan_args[@]}" --format env "${recipe_args[@]}" >/dev/null \
    || die "reasoner plan refused this layout (see the message above)"

# ---- 2. prefetch: pin the commits and download them; the only step that talks to the hub -------
mkdir -p "$LOG_DIR"
pins_file="$LOG_DIR/pins-$(date +%Y%m%d-%H%M%S)-$$.txt"
log "prefetching the pinned model and data set"
env -u HF_HUB_OFFLINE "$PY" -c "$CLI_PY" prefetch --recipe "$RECIPE" "${recipe_args[@]}" --pins-out "$pins_file" \
    || die "prefetch failed (see the message above)"
pins=()
read -ra pins <"$pins_file" || true
export HF_HUB_OFFLINE=1

# The layout and the memory estimate (which reads the prefetched config), then the launch
# variables, against the pinned commits (the server loads exactly those).
reasoner "${plan_args[@]}" --format table "${recipe_args[@]}" "${pins[@]}" >&2 \
    || die "reasoner plan refused this run (see the message above)"
plan_env="$(reasoner "${plan_args[@]}" --format env "${recipe_args[@]}" "${pins[@]}")" \
    || die "reasoner plan refused this layout (see the message above)"
set -a
eval "$plan_env"
set +a
if [[ -n "$REASONER_VLLM_COMMAND" && -z "${REASONER_MODEL_PATH:-}" ]]; then
    # The server loads the prefetched snapshot by its local path: no hub id to resolve offline.
    REASONER_MODEL_PATH="$("$PY" -c "$MODEL_PATH_PY" "$RECIPE" "${recipe_args[@]}" "${pins[@]}")" \
        || die "the prefetched model is not in the local cache (see the message above)"
    export REASONER_MODEL_PATH
    plan_env="$(reasoner "${plan_args[@]}" --format env "${recipe_args[@]}" "${pins[@]}")" \
        || die "reasoner plan refused this layout (see the message above)"
    set -a
    eval "$plan_env"
    set +a
fi
[[ -n "${REASONER_ACCELERATE_CONFIG:-}" ]] \
    || die "no accelerate config: add accelerate_config to the recipe or set REASONER_ACCELERATE_CONFIG"
[[ -f "$REASONER_ACCELERATE_CONFIG" ]] || die "accelerate config $REASONER_ACCELERATE_CONFIG not found (paths are relative to $ROOT)"
train_args=()
eval "train_args=(${REASONER_TRAIN_ARGS})"  # shell-quoted by reasoner plan

# ---- 3. generation server on its own GPU(s) ---------------------------------------------------
if [[ "$REASONER_PLACEMENT" == "dedicated-gpu" ]]; then
    vllm_cmd=()
    eval "vllm_cmd=(${REASONER_VLLM_COMMAND})"  # shell-quoted by reasoner plan
    server_log="$LOG_DIR/vllm-$(date +%Y%m%d-%H%M%S).log"
    log "starting the vLLM server on GPU(s) $REASONER_VLLM_CUDA_VISIBLE_DEVICES (log: $server_log)"
    # Its own session, so stopping it stops vLLM's worker processes too.
    CUDA_VISIBLE_DEVICES="$REASONER_VLLM_CUDA_VISIBLE_DEVICES" setsid "${vllm_cmd[@]}" >"$server_log" 2>&1 &
    SERVER_PID=$!
    url="$REASONER_VLLM_URL/health"
    deadline=$((SECONDS + HEALTH_TIMEOUT))
    until health_ok "$url"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 40 "$server_log" >&2 || true
            die "the vLLM server exited before answering $url; its log is $server_log (last lines above)"
        fi
        if ((SECONDS >= deadline)); then
            die "the vLLM server did not answer $url within ${HEALTH_TIMEOUT}s; see $server_log, or raise REASONER_VLLM_TIMEOUT"
        fi
        sleep 2
    done
    log "vLLM server healthy at $REASONER_VLLM_URL"
elif [[ "$REASONER_PLACEMENT" == "dedicated-node" ]]; then
    die "placement dedicated-node needs several nodes: use slurm/grpo.sbatch, or REASONER_PLACEMENT=dedicated-gpu"
fi

# ---- 4. training ------------------------------------------------------------------------------
if [[ -n "${REASONER_TRAIN_CUDA_VISIBLE_DEVICES:-}" ]]; then
    export CUDA_VISIBLE_DEVICES="$REASONER_TRAIN_CUDA_VISIBLE_DEVICES"
fi
log "training: $REASONER_NUM_PROCESSES process(es) with $REASONER_ACCELERATE_CONFIG"
"$PY" -m accelerate.commands.accelerate_cli launch \
    --config_file "$REASONER_ACCELERATE_CONFIG" \
    --num_machines 1 \
    --num_processes "$REASONER_NUM_PROCESSES" \
    --machine_rank 0 \
    --main_process_ip "$REASONER_MAIN_IP" \
    --main_process_port "$REASONER_MAIN_PORT" \
    -m reasoner.train --recipe "$RECIPE" "${train_args[@]}" "$@" "${pins[@]}"
