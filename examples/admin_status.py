#!/usr/bin/env python3
"""
Print a job server's functions and workers, as gearadmin --status and
--workers do, from parsed results.

    python examples/admin_status.py tcp:127.0.0.1:4730
"""

from __future__ import annotations

import argparse

from twisted.internet import task
from twisted.internet.defer import Deferred

from txgearman.client import GearmanAdminClient


async def main(reactor: object, args: argparse.Namespace) -> None:
    admin = GearmanAdminClient(args.server, reactor=reactor)  # type: ignore[arg-type]
    try:
        print(f"server version {await admin.version()}")
        for function in await admin.status():
            print(
                f"{function.function.decode()}: {function.queued} queued, "
                f"{function.running} running, {function.workers} workers"
            )
        for worker in await admin.workers():
            names = " ".join(f.decode() for f in worker.functions) or "-"
            print(f"worker fd {worker.fd} at {worker.address}: {names}")
    finally:
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server", help="endpoint description or host:port")
    options = parser.parse_args()
    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor, options)))
