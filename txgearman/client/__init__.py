"""
The Gearman library for applications: submit jobs, work on them, and
administer a server.

Everything an application needs is importable from here; the modules below
hold the protocols and the details.  This package uses only the codec:
importing it loads neither the job server nor Redis.
"""

from txgearman.client.admin import GearmanAdminClient
from txgearman.client.client import GearmanClient, JobStatus
from txgearman.client.endpoints import tlsEndpoint
from txgearman.client.errors import (
    AdminConnectFailed,
    AdminConnectionLost,
    AdminError,
    AdminTimeout,
    GearmanConnectionLost,
    GearmanError,
    JobException,
    JobFailed,
    NoServerAvailable,
    ServerError,
)
from txgearman.client.worker import GearmanWorker, WorkerJob
from txgearman.codec import Priority

__all__ = [
    "GearmanClient",
    "GearmanWorker",
    "WorkerJob",
    "GearmanAdminClient",
    "JobStatus",
    "Priority",
    "tlsEndpoint",
    "GearmanError",
    "ServerError",
    "JobFailed",
    "JobException",
    "GearmanConnectionLost",
    "NoServerAvailable",
    "AdminError",
    "AdminConnectionLost",
    "AdminConnectFailed",
    "AdminTimeout",
]
