"""Run a command with the single-node test cluster up; stop it afterwards.

    python3 tests/cluster/with_slurm.py [--dir DIR] [--install] -- CMD [ARGS...]
    python3 tests/cluster/with_slurm.py [--dir DIR] [--install] --hold

Starts the cluster (tests/cluster/start_slurm.sh, optionally after
install_slurm.sh), runs CMD with SLURM_CONF and SNAKESCOPE_SLURM_DIR set, then
stops it (stop_slurm.sh) -- also when CMD fails or this script is interrupted --
and exits with CMD's status (or 3 when the cluster could not be started, 4 when
it did not stop cleanly). With --hold it prints ``ready DIR`` on stdout once the
cluster is up and stops it when its stdin is closed (the pytest fixture of
tests/cluster/test_slurm.py uses this).

This process is a child subreaper: the cluster's supervisor (which outlives
start_slurm.sh) is re-parented to it and reaped here, so nothing is left behind
even where PID 1 does not reap orphans.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PR_SET_CHILD_SUBREAPER = 36
DEFAULT_DIR = os.environ.get("SNAKESCOPE_SLURM_DIR", "/tmp/snakescope-slurm")


def say(msg: str) -> None:
    """To stderr; never fails (the caller may be gone, the cluster must still stop)."""
    try:
        print(f"with_slurm: {msg}" if msg else "", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def script(name: str, *args: str) -> int:
    """Run tests/cluster/<name>; its output goes to our stderr (captured first, so a
    closed stderr cannot kill it half-way with SIGPIPE)."""
    res = subprocess.run(["bash", str(HERE / name), *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in res.stdout.splitlines():
        try:
            print(line, file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
    return res.returncode


def children() -> list[int]:
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


def reap_all(timeout: float) -> list[int]:
    """Reap every child (called when no subprocess of ours is being waited for)."""
    deadline = time.monotonic() + timeout
    while True:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return []
            if pid == 0:
                break
        left = children()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def recorded_left(state: Path) -> list[str]:
    """Recorded cluster processes that still exist (alive or zombie)."""
    out = []
    for name in ("pids", "pids.stopped"):
        path = state / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            label, pid, start = line.split()
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[19] == start:
                out.append(f"{label} (pid {pid}, state {fields[0]})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=DEFAULT_DIR, help="state directory of the cluster")
    parser.add_argument("--install", action="store_true", help="run install_slurm.sh first")
    parser.add_argument("--hold", action="store_true", help="keep the cluster up until stdin is closed")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not args.hold and not cmd:
        parser.error("give a command after -- or --hold")
    state = Path(args.dir)

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        say("warning: cannot become a child subreaper; the supervisor may stay a zombie")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)

    if args.install:
        rc = script("install_slurm.sh")
        if rc != 0:
            say(f"install_slurm.sh failed (exit {rc})")
            return 3
    t0 = time.monotonic()
    rc = script("start_slurm.sh", str(state))
    if rc != 0:
        reap_all(5)
        say(f"start_slurm.sh failed (exit {rc})")
        return 3
    say(f"cluster up in {time.monotonic() - t0:.1f} s")
    state = state.resolve()
    env = dict(os.environ, SLURM_CONF=str(state / "etc" / "slurm.conf"), SNAKESCOPE_SLURM_DIR=str(state))
    status = 0
    try:
        if args.hold:
            print(f"ready {state}", flush=True)
            sys.stdin.read()  # until the holder closes our stdin (or exits)
        else:
            proc = subprocess.Popen(cmd, env=env)
            try:
                status = proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
                proc.wait()
                raise
    except KeyboardInterrupt as exc:
        say(f"interrupted ({exc}); stopping the cluster")
        status = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_rc = script("stop_slurm.sh", str(state))
        left = reap_all(20)
        remaining = recorded_left(state)
        if stop_rc != 0 or remaining:
            say(f"cluster did not stop cleanly (stop_slurm.sh exit {stop_rc}; left: {remaining or 'none'})")
            status = status or 4
        elif left:
            say(f"note: child processes {left} (not of the cluster) still running")
    return status


if __name__ == "__main__":
    sys.exit(main())
