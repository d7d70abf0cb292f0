"""The kernel's link events over rtnetlink: tells the MQTT loop at once when the network is back.

A Pi usually knows when its link returns: Wi-Fi re-associates, a cellular modem's PPP or wwan
interface comes up, NetworkManager or systemd-networkd configures an interface, and the kernel
announces each step on an rtnetlink socket (`AF_NETLINK`, `NETLINK_ROUTE`, rtnetlink(7)). This
module listens to the multicast groups for links, IPv4/IPv6 addresses and routes and reports the
events that can make a broker reachable again:

- a link whose carrier comes up (`IFF_LOWER_UP`) with operstate up or unknown (`IFLA_OPERSTATE`,
  RFC 2863: PPP and tun interfaces report "unknown");
- an address added (`RTM_NEWADDR`) with scope global or site, once it is no longer tentative
  (IPv6 duplicate address detection);
- a default route added (`RTM_NEWROUTE` with destination length 0) in any table but `local`.

Loopback is ignored, and so is everything going down: the publisher notices a lost connection
itself. Nothing is polled: the socket is read when the kernel writes to it. If the socket cannot
be opened (not Linux, or a sandbox without `AF_NETLINK`: the systemd unit's
`RestrictAddressFamilies=` must list it), one warning says so and reconnects follow the backoff alone.

`parse()` reads a datagram of rtnetlink messages without a socket (tests feed it recorded ones).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["GROUPS", "LinkState", "LinkWatch", "parse"]

log = logging.getLogger(__name__)

# linux/rtnetlink.h: multicast groups (the legacy bit masks bind() takes) and message types.
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
NLMSG_ERROR, NLMSG_DONE = 2, 3

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), device type, index, flags, change mask
_IFADDRMSG = struct.Struct("=BBBBi")  # family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst len, src len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")  # length, type

IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000  # carrier (linux/if.h)
IFLA_IFNAME, IFLA_OPERSTATE = 3, 16
IF_OPER_UNKNOWN, IF_OPER_UP = 0, 6
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_TENTATIVE = 0x40
RT_SCOPE_LINK, RT_SCOPE_HOST = 253, 254
RTA_GATEWAY, RTA_OIF, RTA_TABLE = 5, 4, 15
RT_TABLE_LOCAL = 255
RTN_UNICAST = 1


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attrs(data: bytes) -> dict[int, bytes]:
    """The route attributes (struct rtattr, 4-byte aligned) of one message's tail; first of each type."""
    found: dict[int, bytes] = {}
    at = 0
    while at + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, at)
        if length < _RTATTR.size:
            break
        found.setdefault(kind & 0x3FFF, data[at + _RTATTR.size:at + length])  # without NLA_F_NESTED etc.
        at += _align(length)
    return found


def _name(index: int, state: LinkState) -> str:
    if index in state.names:
        return state.names[index]
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"interface {index}"


@dataclass
class LinkState:
    """What the parser remembers between datagrams: which interfaces have a carrier, their names."""

    carrier: dict[int, bool] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)


def parse(data: bytes, state: LinkState) -> list[str]:
    """The link-up events in one datagram of rtnetlink messages, each as a short text for the log
    (`carrier up on wlan0`, `address 10.0.0.7 added on wlan0`, `default route added via 10.0.0.1`).
    A link counts as coming up when it had no carrier before (or was unknown) and has one now."""
    events: list[str] = []
    at = 0
    while at + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _port = _NLMSGHDR.unpack_from(data, at)
        if length < _NLMSGHDR.size or at + length > len(data):
            break
        body = data[at + _NLMSGHDR.size:at + length]
        at += _align(length)
        if kind == RTM_NEWLINK and len(body) >= _IFINFOMSG.size:
            _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
            if flags & IFF_LOOPBACK:
                continue
            attrs = _attrs(body[_IFINFOMSG.size:])
            if IFLA_IFNAME in attrs:
                state.names[index] = attrs[IFLA_IFNAME].split(b"\0", 1)[0].decode(errors="replace")
            oper = attrs.get(IFLA_OPERSTATE, bytes([IF_OPER_UNKNOWN]))[0]
            up = bool(flags & IFF_LOWER_UP) and oper in (IF_OPER_UP, IF_OPER_UNKNOWN)
            if up and not state.carrier.get(index, False):
                events.append(f"carrier up on {_name(index, state)}")
            state.carrier[index] = up
        elif kind == RTM_DELLINK and len(body) >= _IFINFOMSG.size:
            index = _IFINFOMSG.unpack_from(body)[2]
            state.carrier.pop(index, None)
            state.names.pop(index, None)
        elif kind == RTM_NEWADDR and len(body) >= _IFADDRMSG.size:
            family, _prefix, flags, scope, index = _IFADDRMSG.unpack_from(body)
            attrs = _attrs(body[_IFADDRMSG.size:])
            if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) >= 4:
                flags = struct.unpack_from("=I", attrs[IFA_FLAGS])[0]
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if scope >= RT_SCOPE_LINK or flags & IFA_F_TENTATIVE or raw is None:
                continue
            try:
                text = socket.inet_ntop(family, raw)
            except (OSError, ValueError):
                text = "?"
            events.append(f"address {text} added on {_name(index, state)}")
        elif kind == RTM_NEWROUTE and len(body) >= _RTMSG.size:
            family, dst_len, _src, _tos, table, _proto, _scope, rtype, _fl = _RTMSG.unpack_from(body)
            attrs = _attrs(body[_RTMSG.size:])
            if RTA_TABLE in attrs and len(attrs[RTA_TABLE]) >= 4:
                table = struct.unpack_from("=I", attrs[RTA_TABLE])[0]
            if dst_len != 0 or rtype != RTN_UNICAST or table == RT_TABLE_LOCAL:
                continue
            via = ""
            if RTA_GATEWAY in attrs:
                try:
                    via = f" via {socket.inet_ntop(family, attrs[RTA_GATEWAY])}"
                except (OSError, ValueError):
                    via = ""
            elif RTA_OIF in attrs and len(attrs[RTA_OIF]) >= 4:
                via = f" on {_name(struct.unpack_from('=i', attrs[RTA_OIF])[0], state)}"
            events.append(f"default route added{via}")
    return events


class LinkWatch:
    """Reads the rtnetlink groups (`GROUPS`) in the event loop and calls `on_up(what)` for every
    link-up event (see `parse`). `start()` never raises: without netlink it logs one warning."""

    def __init__(self, on_up: Callable[[str], None], *, groups: int = GROUPS,
                 open_socket: Callable[[], socket.socket] | None = None) -> None:
        self._on_up = on_up
        self._groups = groups
        self._open_socket = open_socket or (lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                                                  socket.NETLINK_ROUTE))
        self._sock: socket.socket | None = None
        self._state = LinkState()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def watching(self) -> bool:
        return self._sock is not None

    def start(self) -> bool:
        """Open and bind the socket and read it from the running loop; False if that failed."""
        try:
            sock = self._open_socket()
        except (OSError, AttributeError) as exc:  # AttributeError: no AF_NETLINK on this platform
            log.warning("cannot watch the link (netlink socket: %s); reconnects follow the backoff alone", exc)
            return False
        try:
            sock.setblocking(False)
            sock.bind((0, self._groups))
        except OSError as exc:
            sock.close()
            log.warning("cannot watch the link (netlink bind: %s); reconnects follow the backoff alone", exc)
            return False
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        log.info("watching the link over netlink (carrier, addresses, default routes): a link back up "
                 "ends the reconnect backoff")
        return True

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                # ENOBUFS: the kernel dropped events while we were slow. Something changed: say so.
                log.debug("netlink: %s", exc)
                self._on_up("link events lost (netlink overrun)")
                continue
            for what in parse(data, self._state):
                log.debug("netlink: %s", what)
                self._on_up(what)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
