#!/usr/bin/env bash
# A single-node SLURM cluster in a folder, for the tests: munged, slurmctld and slurmd with a
# minimal slurm.conf (one node with this machine's cores, no cgroups, no accounting).
#   scripts/slurm_cluster.sh start DIR    starts it; prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm_cluster.sh stop DIR     stops every daemon it started and leaves nothing running
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge) and root (the daemons
# run as the user who starts them).
set -euo pipefail
action=${1:?start or stop}
dir=$(realpath -m "${2:?a folder}")

stop() {
    if [[ -f "$dir/slurmctld.pid" ]]; then  # end the jobs first, so that slurmd reaps their steps
        SLURM_CONF="$dir/slurm.conf" scancel --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 100); do
            [[ -z $(SLURM_CONF="$dir/slurm.conf" squeue -h 2>/dev/null) ]] && break
            sleep 0.1
        done
    fi
    for name in slurmd slurmctld munged; do
        if [[ -f "$dir/$name.pid" ]]; then
            kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
        fi
    done
    for name in slurmd slurmctld munged; do
        for _ in $(seq 50); do
            [[ -f "$dir/$name.pid" ]] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$dir/$name.pid"
    done
    # steps left without their daemons: the job scripts run from the spool folder, each under
    # its slurmstepd
    for pid in $(pgrep -f "$dir/spool" || true); do
        kill -9 "$(ps -o ppid= -p "$pid" | tr -d ' ')" "$pid" 2>/dev/null || true
    done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [[ $action == stop ]]; then stop; exit 0; fi
[[ $action == start ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install slurm-wlm munge" >&2; exit 3; }
done
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
node=$(hostname -s)
# the machine's cores (nproc would honour OMP_NUM_THREADS), and at least 4 so that the tests'
# jobs (a 2-task DDP job among them) fit on a small machine: slurmd accepts the overstatement
cpus=$(getconf _NPROCESSORS_ONLN)
(( cpus < 4 )) && cpus=4
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
user=$(id -un)

dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
chmod 600 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"

cat > "$dir/slurm.conf" <<CONF
ClusterName=vaelab-test
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N "$node"
for _ in $(seq 100); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
echo "the cluster did not come up; its logs are in $dir/log:" >&2
tail -n 5 "$dir"/log/*.log >&2 || true
stop
exit 1
