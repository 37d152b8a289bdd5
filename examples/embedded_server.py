#!/usr/bin/env python3
"""
Embed a Gearman job server in a Twisted application, with a worker and a
client in the same process: the server is a service like any other.

    python examples/embedded_server.py            # a free port, in memory
    python examples/embedded_server.py --redis 127.0.0.1:6379

The same services can be added to a twistd application (a .tac file) with
setServiceParent.
"""

from __future__ import annotations

import argparse

from twisted.application.service import MultiService
from twisted.internet import task
from twisted.internet.defer import Deferred

from txgearman.client import GearmanClient, GearmanWorker, WorkerJob
from txgearman.server.service import GearmanServerService


async def main(reactor: object, args: argparse.Namespace) -> None:
    store = None
    if args.redis:
        from txgearman.store.redis import RedisQueueStore

        store = RedisQueueStore(args.redis, reactor, prefix="embedded-example")
    server = GearmanServerService(
        "tcp:0:interface=127.0.0.1", reactor=reactor, store=store
    )
    application = MultiService()
    server.setServiceParent(application)
    application.privilegedStartService()
    application.startService()
    await server.ready
    assert server.port is not None
    address = f"tcp:127.0.0.1:{server.port.getHost().port}"  # type: ignore[attr-defined]
    print(f"job server on {address}")

    def shout(job: WorkerJob) -> bytes:
        return job.data.upper() + b"!"

    worker = GearmanWorker([address], reactor=reactor)
    worker.register("shout", shout)
    worker.setServiceParent(application)
    client = GearmanClient([address], reactor=reactor)
    client.setServiceParent(application)

    print((await client.submit("shout", b"hello")).decode())
    await application.stopService()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", help="keep background jobs in this Redis")
    options = parser.parse_args()
    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor, options)))
