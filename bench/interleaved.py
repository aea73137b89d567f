"""Rounds that take turns: the measured side and its baseline in the same run.

A baseline measured once, before or after, carries whatever else the machine
did at that time, and a database of another size. Taking turns spreads both
sides over the same minutes. Within each pair of rounds the side that goes
first alternates (A B, B A, A B, B A, ...), so that neither side is always
the one on the smaller database or right behind the other's leftovers; with
an even number of pairs, a steady drift falls on both sides alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def turns(pairs: int, measured: T, baseline: T) -> list[tuple[int, T]]:
    """(pair number from 1, side) in the order to run them."""
    order: list[tuple[int, T]] = []
    for pair in range(pairs):
        first, second = (measured, baseline) if pair % 2 == 0 else (baseline, measured)
        order += [(pair + 1, first), (pair + 1, second)]
    return order


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def spread(values: Sequence[float], digits: int = 1) -> str:
    """`median M (min A, max B)`, or the one value."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return (
        f"median {statistics.median(values):.{digits}f} "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f})"
    )
