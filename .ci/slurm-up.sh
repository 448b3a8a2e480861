#!/usr/bin/env bash
# Bring up a real two-node SLURM cluster on this one machine, idempotently.
#
# Two slurmd daemons (nodes n1 and n2) share this host, each on its own port, with NodeAddr
# 127.0.0.1: that is what lets `sbatch slurm/grpo.sbatch` run multi-node for real on a CPU
# machine. Everything lives under one state directory; nothing is installed here (the packages
# come from: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge).
#
# Usage:  .ci/slurm-up.sh            # start (or find running) and print the export line
#         eval "$(.ci/slurm-up.sh)"  # and use it in this shell
#         .ci/slurm-up.sh --down     # stop the daemons this script started
#
# Variables: REASONER_SLURM_DIR (state dir, default /tmp/reasoner-slurm),
#            REASONER_SLURM_PORT (slurmctld port, default 6917; the nodes use the next two),
#            REASONER_SLURM_CPUS (CPUs each node claims, default 2),
#            REASONER_SLURM_GPUS (fake GPUs each node offers as GRES gpu, default 4).
# Only the export line goes to stdout; progress and errors go to stderr.
set -euo pipefail

STATE_DIR="${REASONER_SLURM_DIR:-/tmp/reasoner-slurm}"
CTLD_PORT="${REASONER_SLURM_PORT:-6917}"
NODE_CPUS="${REASONER_SLURM_CPUS:-2}"
NODE_GPUS="${REASONER_SLURM_GPUS:-4}"
NODES=(n1 n2)
CONF="$STATE_DIR/slurm.conf"
INSTALL_HINT="apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"

log() { printf 'slurm-up: %s\n' "$*" >&2; }
die() { printf 'slurm-up: error: %s\n' "$*" >&2; exit 1; }

pid_alive() {  # pid_alive PIDFILE -> true when the process named in PIDFILE runs
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

stop_pidfile() {  # stop the one process recorded in a pid file, if it runs
    if pid_alive "$1"; then
        kill "$(cat "$1")" 2>/dev/null || true
        for _ in $(seq 50); do pid_alive "$1" || break; sleep 0.1; done
    fi
    rm -f "$1"
}

if [[ "${1:-}" == "--down" ]]; then
    for node in "${NODES[@]}"; do stop_pidfile "$STATE_DIR/run/slurmd-$node.pid"; done
    stop_pidfile "$STATE_DIR/run/slurmctld.pid"
    log "stopped the daemons under $STATE_DIR (munged is left running: other tools share it)"
    exit 0
fi

for tool in munged slurmctld slurmd sinfo scontrol; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" ]] \
        || die "$tool is missing; install SLURM and munge with: $INSTALL_HINT"
done
export PATH="$PATH:/usr/sbin:/sbin"
[[ "$(id -u)" == 0 ]] || die "run as root: slurmd and munged need it (in CI the job runs as root)"

# ---- munge: one daemon per host, shared with anything else that needs it ----------------------
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating a munge key"
        if command -v mungekey >/dev/null 2>&1; then
            runuser -u munge -- mungekey --create --keyfile /etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    log "starting munged"
    runuser -u munge -- munged --force
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munged did not start; see /var/log/munge/munged.log"
fi

# ---- configuration (rewritten each time: it is data derived from the variables above) -----------
mkdir -p "$STATE_DIR"/{state,spool,run,log,dev}
# One start at a time: two test runs on one machine both find the cluster down and would write its files at once.
exec 9>"$STATE_DIR/run/slurm-up.lock"
flock 9
host="$(hostname -s)"
# Fake GPUs: SLURM only needs character devices behind a GPU GRES; with them `--gres=gpu:N` sets
# CUDA_VISIBLE_DEVICES and SLURM_GPUS_ON_NODE in a job as on a real cluster (no CUDA behind them).
for i in $(seq 0 $((NODE_GPUS - 1))); do
    [[ -c "$STATE_DIR/dev/gpu$i" ]] || mknod "$STATE_DIR/dev/gpu$i" c 1 3
done
# slurmd reads gres.conf from the directory of slurm.conf.
echo "Name=gpu File=$STATE_DIR/dev/gpu[0-$((NODE_GPUS - 1))]" >"$STATE_DIR/gres.conf.new"
if [[ -f "$STATE_DIR/gres.conf" ]] && cmp -s "$STATE_DIR/gres.conf" "$STATE_DIR/gres.conf.new"; then
    rm -f "$STATE_DIR/gres.conf.new"
else
    mv "$STATE_DIR/gres.conf.new" "$STATE_DIR/gres.conf"
    changed=1
fi
{
    echo "# Written by .ci/slurm-up.sh: two nodes on one host, for tests."
    echo "ClusterName=reasoner"
    echo "SlurmctldHost=$host(127.0.0.1)"
    echo "SlurmctldPort=$CTLD_PORT"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "StateSaveLocation=$STATE_DIR/state"
    echo "SlurmdSpoolDir=$STATE_DIR/spool/%n"
    echo "SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid"
    echo "SlurmdPidFile=$STATE_DIR/run/slurmd-%n.pid"
    echo "SlurmctldLogFile=$STATE_DIR/log/slurmctld.log"
    echo "SlurmdLogFile=$STATE_DIR/log/slurmd-%n.log"
    echo "SlurmdParameters=config_overrides"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_CPU"
    echo "MpiDefault=none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "JobCompType=jobcomp/filetxt"
    echo "JobCompLoc=$STATE_DIR/log/jobcomp.txt"
    echo "JobRequeue=1"
    echo "ReturnToService=2"
    echo "MinJobAge=600"
    echo "KillWait=10"
    echo "SlurmctldTimeout=30"
    echo "SlurmdTimeout=60"
    echo "InactiveLimit=0"
    echo "SchedulerType=sched/backfill"
    echo "GresTypes=gpu"
    port=$((CTLD_PORT + 1))
    for node in "${NODES[@]}"; do
        echo "NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=$NODE_CPUS Gres=gpu:$NODE_GPUS State=UNKNOWN"
        port=$((port + 1))
    done
    echo "PartitionName=debug Nodes=$(IFS=,; echo "${NODES[*]}") Default=YES MaxTime=INFINITE State=UP"
} >"$CONF.new"
if [[ -f "$CONF" ]] && cmp -s "$CONF" "$CONF.new"; then
    rm -f "$CONF.new"
else
    mv "$CONF.new" "$CONF"
    changed=1
fi
export SLURM_CONF="$CONF"

# A changed configuration restarts the daemons this script owns, so they never run stale.
if [[ -n "${changed:-}" ]]; then
    for node in "${NODES[@]}"; do stop_pidfile "$STATE_DIR/run/slurmd-$node.pid"; done
    stop_pidfile "$STATE_DIR/run/slurmctld.pid"
fi

# ---- daemons -----------------------------------------------------------------------------------
if ! pid_alive "$STATE_DIR/run/slurmctld.pid"; then
    log "starting slurmctld on port $CTLD_PORT"
    slurmctld -f "$CONF" 9>&-  # the daemons must not hold the start lock
    for _ in $(seq 100); do
        scontrol ping 2>/dev/null | grep -q UP && break
        sleep 0.1
    done
fi
for node in "${NODES[@]}"; do
    if ! pid_alive "$STATE_DIR/run/slurmd-$node.pid"; then
        mkdir -p "$STATE_DIR/spool/$node"
        log "starting slurmd -N $node"
        slurmd -f "$CONF" -N "$node" 9>&-
    fi
done

# ---- wait until every node is idle (or busy with a job: a running cluster is fine) -------------
deadline=$((SECONDS + 60))
while :; do
    states="$(timeout 15 sinfo -h -N -o '%N %t' 2>/dev/null | sort -u || true)"
    ready=0
    for node in "${NODES[@]}"; do
        if grep -Eq "^$node (idle|mix|alloc|comp)\b" <<<"$states"; then ready=$((ready + 1)); fi
        if grep -Eq "^$node (down|drain|drng|fail)" <<<"$states"; then
            scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
        fi
    done
    ((ready == ${#NODES[@]})) && break
    if ((SECONDS > deadline)); then
        die "nodes not idle after 60 s (sinfo: ${states:-no answer}); logs in $STATE_DIR/log"
    fi
    sleep 0.2
done
log "cluster up: $(tr '\n' ' ' <<<"$states")"
echo "export SLURM_CONF=$CONF"
