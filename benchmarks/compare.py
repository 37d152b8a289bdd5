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
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

MODES = {
    "bg": ["-n", "100000", "-c", "2", "-w", "4", "-b", "100", "-s", "100"],
    "bg-split": ["-n", "100000", "-c", "2", "-w", "4", "-b", "100", "-s", "100"],
    "fg": ["-n", "50000", "-c", "8", "-w", "4"],
}


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def waitForPort(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"version\n")
                if s.recv(100).startswith(b"OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not answer in time")


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _statusMiB(pid: int, field: str) -> float:
    """
    A size in kB from C{/proc/<pid>/status}, in MiB.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def rssMiB(pid: int) -> float:
    """
    The current resident set size of process C{pid}, in MiB.
    """
    return _statusMiB(pid, "VmRSS:")


def peakRssMiB(pid: int) -> float:
    """
    The largest resident set size process C{pid} has had, in MiB.
    """
    return _statusMiB(pid, "VmHWM:")


@dataclass
class Server:
    name: str
    command: list[str]
    redis: bool = False

    def start(self, port: int, tmp: str, redisPort: int = 0) -> subprocess.Popen[bytes]:
        argv = [a.format(port=port, tmp=tmp, redis=redisPort) for a in self.command]
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        waitForPort(port, proc)
        return proc


def stopProcess(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """
    Stop a server as its operator would (SIGTERM), killing it only if it
    has not exited within C{timeout} seconds.
    """
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def twistd() -> str:
    local = os.path.join(os.path.dirname(sys.executable), "twistd")
    return local if os.path.exists(local) else (shutil.which("twistd") or "twistd")


def startRedis(tmp: str) -> tuple[subprocess.Popen[bytes], int]:
    """
    A fresh redis-server for one run: no snapshots, no AOF, as gearmand's
    figures in ../shared/bench were taken.
    """
    port = freePort()
    proc = subprocess.Popen(
        [
            os.environ.get("REDIS_SERVER", "redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(100).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _txgearman(*extra: str) -> list[str]:
    return [
        twistd(),
        "-n",
        "--pidfile=",
        "--logfile={tmp}/t.log",
        "gearman",
        "--port",
        "tcp:{port}:interface=127.0.0.1",
        *extra,
    ]


def _gearmand(threads: str, *extra: str) -> list[str]:
    return [
        "gearmand",
        "-p",
        "{port}",
        "-L",
        "127.0.0.1",
        "-t",
        threads,
        "-l",
        "{tmp}/g.log",
        *extra,
    ]


_GEARMAND_REDIS = (
    "-q",
    "redis",
    "--redis-server",
    "127.0.0.1",
    "--redis-port",
    "{redis}",
)

SERVERS = {
    "gearmand-t1": Server("gearmand -t 1", _gearmand("1")),
    "gearmand-t4": Server("gearmand -t 4", _gearmand("4")),
    # gearmand finds jobs (by unique id, by handle) in hash tables with a
    # fixed number of buckets, 991 by default: with many jobs queued every
    # lookup walks long chains.  This one is sized for a million jobs.
    "gearmand-t1-hash": Server(
        "gearmand -t 1 --hashtable-buckets 1000003",
        _gearmand("1", "--hashtable-buckets", "1000003"),
    ),
    "txgearman": Server("txgearman", _txgearman()),
    "gearmand-t1-redis": Server(
        "gearmand -t 1 -q redis", _gearmand("1", *_GEARMAND_REDIS), True
    ),
    "gearmand-t4-redis": Server(
        "gearmand -t 4 -q redis", _gearmand("4", *_GEARMAND_REDIS), True
    ),
    "txgearman-redis": Server(
        "txgearman --redis", _txgearman("--redis", "127.0.0.1:{redis}"), True
    ),
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


LOAD_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.py")


def addDriverArguments(parser: argparse.ArgumentParser, auto: str) -> None:
    """
    The C{--gearbench} and C{--driver} options L{findDriver} reads;
    C{auto} says what C{--driver auto} does in this script.
    """
    parser.add_argument(
        "--gearbench", help="path of gearbench (default: $GEARBENCH, PATH)"
    )
    parser.add_argument(
        "--driver",
        choices=["auto", "gearbench", "load"],
        default="auto",
        help=f"auto: {auto}",
    )


def findDriver(choice: str, explicit: str | None) -> tuple[list[str], str]:
    """
    The load generator's command and a description of it for the table.

    @param choice: C{auto} (gearbench when found, else load.py),
        C{gearbench} or C{load}.
    @param explicit: the --gearbench argument, if given.
    @raise SystemExit: if gearbench was asked for and is not found.
    """
    if choice != "load":
        candidates = [explicit] if explicit else []
        if not explicit and os.environ.get("GEARBENCH"):
            candidates.append(os.environ["GEARBENCH"])
        candidates.append("gearbench")
        for candidate in candidates:
            found = shutil.which(candidate) or (
                candidate if os.path.isfile(candidate) else None
            )
            if found:
                return [found], f"gearbench ({found})"
            if candidate is explicit or choice == "gearbench":
                raise SystemExit(f"gearbench not found: {candidate}")
    return (
        [sys.executable, LOAD_PY],
        "benchmarks/load.py (pure Python; its figures compare servers with each other only)",
    )


def runOnce(
    server: Server, mode: str, driver: list[str], extra: list[str]
) -> dict[str, object]:
    port = freePort()
    with tempfile.TemporaryDirectory() as tmp:
        redis, redisPort = startRedis(tmp) if server.redis else (None, 0)
        proc = server.start(port, tmp, redisPort)
        try:
            before = cpuSeconds(proc.pid)
            redisBefore = cpuSeconds(redis.pid) if redis else 0.0
            out = subprocess.run(
                [*driver, mode, "--port", str(port), *MODES[mode], *extra],
                capture_output=True,
                text=True,
                timeout=300,
            )
            used = cpuSeconds(proc.pid) - before
            redisUsed = cpuSeconds(redis.pid) - redisBefore if redis else 0.0
            rss = peakRssMiB(proc.pid)
        finally:
            for each in (proc, redis):
                if each is not None:
                    stopProcess(each, 10)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    result: dict[str, object] = json.loads(line)
    result["server_cpu_s"] = used
    result["redis_cpu_s"] = redisUsed
    result["server_rss_mib"] = rss
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
        "--json", action="store_true", help="print every run as JSON too"
    )
    args = parser.parse_args()
    driver, driverName = findDriver(args.driver, args.gearbench)
    print(f"driver: {driverName}", file=sys.stderr, flush=True)
    # load.py is slower than gearbench; give it time to finish on a slow machine.
    extra = ["--timeout", "240"] if driver[-1] == LOAD_PY else []
    if args.workers is not None:
        # Both drivers take the last -w given.
        extra += ["-w", str(args.workers)]
    modes = args.modes.split(",")
    servers = [SERVERS[name] for name in args.servers.split(",")]
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
