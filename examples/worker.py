#!/usr/bin/env python3
"""
Run a Gearman worker with two functions: "reverse" (a plain function) and
"slow-upper" (an async one that reports progress and streams data).

    python examples/worker.py tcp:127.0.0.1:4730
    python examples/worker.py 127.0.0.1:4730 --jobs 3      # exit after 3 jobs

Stop it with Ctrl-C: it finishes the jobs it runs, then exits.
"""

from __future__ import annotations

import argparse

from twisted.internet import task
from twisted.internet.defer import Deferred

from txgearman.client import GearmanWorker, JobFailed, WorkerJob


def reverse(job: WorkerJob) -> bytes:
    if not job.data:
        raise JobFailed(job.handle, "nothing to reverse")
    return job.data[::-1]


async def main(reactor: object, args: argparse.Namespace) -> None:
    done: Deferred[None] = Deferred()
    count = 0

    def counted(function):  # type: ignore[no-untyped-def]
        async def run(job: WorkerJob) -> object:
            nonlocal count
            result = function(job)
            if isinstance(result, Deferred) or hasattr(result, "__await__"):
                result = await result
            count += 1
            if args.jobs and count >= args.jobs and not done.called:
                reactor.callLater(0, done.callback, None)  # type: ignore[attr-defined]
            return result

        return run

    async def slowUpper(job: WorkerJob) -> bytes:
        words = job.data.split()
        for i, word in enumerate(words):
            await task.deferLater(reactor, 0.01, lambda: None)  # type: ignore[arg-type]
            job.sendData(word.upper() + b" ")
            job.sendStatus(i + 1, len(words))
        return b"done"

    worker = GearmanWorker([args.server], reactor=reactor, concurrency=args.concurrency)
    worker.register("reverse", counted(reverse))
    worker.register("slow-upper", counted(slowUpper))
    worker.startService()
    print("worker ready", flush=True)
    if args.jobs:
        await done
        await worker.stopService()
    else:
        # Run until the reactor stops (Ctrl-C); stop gracefully then.
        reactor.addSystemEventTrigger("before", "shutdown", worker.stopService)  # type: ignore[attr-defined]
        await Deferred()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server", help="endpoint description or host:port")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=0, help="exit after this many jobs")
    options = parser.parse_args()
    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor, options)))
