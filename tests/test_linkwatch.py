"""`sensord.linkwatch`: rtnetlink messages recorded in a network namespace (tests/golden/netlink-veth.json:
each step's `ip` command and the datagrams the kernel sent for it), parsed without a socket, and
the watcher reading a socket from the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from pathlib import Path

import pytest

from sensord.linkwatch import (
    GROUPS,
    IFF_LOWER_UP,
    IFLA_IFNAME,
    IFLA_OPERSTATE,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    LinkState,
    LinkWatch,
    parse,
)

RECORDED = json.loads((Path(__file__).parent / "golden" / "netlink-veth.json").read_text())


def events(step: str, state: LinkState) -> list[str]:
    return [e for datagram in RECORDED[step] for e in parse(bytes.fromhex(datagram), state)]


def test_recorded_veth_bring_up() -> None:
    state = LinkState()
    assert events("lo up", state) == []  # loopback, and 127.0.0.1 / ::1 (scope host)
    assert events("veth made", state) == []  # down
    assert events("vxa up (peer down)", state) == []  # admin up, no carrier yet
    assert events("vxb up", state) == ["carrier up on vxb", "carrier up on vxa"]
    assert events("addr v4", state) == ["address 10.200.9.1 added on vxa"]
    # Announced twice: tentative (ignored), then once duplicate address detection is done.
    assert events("addr v6 tentative", state) == ["address fd00:200::1 added on vxa"]
    assert events("default route", state) == ["default route added via 10.200.9.2"]
    assert events("vxb down", state) == []  # going down is the publisher's business
    assert not any(state.carrier.values())


def test_a_carrier_that_comes_back_is_an_event_again() -> None:
    state = LinkState()
    for step in ("veth made", "vxa up (peer down)", "vxb up", "vxb down"):
        events(step, state)
    assert events("vxb up", state) == ["carrier up on vxb", "carrier up on vxa"]


def test_news_about_a_link_that_already_had_its_carrier_is_no_event() -> None:
    state = LinkState()
    up = newlink(7, 0x1 | IFF_LOWER_UP, b"eth0", 6)
    assert parse(up, state) == ["carrier up on eth0"]
    assert parse(up, state) == []  # e.g. an MTU change


def newlink(index: int, flags: int, name: bytes, operstate: int) -> bytes:
    attrs = b""
    for kind, value in ((IFLA_IFNAME, name + b"\0"), (IFLA_OPERSTATE, bytes([operstate]))):
        attrs += struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 512, index, flags, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, 0, 0, 0) + body


def newroute(dst_len: int, table: int, gateway: bytes | None) -> bytes:
    attrs = b"" if gateway is None else struct.pack("=HH", 8, 5) + gateway
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, dst_len, 0, 0, table, 3, 0, 1, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWROUTE, 0, 0, 0) + body


def test_ppp_with_operstate_unknown_counts_as_up() -> None:
    # ppp0 and tun devices have a carrier but report operstate "unknown" (RFC 2863 has no better word)
    assert parse(newlink(7, 0x1 | 0x40 | IFF_LOWER_UP, b"ppp0", 0), LinkState()) == ["carrier up on ppp0"]
    # operstate "dormant" (Wi-Fi associated, WPA not done yet) is not up yet
    assert parse(newlink(8, 0x1 | IFF_LOWER_UP, b"wlan0", 5), LinkState()) == []


def test_only_default_routes_outside_the_local_table_count() -> None:
    gw = socket.inet_aton("10.200.0.1")
    assert parse(newroute(0, 254, gw), LinkState()) == ["default route added via 10.200.0.1"]
    assert parse(newroute(24, 254, None), LinkState()) == []  # a subnet route
    assert parse(newroute(0, 255, None), LinkState()) == []  # table local


def test_two_messages_in_one_datagram_and_a_truncated_tail() -> None:
    data = newlink(7, 0x1 | IFF_LOWER_UP, b"ppp0", 6) + newroute(0, 254, socket.inet_aton("10.0.0.1"))
    assert parse(data + data[:10], LinkState()) == ["carrier up on ppp0", "default route added via 10.0.0.1"]
    assert parse(data[:-3], LinkState()) == ["carrier up on ppp0"]


class FakeNetlink:
    """One end of a datagram socketpair dressed as a netlink socket: the test writes the kernel's part."""

    def __init__(self) -> None:
        self.sock, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.bound: object = None

    def bind(self, address: object) -> None:
        self.bound = address

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


def test_watch_reads_from_the_loop_and_reports_each_event(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNetlink()
    got: list[str] = []

    async def main() -> None:
        watch = LinkWatch(got.append, open_socket=lambda: fake)  # type: ignore[arg-type,return-value]
        assert watch.start() and fake.bound == (0, GROUPS)
        for step in ("veth made", "vxa up (peer down)", "vxb up", "addr v4", "default route"):
            for datagram in RECORDED[step]:
                fake.kernel.send(bytes.fromhex(datagram))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while len(got) < 4 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        watch.close()

    with caplog.at_level(logging.INFO, logger="sensord.linkwatch"):
        asyncio.run(main())
    assert got == ["carrier up on vxb", "carrier up on vxa", "address 10.200.9.1 added on vxa",
                   "default route added via 10.200.9.2"]
    assert "watching the link over netlink" in caplog.text
    fake.kernel.close()
    fake.sock.close()


def test_without_netlink_one_warning_and_no_watch(caplog: pytest.LogCaptureFixture) -> None:
    def refused() -> socket.socket:
        raise OSError(97, "Address family not supported by protocol")

    async def main() -> bool:
        return LinkWatch(lambda what: None, open_socket=refused).start()

    with caplog.at_level(logging.WARNING, logger="sensord.linkwatch"):
        assert asyncio.run(main()) is False
    assert [r.getMessage() for r in caplog.records] == [
        "cannot watch the link (netlink socket: [Errno 97] Address family not supported by protocol); "
        "reconnects follow the backoff alone"]
