#!/usr/bin/env bash
# One task of slurm/grpo.sbatch, run by srun on its node. Everything node-specific is read HERE,
# inside the task: $SLURM_NODEID (the machine rank) and this node's CUDA_VISIBLE_DEVICES. Expanded
# in the batch shell instead, they would give every node the batch node's values (rank 0 for all).
#
#   task.sh run CMD...              # CMD with this node's cache (prefetch, plan, model path)
#   task.sh serve CMD...            # the generation server, on the plan's generation GPUs
#   task.sh train LAUNCH-ARGS...    # accelerate launch on this training node, then LAUNCH-ARGS
#
# Reads the plan's REASONER_* variables (exported by grpo.sbatch), REASONER_PYTHON and
# REASONER_CACHE_DIR (a literal {node} in it becomes this node's name).
set -euo pipefail

role="${1:-}"
shift || true
PY="${REASONER_PYTHON:-python3}"
node="${SLURMD_NODENAME:-$(hostname -s)}"

say() { printf '[task %s %s] %s\n' "$role" "$node" "$*" >&2; }
die() { say "error: $*"; exit 2; }

# The node-local hub cache every process of this task reads (and the prefetch fills).
if [[ -n "${REASONER_CACHE_DIR:-}" ]]; then
    cache="${REASONER_CACHE_DIR//\{node\}/$node}"
    export HF_HUB_CACHE="$cache/hub"
    export HF_DATASETS_CACHE="$cache/datasets"
fi

case "$role" in
run)
    [[ $# -gt 0 ]] || die "usage: task.sh run CMD..."
    exec "$@"
    ;;
serve)
    [[ $# -gt 0 ]] || die "usage: task.sh serve CMD..."
    if [[ -n "${REASONER_VLLM_CUDA_VISIBLE_DEVICES:-}" ]]; then
        # One node split between generation and training: the plan names the devices.
        export CUDA_VISIBLE_DEVICES="$REASONER_VLLM_CUDA_VISIBLE_DEVICES"
    elif ((${REASONER_VLLM_GPUS:-0} > 0 && ${REASONER_VLLM_GPUS:-0} < ${REASONER_GPUS_PER_NODE:-0})); then
        # A generation node: its first tensor-parallel-size GPUs, as this node numbers them.
        if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
            IFS=',' read -ra ids <<<"$CUDA_VISIBLE_DEVICES"
        else
            mapfile -t ids < <(seq 0 $((REASONER_GPUS_PER_NODE - 1)))
        fi
        CUDA_VISIBLE_DEVICES="$(IFS=','; echo "${ids[*]:0:$REASONER_VLLM_GPUS}")"
        export CUDA_VISIBLE_DEVICES
    fi
    say "serving on GPU(s) ${CUDA_VISIBLE_DEVICES:-all}: $*"
    exec "$@"
    ;;
train)
    [[ -n "${SLURM_NODEID:-}" ]] || die "SLURM_NODEID is unset: run this through srun"
    # The training step runs on exactly the training nodes, in allocation order, so the step's
    # node index is this node's machine rank. Check it against the plan's node list anyway.
    IFS=',' read -ra train_nodes <<<"${REASONER_TRAIN_NODES:-}"
    if ((${#train_nodes[@]} > SLURM_NODEID)) && [[ "${train_nodes[$SLURM_NODEID]}" != "$node" ]]; then
        die "step node $SLURM_NODEID is $node but the plan's training node $SLURM_NODEID is ${train_nodes[$SLURM_NODEID]}"
    fi
    if [[ -n "${REASONER_TRAIN_CUDA_VISIBLE_DEVICES:-}" ]]; then
        export CUDA_VISIBLE_DEVICES="$REASONER_TRAIN_CUDA_VISIBLE_DEVICES"
    fi
    launcher=(
        "$PY" -m accelerate.commands.accelerate_cli launch
        --config_file "$REASONER_ACCELERATE_CONFIG"
        --num_machines "$REASONER_NUM_MACHINES"
        --num_processes "$REASONER_NUM_PROCESSES"
        --machine_rank "$SLURM_NODEID"
        --main_process_ip "$REASONER_MAIN_IP"
        --main_process_port "$REASONER_MAIN_PORT"
        "$@"
    )
    say "machine rank $SLURM_NODEID of $REASONER_NUM_MACHINES, rendezvous $REASONER_MAIN_IP:$REASONER_MAIN_PORT"
    # SIGUSR1 (the preemption warning) reaches this task's whole process group. The launcher
    # ignores it (its default action would kill it); the training ranks, which torch starts in
    # their own sessions, get it from forward_usr1 so they can save a checkpoint.
    (
        trap '' USR1
        exec "${launcher[@]}"
    ) &
    launcher_pid=$!
    # shellcheck disable=SC2317,SC2329  # called from a trap
    forward_usr1() {
        local child
        for child in $(ps -o pid= --ppid "$launcher_pid" 2>/dev/null); do
            kill -USR1 "$child" 2>/dev/null || true
        done
        say "forwarded SIGUSR1 to the training ranks"
    }
    trap forward_usr1 USR1
    trap 'kill -TERM "$launcher_pid" 2>/dev/null || true' TERM INT
    while :; do
        rc=0
        wait "$launcher_pid" || rc=$?
        kill -0 "$launcher_pid" 2>/dev/null || break  # still running: a trapped signal ended the wait
    done
    exit "$rc"
    ;;
*)
    die "usage: task.sh run CMD... | task.sh serve CMD... | task.sh train LAUNCH-ARGS..."
    ;;
esac
