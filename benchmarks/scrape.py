#!/usr/bin/env python3
"""
How long one /metrics scrape takes with many functions, and what it does
to the jobs flowing meanwhile.

For each count in --functions, starts a fresh C{twistd gearman --http},
makes that many functions (each with one background job queued, and a
worker registered for every tenth), then scrapes /metrics --scrapes times
one after the other while a client sends ECHO_REQ in a loop.  Prints a
table: the scrape's wall time (median and max), the server's CPU per
scrape, the body's size and samples, and the ECHO round trips during the
scrapes (p50, max): the scrape is written a slice of functions per
event-loop turn, so other connections keep being served.

    python benchmarks/scrape.py --functions 1000,10000 --scrapes 10

Only loopback addresses are used.  Nothing here is a test: it measures.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time

from load import (
    CAN_DO,
    ECHO_REQ,
    JOB_CREATED,
    SUBMIT_JOB_BG,
    connect,
    packet,
    readPacket,
)
from support import (
    LOOPBACK,
    SERVERS,
    Scraper,
    cpuSeconds,
    freePort,
    rssMiB,
    stopProcess,
)


def makeFunctions(port: int, count: int) -> socket.socket:
    """
    C{count} functions, each with one queued background job, and a worker
    connection (returned, to keep it open) for every tenth.
    """
    client = connect(LOOPBACK, port)
    batch = 1000
    for start in range(0, count, batch):
        names = [b"function-%06d" % n for n in range(start, min(start + batch, count))]
        client.sendall(
            b"".join(packet(SUBMIT_JOB_BG, name, b"", b"x") for name in names)
        )
        for _ in names:
            kind, _args = readPacket(client)
            if kind != JOB_CREATED:
                raise RuntimeError(f"submit answered {kind}")
    client.close()
    worker = connect(LOOPBACK, port)
    worker.sendall(
        b"".join(packet(CAN_DO, b"function-%06d" % n) for n in range(0, count, 10))
    )
    return worker


def echoLoop(port: int, stop: threading.Event, latencies: list[float]) -> None:
    connection = connect(LOOPBACK, port)
    while not stop.is_set():
        started = time.monotonic()
        connection.sendall(packet(ECHO_REQ, b"ping"))
        readPacket(connection)
        latencies.append(time.monotonic() - started)
        time.sleep(0.001)
    connection.close()


def measure(functions: int, scrapes: int) -> dict[str, float]:
    server = SERVERS["txgearman-http"]
    port, httpPort = freePort(), freePort()
    with tempfile.TemporaryDirectory() as tmp:
        proc = server.start(port, tmp, 0, httpPort)
        try:
            started = time.monotonic()
            worker = makeFunctions(port, functions)
            print(
                f"{functions:,} functions made in {time.monotonic() - started:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            scraper = Scraper(httpPort)
            body = scraper.scrapeOnce()  # warm up, and the size
            scraper.seconds.clear()
            stop = threading.Event()
            latencies: list[float] = []
            echo = threading.Thread(target=echoLoop, args=(port, stop, latencies))
            echo.start()
            time.sleep(0.2)
            before = cpuSeconds(proc.pid)
            for _ in range(scrapes):
                scraper.scrapeOnce()
            used = cpuSeconds(proc.pid) - before
            stop.set()
            echo.join()
            rss = rssMiB(proc.pid)
            worker.close()
        finally:
            stopProcess(proc, 10)
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    latencies.sort()
    return {
        "functions": functions,
        "scrape_p50_s": statistics.median(scraper.seconds),
        "scrape_max_s": max(scraper.seconds),
        "cpu_per_scrape_s": used / scrapes,
        "body_kib": len(body) / 1024,
        "samples": samples,
        "echo_p50_ms": latencies[len(latencies) // 2] * 1000,
        "echo_max_ms": latencies[-1] * 1000,
        "echoes": len(latencies),
        "rss_mib": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", default="1000,10000")
    parser.add_argument("--scrapes", type=int, default=10)
    args = parser.parse_args()
    rows = [measure(int(n), args.scrapes) for n in args.functions.split(",")]
    header = [
        "functions",
        "samples",
        "body KiB",
        "scrape p50 s",
        "scrape max s",
        "server CPU s/scrape",
        "ECHO p50 ms",
        "ECHO max ms",
        "RSS MiB",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(
            f"| {r['functions']:,.0f} | {r['samples']:,.0f} | {r['body_kib']:,.0f} "
            f"| {r['scrape_p50_s']:.3f} | {r['scrape_max_s']:.3f} "
            f"| {r['cpu_per_scrape_s']:.3f} | {r['echo_p50_ms']:.2f} "
            f"| {r['echo_max_ms']:.1f} | {r['rss_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
