"""Parent and reaper of the test cluster's daemons (started by start_slurm.sh).

    python3 slurm_supervisor.py STATE_DIR SPEC_JSON

SPEC_JSON lists the daemons in start order: [{"name", "argv", "user"?, "ready"?}].
The supervisor starts each one in the foreground mode of the daemon (so the
recorded PID is the daemon itself), as ``user`` when given, waits until its
``ready`` path exists, and records ``name pid starttime`` lines in
STATE_DIR/pids (its own line first). It then reaps children until every
daemon has exited (stop_slurm.sh signals the recorded PIDs), ends whatever
is left below it (job processes of the test cluster) and exits.

Why a supervisor: on machines whose PID 1 does not reap orphans (containers,
micro-VMs) every stopped daemon, and every finished job step (slurmstepd
detaches from slurmd), would stay behind as a zombie. The supervisor is a
child subreaper (prctl PR_SET_CHILD_SUBREAPER): everything the daemons leave
behind is re-parented to it and reaped. Only the supervisor itself still
needs a reaping parent; tests/cluster/with_slurm.py provides one.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import signal
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} supervisor[{os.getpid()}]: {msg}", flush=True)


def starttime(pid: int) -> str:
    """Start time of a process in clock ticks since boot (guards against PID reuse)."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[19]


def children() -> list[int]:
    """PIDs whose parent is this process (direct children and re-parented orphans)."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def reap(block: bool) -> list[int]:
    done = []
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block and not done else os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append(pid)


def spawn(argv: list[str], user: str | None) -> int:
    pid = os.fork()
    if pid == 0:  # child
        try:
            if user:
                pw = pwd.getpwnam(user)
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            os.execvp(argv[0], argv)
        except BaseException as exc:  # noqa: BLE001 - report and leave the child
            print(f"cannot start {argv}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
    return pid


def main() -> int:
    state, spec_file = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_file.read_text())
    os.setsid()  # own session: a Ctrl-C in the caller's terminal does not reach the daemons
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log("warning: could not become a child subreaper; job processes may linger as zombies")
    stopping = False

    def on_term(signum, frame):  # stop the daemons in reverse order
        nonlocal stopping
        stopping = True
        for pid in reversed(list(daemons.values())):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    daemons: dict[str, int] = {}
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    lines = [f"supervisor {os.getpid()} {starttime(os.getpid())}"]
    for d in spec:
        pid = spawn(d["argv"], d.get("user"))
        daemons[d["name"]] = pid
        lines.append(f"{d['name']} {pid} {starttime(pid)}")
        tmp = state / "pids.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(state / "pids")
        log(f"started {d['name']} (pid {pid}): {' '.join(d['argv'])}")
        ready = d.get("ready")
        deadline = time.monotonic() + 20
        while ready and not os.path.exists(ready):
            if pid in reap(block=False) or time.monotonic() > deadline:
                log(f"{d['name']} did not become ready ({ready} missing); stopping")
                daemons.pop(d["name"], None)
                on_term(None, None)
                break
            time.sleep(0.05)
        if stopping:
            break
    alive = set(daemons.values())
    while alive:
        for pid in reap(block=True):
            if pid in alive:
                alive.discard(pid)
                name = next(n for n, p in daemons.items() if p == pid)
                log(f"{name} (pid {pid}) exited")
    # Daemons are gone: end what is left below us (job steps, their children).
    left = children()
    if left:
        log(f"ending left-over processes {left}")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while children() and time.monotonic() < deadline:
            reap(block=False)
            time.sleep(0.05)
        left = children()
        if not left:
            break
    reap(block=False)
    log("all daemons stopped, exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
