#!/usr/bin/env bash
# A real single-node Slurm on this machine for `make test-slurm` (run as root; CI and build
# machines are). Installs Debian's slurm-wlm and munge when missing, writes a one-node slurm.conf
# (cgroup-free plugins, no accounting), starts munged, slurmctld and slurmd and waits until the
# node is idle. Source it, call `cluster_up`; `cluster_down` (also run on EXIT by cluster_up's
# trap) cancels the test cluster's jobs, stops exactly the daemons it started, by the PIDs in
# their pid files, and removes the slurm.conf it wrote. Each start begins from empty state folders.

SLURM_CONF=/etc/slurm/slurm.conf
CONF_MARKER="# written by lossatlas tests/slurm/cluster.sh"
STARTED_PID_FILES=()

cluster_install() {
    if command -v sbatch >/dev/null && command -v slurmctld >/dev/null \
        && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "test-slurm: slurm-wlm and munge are missing and installing them needs root" >&2
        return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

cluster_configure() {
    local host
    host=$(hostname -s)
    if [[ -e $SLURM_CONF ]] && ! grep -qF "$CONF_MARKER" "$SLURM_CONF"; then
        echo "test-slurm: $SLURM_CONF exists and was not written by this test; not touching it" >&2
        return 1
    fi
    # The test cluster starts empty: jobs and node states saved by an earlier run (one that was
    # killed, or a machine image taken while it ran) would be recovered and keep the node busy.
    rm -rf /var/spool/slurmctld-lossatlas /var/spool/slurmd-lossatlas
    mkdir -p /etc/slurm /var/spool/slurmctld-lossatlas /var/spool/slurmd-lossatlas \
        /var/log/slurm-lossatlas
    # The job steps' srun only finds the configuration at the default path, so it goes there.
    # The node claims 8 CPUs and 64 GB whatever the machine has (config_overrides), so that a few
    # jobs of the profile's sizes run at once: the test is bound by Slurm's latency, not compute.
    cat >"$SLURM_CONF" <<EOF
$CONF_MARKER
ClusterName=lossatlas-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld-lossatlas
SlurmdSpoolDir=/var/spool/slurmd-lossatlas
SlurmctldPidFile=/run/slurmctld-lossatlas.pid
SlurmdPidFile=/run/slurmd-lossatlas.pid
SlurmctldLogFile=/var/log/slurm-lossatlas/slurmctld.log
SlurmdLogFile=/var/log/slurm-lossatlas/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
SlurmdParameters=config_overrides
NodeName=$host CPUs=8 RealMemory=64000 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
}

# start_daemon PID_FILE COMMAND...: run a daemon that writes PID_FILE, remember it for cluster_down.
start_daemon() {
    local pid_file=$1
    shift
    rm -f "$pid_file"
    "$@"
    for _ in $(seq 100); do
        [[ -s $pid_file ]] && break
        sleep 0.1
    done
    if [[ ! -s $pid_file ]]; then
        echo "test-slurm: $1 did not start (no $pid_file)" >&2
        return 1
    fi
    STARTED_PID_FILES+=("$pid_file")
}

cluster_down() {
    local index pid_file pid jobs
    # Jobs still queued or running (a failed test) are cancelled first: their processes outlive
    # slurmd.
    if [[ ${#STARTED_PID_FILES[@]} -gt 0 ]]; then
        jobs=$(squeue -h -o %i 2>/dev/null) || jobs=
        if [[ -n $jobs ]]; then
            scancel $jobs 2>/dev/null || true
            sleep 2
        fi
    fi
    for ((index = ${#STARTED_PID_FILES[@]} - 1; index >= 0; index--)); do
        pid_file=${STARTED_PID_FILES[index]}
        pid=$(cat "$pid_file" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    done
    STARTED_PID_FILES=()
    # The configuration goes with the cluster: left behind, it sends every `scontrol` (which the
    # Slurm executor plugin runs whenever Snakemake loads it) to a controller that is gone, and
    # each waits about 9 s for it.
    if [[ -e $SLURM_CONF ]] && grep -qF "$CONF_MARKER" "$SLURM_CONF"; then
        rm -f "$SLURM_CONF"
    fi
}

cluster_up() {
    trap cluster_down EXIT
    cluster_install
    cluster_configure
    start_daemon /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
    # -c: no state carried over from an earlier start.
    start_daemon /run/slurmctld-lossatlas.pid /usr/sbin/slurmctld -c
    start_daemon /run/slurmd-lossatlas.pid /usr/sbin/slurmd -c
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
            echo "test-slurm: node $(hostname -s) idle ($(sinfo -V))"
            return
        fi
        sleep 1
    done
    echo "test-slurm: the node did not become idle:" >&2
    sinfo >&2 || true
    squeue >&2 || true
    tail -n 20 /var/log/slurm-lossatlas/*.log >&2 || true
    return 1
}
