"""What every batch encoding shares: the batch types, the `Encoding` protocol and the limits.

Pure, no I/O. `sensord.encoding` re-exports the public names; import them from there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import DecodeError, EncodeError
from ..sensor import Channel, Sample, Value

#: Largest payload `decode()` looks at. A 1,000,000-reading JSON batch is about 12 MB.
MAX_PAYLOAD_BYTES = 32 * 1024 * 1024
#: Most readings one batch may expand to. The compact format's run-length tokens can describe
#: many readings in few bytes; this bounds the memory a hostile payload can make us allocate.
MAX_READINGS = 1_000_000

ChannelKey = tuple[str, str]


@dataclass(frozen=True)
class Batch:
    """A decoded batch: samples sorted by time (stable: each channel keeps its own order).

    `unsynced`: the sender's clock was not synchronised when it sealed the batch, so the times are
    what that clock said, possibly far off (docs/clock.md)."""

    node: str
    seq: int
    samples: list[Sample]
    unsynced: bool = False


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What the encoder knows about a (sensor, quantity) beyond its samples.

    `resolution` is the step between two distinct values (`Channel.resolution`), None for exact
    floats. `unit` is the declared unit; each sample's own `unit` is what gets encoded.
    """

    unit: str = ""
    resolution: float | None = None


@dataclass(frozen=True)
class BatchData:
    """A batch to encode: node, sequence number, samples in order, and per-channel info.

    `unsynced`: the times come from a clock not synchronised yet; an encoding must say so in the
    payload (a consumer must not take them for true times) or refuse the batch (EncodeError)."""

    node: str
    seq: int
    samples: Sequence[Sample]
    channels: Mapping[ChannelKey, ChannelInfo] = field(default_factory=dict)
    unsynced: bool = False


@runtime_checkable
class Encoding(Protocol):
    """A batch encoding. `decode()` raises only `DecodeError`; `encode()` raises `EncodeError`.

    `matches(payload)` recognises this encoding's payloads from their first bytes, cheaply and
    without claiming another encoding's, so that `sensord.encoding.decode` can auto-detect.
    """

    name: str
    content_type: str

    def matches(self, payload: bytes) -> bool: ...

    def encode(self, batch: BatchData) -> bytes: ...

    def decode(self, payload: bytes) -> Batch: ...


def channel_info(sensors: Iterable[tuple[str, Iterable[Channel]]]) -> dict[ChannelKey, ChannelInfo]:
    """The `BatchData.channels` map from (sensor name, its declared channels) pairs."""
    return {(name, c.quantity): ChannelInfo(c.unit, c.resolution) for name, channels in sensors for c in channels}


@dataclass(slots=True)
class Series:
    """One column of a batch: the samples of one (sensor, quantity, unit), in batch order."""

    sensor: str
    quantity: str
    unit: str
    resolution: float | None
    ms: list[int]
    values: list[Value]


def to_ms(ts: float, where: str) -> int:
    """A sample time in whole Unix milliseconds (the wire precision of every encoding)."""
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise EncodeError(f"{where}: time {ts!r} is not a finite number of seconds")
    return round(ts * 1000)


def check_value(value: object, where: str) -> None:
    if not isinstance(value, int | float):  # bool is an int
        raise EncodeError(f"{where}: value {value!r} is {type(value).__name__}, expected a number or boolean")


def group_series(batch: BatchData) -> list[Series]:
    """The batch's samples as columns, in order of first appearance.

    A column is keyed by (sensor, quantity, unit): a channel whose unit changed within the batch
    becomes two columns, so no unit is lost.
    """
    columns: dict[tuple[str, str, str], Series] = {}
    for s in batch.samples:
        key = (s.sensor, s.quantity, s.unit)
        column = columns.get(key)
        if column is None:
            for text in key:
                if not isinstance(text, str):
                    raise EncodeError(f"sample {s!r}: sensor, quantity and unit must be strings")
            info = batch.channels.get((s.sensor, s.quantity))
            column = columns[key] = Series(s.sensor, s.quantity, s.unit, info.resolution if info else None, [], [])
        value, ts = s.value, s.ts
        if not isinstance(value, int | float) or type(ts) is not float or not math.isfinite(ts):
            where = f"{s.sensor}/{s.quantity}"  # only then: this loop runs for every reading
            check_value(value, where)
            column.ms.append(to_ms(ts, where))
        else:
            column.ms.append(round(ts * 1000))
        column.values.append(value)
    return list(columns.values())


def check_header(node: object, seq: object) -> None:
    if not isinstance(node, str):
        raise EncodeError(f"node id {node!r} is {type(node).__name__}, expected a string")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise EncodeError(f"seq {seq!r} is {type(seq).__name__}, expected an integer")


def ordered(series: Iterable[tuple[str, str, str, Sequence[int], Sequence[Value]]]) -> list[Sample]:
    """Decoded columns back to samples: column by column, then a stable sort by time.

    Every decoder ends here, so all encodings return the same list for the same batch.
    """
    samples = [Sample(sensor, quantity, value, unit, ms / 1000)
               for sensor, quantity, unit, times, values in series
               for ms, value in zip(times, values, strict=True)]
    samples.sort(key=lambda s: s.ts)
    return samples


def budget(count: int, used: int, where: str) -> int:
    """`used + count` readings, or DecodeError if that passes MAX_READINGS."""
    total = used + count
    if total > MAX_READINGS:
        raise DecodeError(f"{where}: batch expands to more than {MAX_READINGS} readings")
    return total
