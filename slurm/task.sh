#!/usr/bin/env bash
# One task of slurm/grpo.sbatch, run by srun on its node. What differs per node is read HERE, inside
# the task: $SLURM_NODEID (the machine rank) and this node's name (its cache). Expanded in the batch
# shell instead, they would give every node the batch node's values (rank 0 for all).
#
#   task.sh run CMD...        # CMD with this node's cache (prefetch, the generation server)
#   task.sh train ARGS...     # reasoner train-node ARGS with this node's machine rank
#
# Reads REASONER_PYTHON and REASONER_CACHE_DIR (a literal {node} in it becomes this node's name).
set -euo pipefail

role="${1:-}"
shift || true
PY="${REASONER_PYTHON:-python3}"
eval "$("$PY" -m reasoner.cli node-env)"

case "$role" in
run)
    exec "$@"
    ;;
train)
    exec "$PY" -m reasoner.cli train-node --machine_rank "$SLURM_NODEID" "$@"
    ;;
*)
    printf 'usage: task.sh run CMD... | task.sh train ARGS...\n' >&2
    exit 2
    ;;
esac
