"""Test ports: outside the kernel's range for outgoing connections, one holder at a time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests import ports


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ((32768, 60999), [range(20000, 32768), range(61000, 65001)]),
        ((1024, 65535), None),  # nothing left: a clear error
        ((20000, 60000), [range(60001, 65001)]),
        ((40000, 64950), [range(20000, 40000)]),  # 64951-65000 is too small to bother
    ],
)
def test_ports_come_from_outside_the_local_port_range(
    local: tuple[int, int], expected: list[range] | None
) -> None:
    if expected is None:
        with pytest.raises(RuntimeError, match="outside the local port range"):
            ports.windows(local)
    else:
        assert ports.windows(local) == expected


def test_the_machine_s_range_is_read_and_runs_are_handed_out_outside_it() -> None:
    low, high = ports.local_port_range()
    assert ports.local_port_range("32768\t60999\n") == (32768, 60999)
    for count in (1, 6):
        base = ports.free_port_run(count)
        assert all(not low <= port <= high for port in range(base, base + count))


def test_a_port_another_live_test_process_holds_is_never_handed_out_again() -> None:
    port = ports.free_port_run(1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from tests import ports
                assert not ports._reserve({port})  # this process holds it
                other = ports.free_port_run(1)
                print(other, flush=True)
                sys.stdin.read()  # hold it until told to go
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    other = int(holder.stdout.readline())
    assert other != port
    assert not ports._reserve(other)  # held by a live process
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    assert ports._reserve(other)  # its holder has gone: free to claim again
