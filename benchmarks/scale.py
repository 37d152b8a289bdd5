#!/usr/bin/env python3
"""
Does background throughput hold up with a deep queue and with many
functions?  And how much memory does a deep queue take?

For every scenario (number of jobs already queued x number of functions)
and every server, alternating, this starts a fresh server, pre-fills it
with C{Q} background jobs of a function no worker serves (a raw writer
pipelining SUBMIT_JOB_BG, untimed), reads the server's resident memory,
and then times C{load.py bg}: W workers registered for all of the timed
functions, C clients submitting N jobs spread round robin over F functions,
from the first submission to the N-th execution.  gearbench cannot spread
jobs over several functions, so every scenario uses benchmarks/load.py,
whose figures compare scenarios and servers with each other only; the
table shows how busy the driver was, since a driver near 100% of its CPU
sets the pace and hides a server's slowing down.  When gearbench is found
(--gearbench, $GEARBENCH, PATH), the one-function scenarios are also timed
with it, on the same server after load.py (so that load.py always meets a
server fresh but for the fill).

    python benchmarks/scale.py    # 10 and 1,000,000 queued x 1 and 1,000 functions
    python benchmarks/scale.py --queued 10,100000 --functions 1 --runs 3

Prints two markdown tables: throughput per scenario (with its ratio to the
same server's first scenario and to the first server in the same
scenario), and resident memory with the queue in place (the issue's
"1,000,000 queued 100-byte jobs: resident memory <= 2x gearmand's").
Only loopback addresses are used.  Nothing here is a test: it measures.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from load import JOB_CREATED, SUBMIT_JOB_BG, adminQueued, packet, splitPackets
from support import (
    LOAD_PY,
    LOOPBACK,
    SERVERS,
    Server,
    addDriverArguments,
    cpuSeconds,
    findDriver,
    freePort,
    rssMiB,
    stopProcess,
    waitUntil,
)

FILL_FUNCTION = b"scale-fill"

SCALE_SERVERS = {name: server for name, server in SERVERS.items() if not server.redis}
CHUNK = 10000


def prefill(port: int, count: int, size: int, timeout: float) -> float:
    """
    Queue C{count} background jobs of L{FILL_FUNCTION} as fast as the
    server takes them: one connection, submissions written in chunks of
    L{CHUNK} without waiting, answers counted by a reading thread (so that
    neither side's buffers fill up and stall the other).

    @return: the seconds it took until the last JOB_CREATED.
    @raise RuntimeError: if a submission is refused or the server is too
        slow.
    """
    payloadTail = b"x" * max(size - 10, 0)
    sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
    answers = {"created": 0, "other": 0}
    failure: list[BaseException] = []

    def onPacket(kind: int, body: bytes) -> None:
        answers["created" if kind == JOB_CREATED else "other"] += 1

    def read() -> None:
        pending = b""
        try:
            while answers["created"] + answers["other"] < count:
                data = sock.recv(1 << 20)
                if not data:
                    raise RuntimeError("the server closed the fill connection")
                pending = splitPackets(pending + data, onPacket)
        except BaseException as e:
            failure.append(e)

    reader = threading.Thread(target=read, daemon=True)
    started = time.monotonic()
    reader.start()
    with sock:
        for first in range(0, count, CHUNK):
            sock.sendall(
                b"".join(
                    packet(
                        SUBMIT_JOB_BG,
                        FILL_FUNCTION,
                        b"fill-%d" % i,
                        b"%010d" % i + payloadTail,
                    )
                    for i in range(first, min(first + CHUNK, count))
                )
            )
        reader.join(timeout)
    if failure:
        raise RuntimeError(f"fill failed: {failure[0]}")
    if reader.is_alive() or answers["other"]:
        raise RuntimeError(f"fill incomplete: {answers}")
    return time.monotonic() - started


def waitQueued(port: int, count: int, timeout: float) -> None:
    """
    Wait until the admin C{status} shows C{count} jobs of the fill function.
    """
    waitUntil(
        lambda: adminQueued(LOOPBACK, port, FILL_FUNCTION) >= count,
        timeout,
        f"the status to show {count} queued",
    )


@dataclass
class Outcome:
    """
    The timed runs of one driver against one server in one scenario.
    """

    jobs: list[float] = field(default_factory=list)
    submit: list[float] = field(default_factory=list)
    cpuPerJob: list[float] = field(default_factory=list)
    driverBusy: list[float] = field(default_factory=list)
    failures: int = 0


@dataclass
class Memory:
    """
    One server's resident memory, fresh and with the queue filled.
    """

    idleRss: list[float] = field(default_factory=list)
    queuedRss: list[float] = field(default_factory=list)
    fillSeconds: list[float] = field(default_factory=list)


def driverCommand(
    driver: str, program: list[str], port: int, functions: int, args: argparse.Namespace
) -> list[str]:
    """
    The command line of one timed C{bg} run; each driver uses its own
    function names, so that runs on the same server never meet.
    """
    names = ["-f", "scale-gearbench"]
    if driver == "load.py":
        names = ["-f", "scale-load", "--functions", str(functions)]
    return [
        *program,
        "bg",
        "--port",
        str(port),
        "-n",
        str(args.jobs),
        "-c",
        str(args.clients),
        "-w",
        str(args.workers),
        "-b",
        str(args.batch),
        "-s",
        str(args.size),
        *names,
        "--timeout",
        str(args.timeout),
    ]


def runOnce(
    server: Server,
    queued: int,
    functions: int,
    drivers: dict[str, list[str]],
    args: argparse.Namespace,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """
    One fresh server: fill it, read its memory, then time a C{bg} run with
    each driver in turn.

    @return: the memory figures, and each driver's measurements (C{{}} for
        a run that failed).
    """
    port = freePort()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        proc = server.start(port, tmp)
        try:
            idle = rssMiB(proc.pid)
            fill = prefill(port, queued, args.size, args.timeout) if queued else 0.0
            waitQueued(port, queued, 60)
            memory = {"idle_rss": idle, "queued_rss": rssMiB(proc.pid), "fill_s": fill}
            for driver, program in drivers.items():
                before = cpuSeconds(proc.pid)
                out = subprocess.run(
                    driverCommand(driver, program, port, functions, args),
                    capture_output=True,
                    text=True,
                    timeout=args.timeout + 120,
                )
                used = cpuSeconds(proc.pid) - before
                left = adminQueued(LOOPBACK, port, FILL_FUNCTION)
                lines = out.stdout.strip().splitlines()
                result: dict[str, Any] = (
                    json.loads(lines[-1])
                    if lines
                    else {"ok": False, "error": out.stderr[-500:]}
                )
                if args.json:
                    print(json.dumps(result), file=sys.stderr)
                if not result.get("ok") or left != queued:
                    print(
                        f"{driver} run failed ({left} of {queued} filler jobs left): "
                        f"{json.dumps(result)}",
                        file=sys.stderr,
                    )
                    results[driver] = {}
                    continue
                results[driver] = {
                    "jobs_s": float(result["jobs_s"]),
                    "submit_jobs_s": float(result["submit_jobs_s"]),
                    "cpu_us": used / args.jobs * 1e6,
                    "driver_busy": float(result["client_cpu_s"])
                    / float(result["total_s"]),
                }
        finally:
            stopProcess(proc, 60)
    return memory, results


def numbers(text: str) -> list[int]:
    return [int(value.replace("_", "")) for value in text.split(",") if value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--queued", type=numbers, default=[10, 1_000_000], help="jobs queued beforehand"
    )
    parser.add_argument(
        "--functions",
        type=numbers,
        default=[1, 1000],
        help="functions the timed jobs use",
    )
    parser.add_argument(
        "--servers",
        default="gearmand-t1,gearmand-t1-hash,txgearman",
        help=f"some of {','.join(SCALE_SERVERS)}; ratios are to the first",
    )
    addDriverArguments(parser, "load.py, plus gearbench for one function when found")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--jobs", "-n", type=int, default=100_000, help="timed jobs")
    parser.add_argument("--clients", "-c", type=int, default=2)
    parser.add_argument("--workers", "-w", type=int, default=4)
    parser.add_argument("--batch", "-b", type=int, default=100)
    parser.add_argument(
        "--size", "-s", type=int, default=100, help="payload bytes, all jobs"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--json", action="store_true", help="print every run as JSON too"
    )
    args = parser.parse_args()
    servers = [SCALE_SERVERS[name] for name in args.servers.split(",")]
    program, _ = findDriver(args.driver, args.gearbench)
    gearbench = program if program[-1] != LOAD_PY else None
    scenarios = [(q, f) for q in args.queued for f in args.functions]
    outcomes: dict[tuple[str, int, int, str], Outcome] = {}
    memories: dict[tuple[str, int], Memory] = {}
    for run in range(args.runs):
        for queued, functions in scenarios:
            drivers = {"load.py": [sys.executable, LOAD_PY]}
            if gearbench and functions == 1:
                drivers["gearbench"] = gearbench
            for server in servers:
                print(
                    f"run {run + 1}/{args.runs}: {server.name}, {queued:,} queued, "
                    f"{functions:,} functions, {' then '.join(drivers)}",
                    file=sys.stderr,
                    flush=True,
                )
                memory, results = runOnce(server, queued, functions, drivers, args)
                m = memories.setdefault((server.name, queued), Memory())
                m.idleRss.append(memory["idle_rss"])
                m.queuedRss.append(memory["queued_rss"])
                m.fillSeconds.append(memory["fill_s"])
                for driver, r in results.items():
                    o = outcomes.setdefault(
                        (server.name, queued, functions, driver), Outcome()
                    )
                    if not r:
                        o.failures += 1
                        continue
                    o.jobs.append(r["jobs_s"])
                    o.submit.append(r["submit_jobs_s"])
                    o.cpuPerJob.append(r["cpu_us"])
                    o.driverBusy.append(r["driver_busy"])

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def ratio(a: list[float], b: list[float]) -> str:
        return f"{med(a) / med(b):.2f}x" if a and b else "-"

    print()
    print(
        f"bg end to end: {args.jobs:,} timed jobs of {args.size} bytes, -c {args.clients} "
        f"-w {args.workers} -b {args.batch}; median of {args.runs} run(s). gearbench, when "
        "used, runs after load.py on the same server. Driver CPU: the driver's CPU time "
        "(set-up included) over the timed wall time; near 100%, the driver sets the pace."
    )
    print()
    print(
        "| server | queued | functions | driver | bg jobs/s | submit jobs/s | server CPU us/job "
        f"| driver CPU | vs own first row | vs {servers[0].name} | failed runs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for driver in ("gearbench", "load.py"):
        for server in servers:
            rows = [
                (q, f, outcomes[(server.name, q, f, driver)])
                for q, f in scenarios
                if (server.name, q, f, driver) in outcomes
            ]
            for queued, functions, o in rows:
                base = rows[0][2]
                first = outcomes.get(
                    (servers[0].name, queued, functions, driver), Outcome()
                )
                print(
                    f"| {server.name} | {queued:,} | {functions:,} | {driver} "
                    f"| {med(o.jobs):,.0f} | {med(o.submit):,.0f} | {med(o.cpuPerJob):.1f} "
                    f"| {med(o.driverBusy):.0%} | {ratio(o.jobs, base.jobs)} "
                    f"| {ratio(o.jobs, first.jobs)} | {o.failures} |"
                )
    print()
    print(
        f"Resident memory with the queue in place ({args.size}-byte jobs, "
        "before the timed runs; MiB)"
    )
    print()
    print(
        "| server | queued | RSS fresh | RSS with queue | KiB per queued job "
        f"| vs {servers[0].name} | fill jobs/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for queued in args.queued:
        for server in servers:
            m = memories[(server.name, queued)]
            firstMemory = memories[(servers[0].name, queued)]
            # Too few jobs to tell their cost from the noise in RSS.
            perJob, fillRate = "-", "-"
            if queued >= 10000:
                perJob = f"{(med(m.queuedRss) - med(m.idleRss)) * 1024 / queued:.2f}"
                fillRate = f"{queued / med(m.fillSeconds):,.0f}"
            print(
                f"| {server.name} | {queued:,} | {med(m.idleRss):.0f} | {med(m.queuedRss):.0f} "
                f"| {perJob} | {ratio(m.queuedRss, firstMemory.queuedRss)} | {fillRate} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
