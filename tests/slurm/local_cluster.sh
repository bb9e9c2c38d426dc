#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, for tests/test_slurm.py (and by hand).
#
#   tests/slurm/local_cluster.sh start DIR   # writes DIR/slurm.conf, starts munged (if needed), slurmctld, slurmd
#   tests/slurm/local_cluster.sh stop DIR    # stops what `start` started
#   SLURM_CONF=DIR/slurm.conf sbatch ...     # clients find the cluster through SLURM_CONF
#
# Needs root and Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge). Everything the
# cluster writes (state, spool, logs, pid files) stays in DIR; nothing under /etc is changed except
# creating /etc/munge/munge.key when the munge package left none. The node is this host with
# CPUS cores and MEM_MB of memory (default 2 and 20000); the daemons listen on ports 16817/16818,
# not SLURM's defaults, so a system SLURM is left alone. No accounting database: use
# `--slurm-status-command squeue` (MinJobAge is set to 10 minutes so squeue still sees finished jobs).
set -euo pipefail

action=${1:?usage: local_cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: local_cluster.sh start|stop DIR}")
cpus=${CPUS:-2}
mem_mb=${MEM_MB:-20000}
node=$(hostname -s)
export SLURM_CONF="$dir/slurm.conf"

write_config() {
    mkdir -p "$dir/state" "$dir/spool"
    cat > "$SLURM_CONF" <<EOF
ClusterName=psmtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldParameters=enable_configless
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    munge_works && return 0
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile /etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    touch "$dir/munged.started-here"
    for _ in $(seq 50); do munge_works && return 0; sleep 0.1; done
    echo "munged did not come up" >&2
    return 1
}

wait_for_idle_node() {
    for _ in $(seq 150); do
        state=$(sinfo --noheader --nodes="$node" --format=%t 2>/dev/null || true)
        case "$state" in idle*|mix*|alloc*) return 0 ;; esac
        sleep 0.2
    done
    echo "node $node did not become idle (state '${state:-unknown}'); logs in $dir" >&2
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    return 1
}

stop_pid() {
    local pidfile=$1
    [ -s "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
}

case "$action" in
    start)
        mkdir -p "$dir"
        write_config
        start_munge
        slurmctld -f "$SLURM_CONF" -i      # -i: ignore state left by an earlier run in DIR
        # configless slurmd: it caches the config in /run/slurm/conf, where the srun that
        # snakemake-executor-plugin-slurm-jobstep starts inside each job looks for it (the plugin
        # drops SLURM_CONF, with every other SLURM_* variable, from that srun's environment)
        slurmd --conf-server 127.0.0.1:16817 -N "$node"
        wait_for_idle_node
        echo "SLURM_CONF=$SLURM_CONF"
        ;;
    stop)
        stop_pid "$dir/slurmd.pid"
        stop_pid "$dir/slurmctld.pid"
        if [ "$(readlink /run/slurm/conf)" = "$dir/spool/conf-cache" ]; then rm -f /run/slurm/conf; fi
        if [ -e "$dir/munged.started-here" ]; then
            stop_pid /run/munge/munged.pid
            rm -f "$dir/munged.started-here"
        fi
        ;;
    *)
        echo "usage: local_cluster.sh start|stop DIR" >&2
        exit 2
        ;;
esac
