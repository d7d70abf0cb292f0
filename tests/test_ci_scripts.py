""".ci/apt-mirror picks the host's Debian archive from its apt sources; .ci/ns-leader finds a container's PID 1.

Both serve .ci/deb-test (make deb-test), which needs root and the network; these tests need neither.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APT_MIRROR = ROOT / ".ci" / "apt-mirror"
NS_LEADER = ROOT / ".ci" / "ns-leader"

ONE_LINE = """\
# the installer's sources.list
deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_ - Official amd64 DVD Binary-1]/ bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb http://mirror.example/debian bookworm-updates main
deb [ arch=amd64 signed-by=/usr/share/keyrings/debian.gpg ] http://mirror.example/debian/ bookworm main contrib
deb http://later.example/debian bookworm main
"""

DEB822 = """\
Types: deb
URIs: http://disabled.example/debian
Suites: trixie
Components: main
Enabled: no

Types: deb
# a snapshot of the archive would go here
URIs: http://mirror.example/debian-security
Suites: trixie-security
Components: main

Types: deb deb-src
URIs: http://local.example:3142/debian
Suites: trixie trixie-updates
Components: main non-free-firmware
Signed-By: -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOcHwXKqN
 -----END PGP PUBLIC KEY BLOCK-----
"""

THIRD_PARTY = """\
Types: deb
URIs: https://vendor.example/node_20.x
Suites: nodistro
Components: main
"""


def choose(etc_apt: Path, lists: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(APT_MIRROR), str(etc_apt), str(lists)],
                          capture_output=True, text=True, timeout=30)


def etc(tmp_path: Path, sources_list: str | None = None, **parts: str) -> Path:
    """An /etc/apt in tmp_path with sources.list and sources.list.d/<name with _ for .>."""
    etc_apt = tmp_path / "etc-apt"
    (etc_apt / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (etc_apt / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (etc_apt / "sources.list.d" / name.replace("_", ".")).write_text(text)
    (tmp_path / "lists").mkdir(exist_ok=True)
    return etc_apt


def test_one_line_skips_cdrom_source_security_and_updates(tmp_path: Path) -> None:
    out = choose(etc(tmp_path, ONE_LINE), tmp_path / "lists")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "http://mirror.example/debian\n"


def test_deb822_skips_disabled_and_security_stanzas(tmp_path: Path) -> None:
    out = choose(etc(tmp_path, None, vendor_sources=THIRD_PARTY, debian_sources=DEB822), tmp_path / "lists")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "http://local.example:3142/debian\n"


def test_sources_list_comes_before_sources_list_d(tmp_path: Path) -> None:
    etc_apt = etc(tmp_path, "deb http://first.example/debian stable main\n", debian_sources=DEB822)
    assert choose(etc_apt, tmp_path / "lists").stdout == "http://first.example/debian\n"


def test_a_vendor_repository_with_debian_suite_names_is_passed_over(tmp_path: Path) -> None:
    etc_apt = etc(tmp_path, None, raspi_list="deb http://vendor.example/debian/ bookworm main\n",
                  zz_debian_list="deb http://mirror.example/debian bookworm main\n")
    lists = tmp_path / "lists"
    (lists / "vendor.example_debian_dists_bookworm_InRelease").write_text(
        "Origin: Raspberry Pi Foundation\nSuite: bookworm\n")
    (lists / "mirror.example_debian_dists_bookworm_InRelease").write_text("Origin: Debian\nSuite: stable\n")
    assert choose(etc_apt, lists).stdout == "http://mirror.example/debian\n"


def test_no_archive_entry_says_to_set_the_override(tmp_path: Path) -> None:
    etc_apt = etc(tmp_path, "deb cdrom:[Debian 12]/ bookworm main\n", vendor_sources=THIRD_PARTY,
                  debian_sources_disabled="Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
                                          "Components: main\n")
    out = choose(etc_apt, tmp_path / "lists")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "SENSORD_DEB_MIRROR" in out.stderr and str(etc_apt) in out.stderr


def test_the_repository_names_no_mirror_host() -> None:
    """The mirror comes from the host's apt (or SENSORD_DEB_MIRROR), never from a default in the repo."""
    files = [ROOT / "Makefile", ROOT / "README.md", *(ROOT / ".ci").iterdir(), *(ROOT / "docs").glob("*.md")]
    assert not [f.name for f in files if "debian.org" in f.read_text()]
    assert "SENSORD_DEB_MIRROR:-$(" in (ROOT / ".ci" / "deb-test").read_text()


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
