"""
Tests for L{txgearman.store.sqlite.SQLiteQueueStore} on real files, with
the real reactor and real threads.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.trial import unittest

from tests.fixtures import missingPeer
from txgearman.store.interfaces import IQueueStore, StoredJob, StoreError
from txgearman.store.sqlite import SQLiteQueueStore
from txgearman.test.test_store import QueueStoreTestsMixin


def makeStore(path: str, durability: str = "full") -> SQLiteQueueStore:
    return SQLiteQueueStore(path, reactor, durability=durability)


class SQLiteQueueStoreContractTests(QueueStoreTestsMixin, unittest.TestCase):
    """
    L{SQLiteQueueStore} meets the store contract, on a real file.
    """

    durability = "full"

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "queue.db")

    def createStore(self) -> IQueueStore:
        return makeStore(self.path, self.durability)

    def reopenStore(self, store: IQueueStore) -> IQueueStore:
        return makeStore(self.path, self.durability)


class SQLiteNormalDurabilityContractTests(SQLiteQueueStoreContractTests):
    """
    The contract holds with C{synchronous=NORMAL} too.
    """

    durability = "normal"


def mountTmpfs(case: unittest.TestCase, size: str = "1m") -> str:
    """
    A fresh tmpfs of C{size}, unmounted when the test ends; skip the test
    where it cannot be mounted (not root, or no mount here).
    """
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        missingPeer("mounting a tmpfs needs root and mount")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory],
        capture_output=True,
    )
    if done.returncode != 0:
        missingPeer(f"cannot mount a tmpfs: {done.stderr!r}")
    case.addCleanup(subprocess.run, ["umount", "-l", directory], check=True)
    return directory


class SQLiteSystemTests(unittest.TestCase):
    """
    The store on real files, the real reactor and real threads: one owner,
    a full disk, a read-only file system, a corrupt file.
    """

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "queue.db")

    async def started(self, path: str | None = None) -> SQLiteQueueStore:
        store = makeStore(path or self.path)
        await store.start()
        self.addCleanup(store.stop)
        return store

    async def refused(self, d: Deferred[object] | Deferred[None]) -> StoreError:
        """
        The L{StoreError} C{d} fails with.
        """
        try:
            await d
        except StoreError as e:
            return e
        raise self.failureException("not refused")

    async def replayed(self, store: SQLiteQueueStore) -> list[StoredJob]:
        seen: list[StoredJob] = []
        count = await store.replay(lambda key, job: seen.append(job))
        self.assertEqual(count, len(seen))
        return seen

    async def test_secondOwnerRefused(self) -> None:
        """
        A second store on the same file is refused at once, naming the
        owner's pid.
        """
        await self.started()
        other = makeStore(self.path)
        d = other.start()
        self.assertTrue(d.called, "refused at once")
        e = await self.refused(d)
        self.assertEqual(
            str(e), f"another txgearman holds the queue {self.path} (pid {os.getpid()})"
        )

    async def test_killedOwnerReleases(self) -> None:
        """
        While another process holds the queue's lock, start is refused with
        that process's pid; once it is killed with -9, start succeeds at
        once.
        """
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, os, sys, time\n"
                "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                "os.write(fd, b'%d\\n' % os.getpid())\n"
                "print('held', flush=True)\n"
                "time.sleep(60)\n",
                self.path + ".lock",
            ],
            stdout=subprocess.PIPE,
        )
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        assert holder.stdout is not None
        self.assertEqual(holder.stdout.readline(), b"held\n")
        e = await self.refused(makeStore(self.path).start())
        self.assertEqual(
            str(e), f"another txgearman holds the queue {self.path} (pid {holder.pid})"
        )
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        store = await self.started()
        self.assertEqual(store.stateName, "running")

    async def test_diskFull(self) -> None:
        """
        On a full file system every add of the batch fails with the reason;
        once space is freed, the store stores again, and what was
        acknowledged is all there.
        """
        directory = mountTmpfs(self)
        path = os.path.join(directory, "queue.db")
        store = await self.started(path)
        kept = await store.add(StoredJob(b"f", b"", b"kept"))
        filler = os.path.join(directory, "filler")
        with open(filler, "wb") as f:
            f.write(b"\x00" * 600 * 1024)
        errors: list[str] = []
        for _ in range(20):
            batch = [
                store.add(StoredJob(b"f", b"", os.urandom(50000))) for _ in range(4)
            ]
            answers = await DeferredList(batch, consumeErrors=True)
            failures = [answer for ok, answer in answers if not ok]
            if failures:
                errors = [str(failure.value) for failure in failures]  # type: ignore[attr-defined]
                self.assertEqual(len(failures), len(batch), "the whole batch fails")
                break
        self.assertTrue(errors, "the disk never filled")
        self.assertTrue(
            errors[0].startswith(f"the queue database {path} cannot be written: "),
            errors[0],
        )
        self.assertIn("full", errors[0])
        [check] = store.health()
        self.assertFalse(check.ok)
        os.remove(filler)
        later = await store.add(StoredJob(b"f", b"", b"later"))
        self.assertTrue(store.health()[0].ok)
        store.remove(kept)
        await store.flush()
        jobs = await self.replayed(store)
        self.assertNotIn(StoredJob(b"f", b"", b"kept"), jobs)
        self.assertEqual(jobs[-1], StoredJob(b"f", b"", b"later"))
        assert isinstance(later, int) and isinstance(kept, int)
        self.assertGreater(later, kept)

    async def test_readOnlyFileSystem(self) -> None:
        """
        A queue on a read-only file system is refused at start, with the
        reason.  (A database turning read-only under a running store is
        the unit tests' C{test_readOnlyDatabase}: a file system busy with
        it cannot be remounted read-only.)
        """
        source = mountTmpfs(self, "8m")
        store = await self.started(os.path.join(source, "queue.db"))
        await store.add(StoredJob(b"f", b"", b"before"))
        await store.stop()
        target = os.path.abspath(self.mktemp())
        os.makedirs(target)
        subprocess.run(["mount", "--bind", source, target], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", target], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)
        path = os.path.join(target, "queue.db")
        e = await self.refused(makeStore(path).start())
        self.assertIn("Read-only file system", str(e))
        self.assertIn(path, str(e))

    async def test_corruptFile(self) -> None:
        """
        A file overwritten in the middle fails start or replay with a
        StoreError giving the reason, or replays without the rows lost.
        """
        store = await self.started()
        await gatherResults(
            [store.add(StoredJob(b"f", b"", b"%d" % i * 100)) for i in range(2000)]
        )
        await store.stop()
        size = os.path.getsize(self.path)
        with open(self.path, "r+b") as f:
            f.seek(size // 2)
            f.write(b"\xff" * 8192)
        other = makeStore(self.path)
        try:
            await other.start()
            self.addCleanup(other.stop)
            jobs = await self.replayed(other)
        except StoreError as e:
            self.assertIn(f"the queue database {self.path} cannot be", str(e))
            self.assertIn("malformed", str(e))
        else:
            self.assertLess(len(jobs), 2000)
