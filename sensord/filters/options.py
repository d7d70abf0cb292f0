"""The option tables of the built-in filters that take one (`clamp`, `moving_average`, `median`),
read by `filter_options`. Apart from `builtin`, whose factories import this module when a config
uses one of them: Python 3.11 compiles each dataclass's methods when the class is created (about
0.5 ms each), which a start-up whose config uses none of these filters need not pay."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..schema import show

__all__ = ["AverageOptions", "ClampOptions", "MedianOptions"]


@dataclass(frozen=True)
class ClampOptions:
    min: float | None = None
    max: float | None = None
    mode: Literal["clip", "drop"] = "clip"

    def __post_init__(self) -> None:
        for key in ("min", "max"):
            bound = getattr(self, key)
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"{key}: expected a number, found {show(bound)}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"max: expected a number >= min ({show(self.min)}), found {show(self.max)}")


def _check_send(send_every: int, send_first_at: int) -> None:
    if send_first_at > send_every:
        raise ValueError(f"send_first_at: expected an integer <= send_every ({send_every}), "
                         f"found {send_first_at}")


@dataclass(frozen=True)
class AverageOptions:
    window: int | None = field(default=None, metadata={"ge": 1})
    alpha: float | None = field(default=None, metadata={"gt": 0, "le": 1})
    send_every: int = field(default=1, metadata={"ge": 1})
    send_first_at: int = field(default=1, metadata={"ge": 1})

    def __post_init__(self) -> None:
        _check_send(self.send_every, self.send_first_at)


@dataclass(frozen=True)
class MedianOptions:
    window: int = field(metadata={"ge": 1})
    send_every: int = field(default=1, metadata={"ge": 1})
    send_first_at: int = field(default=1, metadata={"ge": 1})

    def __post_init__(self) -> None:
        _check_send(self.send_every, self.send_first_at)
