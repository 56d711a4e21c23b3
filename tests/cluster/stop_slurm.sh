#!/usr/bin/env bash
# Stop the test cluster started by start_slurm.sh.
#
#   tests/cluster/stop_slurm.sh [STATE_DIR]      (default $SNAKESCOPE_SLURM_DIR or /tmp/snakescope-slurm)
#
# Signals ONLY the PIDs recorded in STATE_DIR/pids (checked against their recorded
# start time, so a reused PID is never hit): slurmd, slurmctld, munged (SIGTERM,
# then SIGKILL after a grace period), then the supervisor, which reaps them and
# ends the job processes left below it. Finally verifies that none of our
# processes is left: no recorded PID alive, none a zombie (except the supervisor
# awaiting its parent's wait: with_slurm.py reaps it), and no process of a job of
# this cluster. Exit status 0 when all is clean, 1 otherwise.
set -uo pipefail

STATE="$(realpath -m "${1:-${SNAKESCOPE_SLURM_DIR:-/tmp/snakescope-slurm}}")"
PIDS="$STATE/pids"
GRACE="${SNAKESCOPE_SLURM_STOP_GRACE:-15}"

if [ ! -f "$PIDS" ]; then
    echo "stop_slurm: no cluster recorded in $STATE (nothing to stop)"
    exit 0
fi

field() {  # field N of /proc/PID/stat counted after "pid (comm)": 1 = state, 2 = ppid, 20 = starttime
    awk -v n="$2" '{sub(/.*\) /, ""); print $n}' "/proc/$1/stat" 2>/dev/null
}
ours() {  # PID still is the process we recorded (same start time)
    [ -r "/proc/$1/stat" ] && [ "$(field "$1" 20)" = "$2" ]
}
running() {  # ours and not (yet) a zombie
    ours "$1" "$2" && [ "$(field "$1" 1)" != Z ]
}
wait_gone() {  # PID START SECONDS: wait until not running
    local end=$((SECONDS + $3))
    while running "$1" "$2" && [ $SECONDS -lt $end ]; do sleep 0.1; done
    ! running "$1" "$2"
}

declare -A PID START
ORDER=()
while read -r name pid start; do
    PID[$name]=$pid
    START[$name]=$start
    ORDER+=("$name")
done <"$PIDS"

for name in slurmd slurmctld munged supervisor; do
    [ -n "${PID[$name]:-}" ] || continue
    pid=${PID[$name]} start=${START[$name]}
    if ! running "$pid" "$start"; then
        continue
    fi
    # the supervisor exits by itself once its daemons are gone
    if [ "$name" = supervisor ] && wait_gone "$pid" "$start" 10; then
        continue
    fi
    kill -TERM "$pid" 2>/dev/null
    if ! wait_gone "$pid" "$start" "$GRACE"; then
        echo "stop_slurm: $name (pid $pid) ignored SIGTERM for ${GRACE}s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
        wait_gone "$pid" "$start" 5
    fi
done

# --- verify -------------------------------------------------------------------
# A stopped process stays a zombie until its parent reaps it: the supervisor reaps
# the daemons at once; the supervisor's own parent is the caller (with_slurm.py
# reaps it right after we return) or, when the caller has exited, PID 1 -- which
# on some machines (containers, micro-VMs) reaps late or never. Give it 10 s.
pending() {
    local name pid start
    for name in "${ORDER[@]}"; do
        pid=${PID[$name]} start=${START[$name]}
        ours "$pid" "$start" || continue
        [ "$name" = supervisor ] && [ "$(field "$pid" 1)" = Z ] && [ "$(field "$pid" 2)" != 1 ] && continue
        return 0
    done
    return 1
}
end=$((SECONDS + 10))
while pending && [ $SECONDS -lt $end ]; do sleep 0.2; done
status=0
for name in "${ORDER[@]}"; do
    pid=${PID[$name]} start=${START[$name]}
    ours "$pid" "$start" || continue
    st=$(field "$pid" 1)
    ppid=$(field "$pid" 2)
    if [ "$st" != Z ]; then
        echo "stop_slurm: ERROR: $name (pid $pid) is still running (state $st)" >&2
        status=1
    elif [ "$name" = supervisor ] && [ "$ppid" != 1 ]; then
        # a zombie until its parent (e.g. with_slurm.py) waits for it, right after we return
        echo "stop_slurm: supervisor (pid $pid) exited; its parent (pid $ppid) reaps it"
    else
        echo "stop_slurm: ERROR: $name (pid $pid) is a zombie of pid $ppid, which does not reap it" \
            "(start the cluster through tests/cluster/with_slurm.py on machines whose PID 1 does not reap)" >&2
        status=1
    fi
done
# Processes of jobs of the test cluster (SLURM sets SLURM_CLUSTER_NAME in every job step) or
# processes started with our state dir on their command line.
ofcluster() {  # PID: a job process of this cluster, or a process with our state dir in its command line
    local env cmdline
    env=$(tr '\0' '\n' <"/proc/$1/environ") || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline") || return 1
    { grep -qx "SLURM_CLUSTER_NAME=snakescope-test" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env"; } \
        || grep -qF -- "$STATE/" <<<"$cmdline"
}
for proc in /proc/[0-9]*; do
    p=${proc#/proc/}
    [ "$p" = $$ ] && continue
    [ "$(field "$p" 2)" = $$ ] && continue   # our own subshells
    if ofcluster "$p" 2>/dev/null; then
        st=$(field "$p" 1)
        [ -n "$st" ] || continue
        echo "stop_slurm: ERROR: process $p ($(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null | cut -c1-120)) of this cluster is left (state $st)" >&2
        status=1
    fi
done
# The link to our config that start_slurm.sh made for srun inside jobs.
if [ -L /run/slurm/conf ] && [ "$(readlink /run/slurm/conf)" = "$STATE/etc" ]; then
    rm -f /run/slurm/conf
    rmdir /run/slurm 2>/dev/null || true
fi
if [ $status -eq 0 ]; then
    echo "stop_slurm: cluster in $STATE stopped; no process of it is left"
    mv "$PIDS" "$PIDS.stopped"
fi
exit $status
