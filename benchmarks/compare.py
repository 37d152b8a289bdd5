#!/usr/bin/env python3
"""
Compare txgearman with gearmand under the same load, on this machine.

Starts a fresh server for every run, alternating between the servers so
that a noisy machine hurts them alike, drives it with a load generator, and
prints a table: jobs/s (median of the runs), latency percentiles for
foreground jobs, server CPU time per job and the server's peak resident
memory.

The load generator is gearbench (built on libgearman) when it is found:
--gearbench PATH, else $GEARBENCH, else C{gearbench} on the PATH.  Without
it, the pure-Python benchmarks/load.py drives the same modes; its figures
compare the servers with each other only.  The table says which was used.

    python benchmarks/compare.py --gearbench /path/to/gearbench --runs 3
    python benchmarks/compare.py --driver load --runs 3

Only loopback addresses are used.  Nothing here is a test: it measures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from support import (
    LOAD_PY,
    SERVERS,
    Scraper,
    Server,
    addDriverArguments,
    cpuSeconds,
    findDriver,
    freePort,
    peakRssMiB,
    startRedis,
    stopProcess,
)

MODES = {
    "bg": ["-n", "100000", "-c", "2", "-w", "4", "-b", "100", "-s", "100"],
    "bg-split": ["-n", "100000", "-c", "2", "-w", "4", "-b", "100", "-s", "100"],
    "fg": ["-n", "50000", "-c", "8", "-w", "4"],
}


@dataclass
class Result:
    jobs: list[float] = field(default_factory=list)
    submit: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpuPerJob: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    redisCpuPerJob: list[float] = field(default_factory=list)
    driverBusy: list[float] = field(default_factory=list)
    failures: int = 0


def number(result: dict[str, object], key: str) -> float:
    """
    A number from a driver's JSON output; 0 if it is missing.
    """
    value = result.get(key)
    return float(value) if isinstance(value, (int, float)) else 0.0


def runOnce(
    server: Server, mode: str, driver: list[str], extra: list[str]
) -> dict[str, object]:
    port = freePort()
    httpPort = freePort() if server.http else 0
    scraper = None
    with tempfile.TemporaryDirectory() as tmp:
        redis, redisPort = startRedis(tmp) if server.redis else (None, 0)
        proc = server.start(port, tmp, redisPort, httpPort)
        try:
            if server.http:
                scraper = Scraper(httpPort).start()
            before = cpuSeconds(proc.pid)
            redisBefore = cpuSeconds(redis.pid) if redis else 0.0
            out = subprocess.run(
                [
                    *driver,
                    mode,
                    "--port",
                    str(port),
                    *MODES[mode],
                    *extra,
                    *(
                        ["-n", str(server.jobs)]
                        if server.jobs and "-n" not in extra
                        else []
                    ),
                    *server.driverArguments(tmp),
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            used = cpuSeconds(proc.pid) - before
            redisUsed = cpuSeconds(redis.pid) - redisBefore if redis else 0.0
            rss = peakRssMiB(proc.pid)
        finally:
            if scraper is not None:
                scraper.stop()
            for each in (proc, redis):
                if each is not None:
                    stopProcess(each, 10)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    result: dict[str, object] = json.loads(line)
    result["server_cpu_s"] = used
    result["redis_cpu_s"] = redisUsed
    result["server_rss_mib"] = rss
    if scraper is not None:
        result["scrapes"] = scraper.scrapes
        result["scrape_failures"] = scraper.failures
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    addDriverArguments(parser, "gearbench when found, else benchmarks/load.py")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="bg,bg-split,fg")
    parser.add_argument("--servers", default="gearmand-t1,txgearman")
    parser.add_argument(
        "--workers",
        type=int,
        help="workers per run instead of each mode's own (4), e.g. 64 to see "
        "what idle workers cost",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help="jobs per run instead of each mode's own (100000 bg, 50000 fg), "
        "e.g. 20000 for gearmand -q libsqlite3, which runs some 600 a second",
    )
    parser.add_argument(
        "--json", action="store_true", help="print every run as JSON too"
    )
    args = parser.parse_args()
    driver, driverName = findDriver(args.driver, args.gearbench)
    print(f"driver: {driverName}", file=sys.stderr, flush=True)
    # load.py is slower than gearbench; give it time to finish on a slow machine.
    extra = ["--timeout", "240"] if driver[-1] == LOAD_PY else []
    if args.workers is not None:
        # Both drivers take the last -w (and -n) given.
        extra += ["-w", str(args.workers)]
    if args.jobs is not None:
        extra += ["-n", str(args.jobs)]
    modes = args.modes.split(",")
    servers = [SERVERS[name] for name in args.servers.split(",")]
    if any(server.tls for server in servers) and driver[-1] != LOAD_PY:
        parser.error("the TLS servers need --driver load: gearbench speaks plain TCP")
    results: dict[tuple[str, str], Result] = {}
    for run in range(args.runs):
        for mode in modes:
            for server in servers:
                print(
                    f"run {run + 1}/{args.runs}: {server.name} {mode}",
                    file=sys.stderr,
                    flush=True,
                )
                r = runOnce(server, mode, driver, extra)
                if args.json:
                    print(json.dumps(r), file=sys.stderr)
                res = results.setdefault((server.name, mode), Result())
                if not r.get("ok"):
                    print(f"run failed: {json.dumps(r)}", file=sys.stderr)
                    res.failures += 1
                    continue
                # bg-split reports submit and drain rates; its "jobs/s" is the drain.
                jobs = float(r.get("jobs_s", r.get("drain_jobs_s", 0.0)))  # type: ignore[arg-type]
                res.jobs.append(jobs)
                if "submit_jobs_s" in r:
                    res.submit.append(float(r["submit_jobs_s"]))  # type: ignore[arg-type]
                lat = r.get("lat_ms")
                if isinstance(lat, dict):
                    res.p50.append(lat["p50"])
                    res.p99.append(lat["p99"])
                n = float(r["n"])  # type: ignore[arg-type]
                res.cpuPerJob.append(float(r["server_cpu_s"]) / n * 1e6)  # type: ignore[arg-type]
                res.rss.append(float(r["server_rss_mib"]))  # type: ignore[arg-type]
                # The driver's CPU time over the timed wall time: near 100%
                # (per thread it runs), the driver rather than the server
                # sets the pace.
                timed = number(r, "total_s") or number(r, "submit_s") + number(
                    r, "drain_s"
                )
                res.driverBusy.append(number(r, "client_cpu_s") / timed)
                if server.redis:
                    res.redisCpuPerJob.append(float(r["redis_cpu_s"]) / n * 1e6)  # type: ignore[arg-type]

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f}" if values else "-"

    def medf(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "-"

    header = [
        "server",
        "mode",
        "jobs/s (bg-split: drain)",
        "submit jobs/s",
        "p50 ms",
        "p99 ms",
        "server CPU us/job",
        "Redis CPU us/job",
        "peak RSS MiB",
        "driver CPU",
        "ratio",
        "failed runs",
    ]
    print()
    print(f"Driver: {driverName}")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for mode in modes:
        base = results.get((servers[0].name, mode))
        for server in servers:
            res = results[(server.name, mode)]
            ratio = "-"
            if base and base.jobs and res.jobs:
                ratio = (
                    f"{statistics.median(res.jobs) / statistics.median(base.jobs):.2f}x"
                )
            row = [
                server.name,
                mode,
                med(res.jobs),
                med(res.submit),
                medf(res.p50),
                medf(res.p99),
                medf(res.cpuPerJob),
                medf(res.redisCpuPerJob),
                medf(res.rss),
                f"{statistics.median(res.driverBusy):.0%}" if res.driverBusy else "-",
                ratio,
                str(res.failures),
            ]
            print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
