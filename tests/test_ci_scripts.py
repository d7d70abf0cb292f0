""".ci/ns-leader finds a container's PID 1 for .ci/deb-test (make deb-test), without root or network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NS_LEADER = ROOT / ".ci" / "ns-leader"


def first_child(pid: int) -> int:
    """What .ci/deb-test took for the container's PID 1 before: the first child of systemd-nspawn."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError(f"process {pid} has no child within 10 s")


def ns_pid(pid: int) -> list[str]:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))


def test_ns_leader_finds_pid_1_not_the_intermediate_process() -> None:
    """Like systemd-nspawn: an intermediate process in the host's PID namespace starts the container's init.

    unshare (user namespace) -> unshare (same PID namespace as the host) -> sleep (PID 1 of a new one).
    """
    tree = subprocess.Popen(["unshare", "--user", "--map-root-user", "--fork", "--",
                             "unshare", "--pid", "--fork", "--", "sleep", "60"], start_new_session=True)
    try:
        out = subprocess.run([sys.executable, str(NS_LEADER), str(tree.pid), "sleep", "10"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        leader = int(out.stdout)
        intermediate = first_child(tree.pid)
        assert ns_pid(intermediate) == [str(intermediate)]  # the host's PID namespace: not a container
        assert leader != intermediate
        assert ns_pid(leader) == [str(leader), "1"]
        assert os.readlink(f"/proc/{leader}/ns/pid") != os.readlink(f"/proc/{tree.pid}/ns/pid")
        assert Path(f"/proc/{leader}/comm").read_text().strip() == "sleep"

        wrong = subprocess.run([sys.executable, str(NS_LEADER), str(tree.pid), "systemd", "0.3"],
                               capture_output=True, text=True, timeout=30)
        assert wrong.returncode == 1
        assert f"no descendant of {tree.pid} became PID 1" in wrong.stderr
    finally:
        os.killpg(tree.pid, signal.SIGKILL)
        tree.wait(timeout=10)
