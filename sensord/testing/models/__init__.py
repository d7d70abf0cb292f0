"""Device models of the built-in chips: fake chips on a `FakeI2CBus` that behave as their
datasheets say (id registers, calibration, measurement registers, status bits, CRC).
One module per chip; each model class has `DEFAULT_ADDRESS` and settable physical values."""

from __future__ import annotations

from collections.abc import Callable


def invert(f: Callable[[int], float], target: float, high: int, *, rising: bool) -> int:
    """The raw value in 0..high whose `f` is closest to `target`, for `f` monotonic (rising or
    falling): how a model finds the ADC reading that a datasheet's compensation formula turns
    into the physical value a test asked for."""
    lo, hi = 0, high
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda raw: abs(f(raw) - target))
