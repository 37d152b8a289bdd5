#!/usr/bin/env python3
"""
Time the incremental decoder alone, in this process: ordinary small packets
(pipelined, in 64 KiB reads, and one read per packet) and one large body
in 64 KiB reads, with the most memory the process took for it (its peak
resident size, reset before; on Linux only).  The server's per-read path is this decoder plus
the handlers, so a change to it shows here first.

    python benchmarks/decoder.py --packets 100000 --runs 5

Nothing here is a test: it measures.  Figures are the best of the runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from txgearman.codec import Decoder, PacketType, encodeRequest

READ = 64 * 1024


def reads(stream: bytes, size: int = READ) -> list[bytes]:
    """C{stream} cut as Twisted would read it: C{size} bytes at a time."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def best(runs: int, work: Callable[[], object]) -> float:
    """The fastest of C{runs} timings of C{work}, in seconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def resident(field: str = "VmRSS") -> int | None:
    """This process's resident size (or C{VmHWM}, its peak), in bytes."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resetPeak() -> bool:
    """Make C{VmHWM} start again from the current resident size."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def decodeAll(chunks: list[bytes]) -> int:
    decoder = Decoder()
    count = 0
    for chunk in chunks:
        count += len(decoder.decode(chunk))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--large", type=int, default=60, help="large body, MiB")
    options = parser.parse_args()

    submit = encodeRequest(PacketType.SUBMIT_JOB_BG, b"resize", b"", b"x" * 100)
    grab = encodeRequest(PacketType.GRAB_JOB_UNIQ)
    stream = (submit + grab) * (options.packets // 2)
    pipelined = reads(stream)
    single = [submit, grab] * (options.packets // 2)
    for name, chunks in (
        ("pipelined, 64 KiB reads", pipelined),
        ("one read each", single),
    ):
        seconds = best(options.runs, partial(decodeAll, chunks))
        print(
            f"{options.packets} small packets, {name}: {seconds * 1000:.1f} ms "
            f"({seconds / options.packets * 1e9:.0f} ns a packet)"
        )

    size = options.large << 20
    large = reads(encodeRequest(PacketType.SUBMIT_JOB_BG, b"big", b"", b"x" * size))
    before = resident()
    measured = resetPeak() and before is not None
    seconds = best(options.runs, lambda: decodeAll(large))
    peak = (resident("VmHWM") or 0) - (before or 0)
    after = (resident() or 0) - (before or 0)
    print(
        f"one {options.large} MiB body in 64 KiB reads: {seconds * 1000:.1f} ms"
        + (
            f", peak {peak / size:.2f} x the body, {after / size:.2f} x kept after"
            if measured
            else ""
        )
    )


if __name__ == "__main__":
    main()
