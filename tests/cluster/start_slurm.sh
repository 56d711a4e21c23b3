#!/usr/bin/env bash
# Start a one-node SLURM cluster on loopback for tests (needs root and the
# packages of install_slurm.sh).
#
#   tests/cluster/start_slurm.sh [STATE_DIR]      (default $SNAKESCOPE_SLURM_DIR or /tmp/snakescope-slurm)
#
# Everything lives in STATE_DIR: etc/slurm.conf, etc/cgroup.conf, a fresh munge key and
# socket, spool/state directories, logs, `pids` (name pid starttime of the
# supervisor and of munged, slurmctld, slurmd) and `env.sh` (export SLURM_CONF=...).
# No system file and no service is touched (except the link /run/slurm/conf, see
# below; removed by stop_slurm.sh); only 127.0.0.1 is used.
# The daemons run in the foreground (-F/-D) below tests/cluster/slurm_supervisor.py,
# which reaps them and the job processes. Stop with tests/cluster/stop_slurm.sh.
#
# Environment: SNAKESCOPE_SLURM_PORT (slurmctld port, default 6817; slurmd uses +1),
# SNAKESCOPE_SLURM_PARTITION (default debug), SNAKESCOPE_SLURM_CPUS / _MEM_MB
# (node size; default: this machine's cores, at least 4, and 90% of its memory),
# PYTHON (for the supervisor, default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="$(realpath -m "${1:-${SNAKESCOPE_SLURM_DIR:-/tmp/snakescope-slurm}}")"
PORT="${SNAKESCOPE_SLURM_PORT:-6817}"
PARTITION="${SNAKESCOPE_SLURM_PARTITION:-debug}"
# At least 4 CPU slots, also on 2-core machines (SlurmdParameters=config_overrides
# lets the node claim more than it has): concurrent test runs do not queue behind
# each other; the steps are short and mostly wait.
CPUS="${SNAKESCOPE_SLURM_CPUS:-$(( $(nproc) < 4 ? 4 : $(nproc) ))}"
MEM_MB="${SNAKESCOPE_SLURM_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)}"
PYTHON="${PYTHON:-$(command -v python3)}"

die() { echo "start_slurm: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (slurmd runs jobs as their users; munged must be started as the munge user)"
for cmd in munged slurmctld slurmd sinfo sbatch squeue; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run tests/cluster/install_slurm.sh"
done
id munge >/dev/null 2>&1 || die "no munge user (is the munge package installed?)"

# One cluster per state directory.
if [ -f "$STATE/pids" ]; then
    while read -r name pid start; do
        if [ -r "/proc/$pid/stat" ] && [ "$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$pid/stat")" = "$start" ] \
            && [ "$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$pid/stat")" != Z ]; then
            die "a cluster is already running in $STATE ($name pid $pid); stop it with tests/cluster/stop_slurm.sh $STATE"
        fi
    done <"$STATE/pids"
fi
# Inside a job, srun runs without SLURM_CONF (the SLURM executor plugin's job step
# drops SLURM_* variables), so it looks for /etc/slurm/slurm.conf, then for
# /run/slurm/conf/slurm.conf (where slurmd keeps its config on "configless"
# compute nodes). We link /run/slurm/conf to our etc/ directory: the only path
# outside STATE_DIR that we write (a tmpfs; removed by stop_slurm.sh).
[ ! -e /etc/slurm/slurm.conf ] || die "/etc/slurm/slurm.conf exists: srun inside the test jobs would read it, not ours"
if [ -e /run/slurm/conf/slurm.conf ] && [ "$(readlink /run/slurm/conf)" != "$STATE/etc" ]; then
    die "/run/slurm/conf/slurm.conf exists ($(readlink /run/slurm/conf || echo 'not a link')): another SLURM node runs here"
fi
# STATE_DIR is wiped: only an empty directory or one of ours.
if [ -d "$STATE" ] && [ -n "$(ls -A "$STATE")" ] && [ ! -e "$STATE/daemons.json" ]; then
    die "$STATE exists and is not a state directory of start_slurm.sh; give another one"
fi
rm -rf "$STATE"
mkdir -p "$STATE"/{etc,state,spool,log,munge}
chmod 755 "$STATE"

# --- munge: own key, socket and logs, run as the munge user -----------------
MUNGE="$STATE/munge"
head -c 1024 /dev/urandom >"$MUNGE/munge.key"
chmod 400 "$MUNGE/munge.key"
chown -R munge:munge "$MUNGE"
chmod 755 "$MUNGE"   # munged requires the socket's directory to be searchable by all
SOCKET="$MUNGE/munge.socket.2"

# --- slurm.conf / cgroup.conf ------------------------------------------------
CONF="$STATE/etc/slurm.conf"
cat >"$CONF" <<EOF
# Test cluster written by tests/cluster/start_slurm.sh: one node on 127.0.0.1.
ClusterName=snakescope-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting database: processes are tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Finished jobs stay visible to squeue for 1 h (snakemake's status checks and the tests use
# squeue; with 10 min a slow, loaded test run lost its first jobs before the test looked).
MinJobAge=3600
ReturnToService=2
SlurmdParameters=config_overrides
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$STATE/etc/cgroup.conf" <<'EOF'
# Not used: slurm.conf tracks processes with proctrack/linuxproc and task/none
# (no systemd, no delegated cgroup tree). Kept so that no system cgroup.conf is read.
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
EOF
echo "export SLURM_CONF=$CONF" >"$STATE/env.sh"
mkdir -p /run/slurm
ln -sfn "$STATE/etc" /run/slurm/conf
export SLURM_CONF="$CONF"

cat >"$STATE/daemons.json" <<EOF
[
  {"name": "munged", "user": "munge", "ready": "$SOCKET",
   "argv": ["munged", "-F", "--key-file=$MUNGE/munge.key", "--socket=$SOCKET",
            "--pid-file=$MUNGE/munged.pid", "--log-file=$MUNGE/munged.log",
            "--seed-file=$MUNGE/munged.seed", "--num-threads=2"]},
  {"name": "slurmctld", "ready": "$STATE/slurmctld.pid",
   "argv": ["slurmctld", "-D", "-i", "-f", "$CONF"]},
  {"name": "slurmd",
   "argv": ["slurmd", "-D", "-N", "localhost", "-f", "$CONF"]}
]
EOF

# stdin/stdout/stderr detached: a caller capturing our output must not wait for the daemons.
SLURM_CONF="$CONF" "$PYTHON" "$HERE/slurm_supervisor.py" "$STATE" "$STATE/daemons.json" \
    </dev/null >"$STATE/log/supervisor.log" 2>&1 &
SUP=$!

# --- wait until the node is idle --------------------------------------------
deadline=$((SECONDS + 30))
state=""
while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$SUP" 2>/dev/null; then
        break
    fi
    state="$(sinfo -h -N -n localhost -o '%t' 2>/dev/null || true)"
    if [ "$state" = "idle" ]; then
        echo "start_slurm: node localhost idle in partition $PARTITION ($CPUS CPUs, $MEM_MB MB); state dir $STATE"
        echo "start_slurm: export SLURM_CONF=$CONF   (or: source $STATE/env.sh)"
        exit 0
    fi
    sleep 0.2
done
tail -n 20 "$STATE/log/supervisor.log" "$STATE/munge/munged.log" "$STATE/log/slurmctld.log" \
    "$STATE/log/slurmd.log" >&2 2>/dev/null || true
"$HERE/stop_slurm.sh" "$STATE" >&2 || true
cause=$(grep -h -m 3 -E "fatal|Error:|error: (Unable to bind|.*[Aa]ddress already in use)" \
    "$STATE/log/supervisor.log" "$STATE/log/slurmctld.log" "$STATE/munge/munged.log" 2>/dev/null | head -3 | tr '\n' ' ' || true)
echo "start_slurm: FAILED: the cluster did not come up (node state: '${state:-none}'; logs in $STATE/log): ${cause:-see the logs above}" >&2
exit 1
