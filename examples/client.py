#!/usr/bin/env python3
"""
Submit one job to a Gearman job server and print its result.

    python examples/client.py tcp:127.0.0.1:4730 reverse hello
    python examples/client.py 127.0.0.1:4730 reverse hello --background
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import task
from twisted.internet.defer import Deferred

from txgearman.client import GearmanClient, GearmanError


async def main(reactor: object, args: argparse.Namespace) -> None:
    client = GearmanClient([args.server], reactor=reactor, timeout=args.timeout)
    client.startService()
    try:
        if args.background:
            handle = await client.submitBackground(args.function, args.data.encode())
            print(f"queued as {handle.decode()}")
            status = await client.getStatus(handle)
            print(f"known={status.known} running={status.running}")
        else:
            result = await client.submit(
                args.function,
                args.data.encode(),
                onStatus=lambda done, total: print(
                    f"progress {done}/{total}", file=sys.stderr
                ),
            )
            print(result.decode("utf-8", "replace"))
    except GearmanError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        await client.stopService()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server", help="endpoint description or host:port")
    parser.add_argument("function")
    parser.add_argument("data")
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--timeout", type=float, default=10.0)
    options = parser.parse_args()
    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor, options)))
