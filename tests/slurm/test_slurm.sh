#!/usr/bin/env bash
# `make test-slurm`: the smoke config through workflow/profiles/slurm on a real single-node Slurm
# (tests/slurm/cluster.sh; root), with software from the project's .venv. Checks that
#  1. its checkpoints (bit for bit, CPU), statuses, tables and measurements equal a local smoke run;
#  2. a training job cancelled with scancel mid-run is resumed by the rerun with the profile and
#     ends with the same checkpoints as an uninterrupted local run.
# The daemons it started are stopped by PID on success and on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$ROOT/.venv/bin:$PATH
source "$ROOT/tests/slurm/cluster.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lossatlas-slurm.XXXXXX")
# squeue, not sacct: the test cluster keeps no accounting. Status polls every 2 s instead of 40 s.
SLURM=(snakemake --profile workflow/profiles/slurm --slurm-status-command squeue
       --slurm-init-seconds-before-status-checks 2 --jobs 4)
LOCAL=(snakemake --profile workflow/profiles/ci)
# Each config's results lie in results/NAME/, NAME its file name: the smoke runs' in results/smoke,
# the fault runs' in results/fault.
SMOKE=results/smoke
# The fault test trains sb for FAULT_EPOCHS epochs, long enough to cancel it mid-run.
FAULT_EPOCHS=40
FAULT_CONFIG=config/fault.yaml
FAULT=results/fault
RUN_DIR=$FAULT/runs/mnist1d/mlp
FAULT_TARGET=$RUN_DIR/sb-s0/final.pt
BACKGROUND_PID=

step() { echo "test-slurm: $* (at ${SECONDS}s)"; }

stop_all() {
    if [[ -n $BACKGROUND_PID ]]; then
        kill "$BACKGROUND_PID" 2>/dev/null || true
        wait "$BACKGROUND_PID" 2>/dev/null || true
    fi
    cluster_down
}

copy_workflow() {
    mkdir -p "$1"
    cp -r "$ROOT"/{Snakefile,workflow,config,envs} "$1"/
}

# run_in DIR LOG COMMAND...: run COMMAND in DIR, its output to DIR/LOG (shown on failure).
run_in() {
    local dir=$1 log=$2
    shift 2
    if ! (cd "$dir" && "$@" >"$log" 2>&1); then
        echo "test-slurm: failed in $dir: $*" >&2
        tail -n 40 "$dir/$log" >&2
        return 1
    fi
}

# fault_config DIR: DIR/config/fault.yaml, the smoke config with sb trained FAULT_EPOCHS epochs.
fault_config() {
    python -c 'import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config["runs"]["sb"]["epochs"] = int(sys.argv[3])
yaml.safe_dump(config, open(sys.argv[2], "w"))' \
        "$1/config/smoke.yaml" "$1/$FAULT_CONFIG" "$FAULT_EPOCHS"
}

cluster_up
trap stop_all EXIT

step "local smoke run"
copy_workflow "$WORK/local"
run_in "$WORK/local" snakemake.log "${LOCAL[@]}"
step "smoke run through the Slurm profile"
copy_workflow "$WORK/cluster"
run_in "$WORK/cluster" snakemake.log "${SLURM[@]}" --configfile config/smoke.yaml
submitted=$(grep -c "submitted with SLURM jobid" "$WORK/cluster/snakemake.log")
step "$submitted Slurm jobs done; comparing with the local run"
python "$ROOT/tests/slurm/compare_results.py" "$WORK/local" "$WORK/cluster" \
    "$SMOKE/runs" "$SMOKE/measurements"
figures=("$WORK/local/$SMOKE"/figures/*.png)
test -s "${figures[0]}" || { echo "test-slurm: no figure in $WORK/local/$SMOKE/figures" >&2; exit 1; }
for figure in "${figures[@]}"; do
    test -s "$WORK/cluster/$SMOKE/figures/$(basename "$figure")"
done

step "fault: sb with $FAULT_EPOCHS epochs, uninterrupted on the local machine"
for dir in "$WORK/fault-local" "$WORK/fault-cluster"; do
    copy_workflow "$dir"
    fault_config "$dir"
done
run_in "$WORK/fault-local" snakemake.log \
    snakemake "$FAULT_TARGET" --cores 2 --configfile "$FAULT_CONFIG"

step "fault: the same run on Slurm, cancelled with scancel after its first epochs"
(cd "$WORK/fault-cluster" && exec "${SLURM[@]}" "$FAULT_TARGET" --configfile "$FAULT_CONFIG" \
    >snakemake.log 2>&1) &
BACKGROUND_PID=$!
resume=$WORK/fault-cluster/$RUN_DIR/sb-s0/resume.pt
for _ in $(seq 600); do
    [[ -e $resume ]] && break
    sleep 0.5
done
test -e "$resume" || { echo "test-slurm: $resume never appeared" >&2; exit 1; }
job=$(squeue -h -o "%i %k" | awk '$2 ~ /^rule_train/ {print $1}')
test -n "$job" || { echo "test-slurm: no running train job to cancel" >&2; exit 1; }
scancel "$job"
if wait "$BACKGROUND_PID"; then
    echo "test-slurm: the run finished although its job $job was cancelled" >&2
    exit 1
fi
BACKGROUND_PID=
test ! -e "$WORK/fault-cluster/$FAULT_TARGET"
epoch=$(python -c "from lossatlas import io; print(io.load_torch('$resume')['epoch'])")
step "job $job cancelled at epoch $epoch of $FAULT_EPOCHS; rerunning with the profile"
run_in "$WORK/fault-cluster" rerun.log \
    "${SLURM[@]}" "$FAULT_TARGET" --configfile "$FAULT_CONFIG"
grep -q "resuming from .*resume.pt at epoch $epoch" \
    "$WORK/fault-cluster/$FAULT/logs/train/mnist1d/mlp/sb-s0.log"
python "$ROOT/tests/slurm/compare_results.py" "$WORK/fault-local" "$WORK/fault-cluster" \
    "$RUN_DIR/sb-s0"
step "passed"
rm -rf "$WORK"
