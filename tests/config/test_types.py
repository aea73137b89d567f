"""Durations, sizes and localparts: what each accepts, and what each says when it does not."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from homeport.config.types import (
    check_duration,
    check_size,
    duration_ms,
    localpart_check,
    size_bytes,
)


def test_durations_and_sizes_in_synapses_units() -> None:
    durations = ("500ms", "0s", "30s", "5m", "2h", "7d", "1w")
    assert [duration_ms(t) for t in durations] == [
        500,
        0,
        30_000,
        300_000,
        7_200_000,
        86_400_000 * 7,
        604_800_000,
    ]
    assert [size_bytes(t) for t in ("512K", "100M", "1G")] == [524_288, 104_857_600, 1024**3]


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (
            duration_ms,
            "1.5s",
            "'1.5s' is not a duration: write a whole number and a unit, e.g. 500ms, 30s, "
            "5m, 2h, 7d or 1w",
        ),
        (check_duration, 30, "30 is not a duration: give it a unit, e.g. 30s, 5m or 7d"),
        (size_bytes, "0M", "'0M' is not a size: write a whole number and K, M or G, e.g. 100M"),
        (size_bytes, "10Mi", "'10Mi' is not a size: write a whole number and K, M or G"),
        (check_size, 100, "100 is not a size: give it a unit, e.g. 100M or 1G"),
    ],
)
def test_a_quantity_not_written_as_one_says_how_to_write_it(
    check: Callable[[Any], object], value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        check(value)


def test_a_localpart_check_names_what_the_file_calls_it() -> None:
    check = localpart_check("an alias", "it becomes #<alias>:<server name>")
    assert check("staff.room_1") == "staff.room_1"
    expected = (
        "'Staff' is not an alias: use up to 64 lower-case letters, digits and ._=/+- "
        "(it becomes #<alias>:<server name>)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        check("Staff")
    with pytest.raises(ValueError, match="is not an alias"):
        check("a" * 65)
