"""How long to wait: the reconnect backoff and the connect timeout, apart from the MQTT library.

`sensord check` prints the reconnect policy (`reconnect.describe_policy`) from these without
importing paho, aiomqtt or asyncio; `link` and the publisher use them when they connect.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CONNECT_TIMEOUT_MAX_S", "CONNECT_TIMEOUT_MIN_S", "Backoff", "connect_timeout_s"]

CONNECT_TIMEOUT_MIN_S = 3.0
CONNECT_TIMEOUT_MAX_S = 30.0


def connect_timeout_s(keepalive_s: float) -> float:
    """How long a connect (TCP, TLS, CONNACK), a PUBACK or a PINGRESP may take: 1.5 x keepalive,
    the silence after which the broker gives up on a client (MQTT 3.1.1 §3.1.2.10, MQTT 5
    §3.1.2.10), within [3 s, 30 s]. At the default keepalive of 60 s that is 30 s: long enough for a
    slow cellular link's handshakes, short enough that a SYN lost into a dead link does not hold
    the next attempt back for the kernel's two minutes of SYN retries. At 3 s (keepalive <= 2 s)
    it still covers two SYN retransmissions (1 s, then 2 s)."""
    return max(CONNECT_TIMEOUT_MIN_S, min(CONNECT_TIMEOUT_MAX_S, 1.5 * keepalive_s))


class Backoff:
    """Capped exponential backoff with jitter, for reconnecting.

    The n-th delay (counting from 0) is drawn uniformly from [cap/2, cap] with
    cap = min(max_s, first_s * 2**n): about 1 s, 2 s, 4 s ... up to `max_s`. The jitter keeps a
    fleet of nodes that lost the broker at the same moment from reconnecting in lockstep.
    `rand` returns a float in [0, 1) (default `random.random`); inject a fixed one in tests."""

    def __init__(self, *, max_s: float, first_s: float = 1.0, rand: Callable[[], float] | None = None) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"expected 0 < first_s <= max_s, found first_s={first_s}, max_s={max_s}")
        self._max_s = max_s
        self._first_s = first_s
        if rand is None:
            import random  # here: `sensord check` makes a Backoff with its own `rand`, and needs no random

            rand = random.random
        self._rand = rand
        self._cap_s = first_s

    def next_delay(self) -> float:
        """The delay before the next attempt, in seconds; each call doubles the cap."""
        cap = self._cap_s
        self._cap_s = min(self._max_s, cap * 2)
        return cap / 2 + self._rand() * cap / 2

    def reset(self) -> None:
        """Start again from `first_s`, after a connection that worked."""
        self._cap_s = self._first_s
