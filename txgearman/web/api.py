# -*- test-case-name: txgearman.test.test_web_api -*-
"""
The read-only JSON API: what the admin protocol shows, as JSON, for
dashboards and scripts.

    GET /api/status           every function: status and prioritystatus figures
    GET /api/workers          every connection, as admin "workers"
    GET /api/jobs/<handle>    one job, as GET_STATUS
    GET /api/server           version, uptime, store, settings in force

Function names, unique ids and handles are bytes on the wire; here they
are UTF-8 text, any byte that is not shown as C{\\xNN}.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from twisted.web.resource import Resource
from twisted.web.server import Request

from txgearman.web.access import refuse, requestRights
from txgearman.web.health import ServerHealth

if TYPE_CHECKING:
    from txgearman.server.service import GearmanServerService


__all__ = ["apiResource"]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


class _JSON(Resource):
    """
    A resource that answers GET with a JSON document.
    """

    isLeaf = True

    def __init__(self, service: GearmanServerService) -> None:
        super().__init__()
        self.service = service

    def document(self, request: Request) -> tuple[int, Any]:
        raise NotImplementedError()

    def render_GET(self, request: Request) -> bytes:
        code, document = self.document(request)
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(document, separators=(",", ":")).encode("utf-8") + b"\n"


class _Status(_JSON):
    def document(self, request: Request) -> tuple[int, Any]:
        core = self.service.core
        now = self.service.reactor.seconds()
        functions = []
        for row, queued, oldest in zip(
            core.functionStatus(),
            core.priorityStatus(),
            core.oldestQueued(),
            strict=True,
        ):
            functions.append(
                {
                    "name": _text(row.name),
                    "jobs": row.total,
                    "running": row.running,
                    "waiting": row.total - row.running,
                    "workers": row.workers,
                    "queued": {
                        "high": queued.high,
                        "normal": queued.normal,
                        "low": queued.low,
                    },
                    "oldestAge": (
                        None if oldest is None else round(max(now - oldest, 0.0), 3)
                    ),
                }
            )
        return 200, {"functions": functions}


class _Workers(_JSON):
    def document(self, request: Request) -> tuple[int, Any]:
        workers = [
            {
                "id": info.connectionId,
                "host": info.host,
                "clientId": _text(info.clientId),
                "functions": [_text(name) for name in info.functions],
            }
            for info in self.service.core.listWorkers()
        ]
        return 200, {"workers": workers}


class _Job(_JSON):
    def document(self, request: Request) -> tuple[int, Any]:
        # /api/jobs/<handle>: the handle percent-decoded, as bytes.
        path = request.path.split(b"?", 1)[0]
        raw = path.removeprefix(b"/api/jobs/")
        if not raw or raw == path:
            return 404, {"error": "give a job handle: /api/jobs/<handle>"}
        handle = unquote_to_bytes(raw)
        policy = self.service.policy
        if policy is not None:
            # As GET_STATUS: C{status} on the job's function.
            rights = requestRights(request, policy)
            job = self.service.core.jobs.get(handle)
            if not rights.mayStatus(job.function.name if job is not None else None):
                refuse(request, policy, rights, "status")
                return 403, {"error": "PERMISSION_DENIED status"}
        _, known, running, numerator, denominator = self.service.core.getStatus(handle)
        if not known:
            return 404, {
                "handle": _text(handle),
                "known": False,
                "error": "no such job",
            }
        return 200, {
            "handle": _text(handle),
            "known": True,
            "running": running,
            "numerator": numerator,
            "denominator": denominator,
        }


class _Server(_JSON):
    def document(self, request: Request) -> tuple[int, Any]:
        service = self.service
        started = service.startedAt
        uptime = service.reactor.seconds() - started if started is not None else 0.0
        checks = ServerHealth(service).ready()
        return 200, {
            "version": dict(service.settings())["version"],
            "uptime": round(uptime, 3),
            "ready": all(check.ok for check in checks),
            "checks": [
                {"name": check.name, "ok": check.ok, "detail": check.detail}
                for check in checks
            ],
            "settings": dict(service.settings()),
            "maxqueue": {
                _text(name): {"high": high, "normal": normal, "low": low}
                for name, high, normal, low in service.core.maxQueues()
            },
            "counters": _counters(service),
        }


def _counters(service: GearmanServerService) -> dict[str, Any]:
    """
    What C{/metrics} counts, since start, for those who read JSON.
    """
    counts = service.core.counts
    workers = service.core.workerCount()
    return {
        "submitted": {
            "foreground": counts.foreground,
            "background": counts.background,
            "epoch": counts.epoch,
        },
        "completed": counts.completed,
        "failed": counts.failed,
        "exceptions": counts.exceptions,
        "retried": counts.retried,
        "dropped": counts.dropped,
        "errors": {
            code.decode("ascii", "replace"): value
            for code, value in sorted(counts.errors.items())
        },
        "connections": {
            "workers": workers,
            "others": max(len(service.factory.connections) - workers, 0),
        },
    }


class _Jobs(Resource):
    """
    C{/api/jobs/}: every path below it names a job.
    """

    def __init__(self, service: GearmanServerService) -> None:
        super().__init__()
        self.job = _Job(service)

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self.job


def apiResource(service: GearmanServerService) -> Resource:
    """
    C{/api}, for C{service}.
    """
    api = Resource()
    api.putChild(b"status", _Status(service))
    api.putChild(b"workers", _Workers(service))
    api.putChild(b"server", _Server(service))
    api.putChild(b"jobs", _Jobs(service))
    return api
