# -*- test-case-name: txgearman.test.test_importer,tests.test_import -*-
"""
Readers of gearmand's persistent queues, producing what txgearman stores.

Each reader yields batches of items: a L{SourceJob} (where the job lives
in gearmand's queue, so that it can be deleted there once imported, and
the L{StoredJob} it becomes) or an L{Unreadable} (a record that cannot be
read without guessing, and why).

The layouts, as gearmand writes them (checked against 1.1.20, Debian's,
and master):

  - C{libsqlite3}: one table, C{gearman_queue} by default::

        CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT,
            priority INTEGER, data BLOB, when_to_run INTEGER,
            PRIMARY KEY (unique_key, function_name))

    The same in 1.1.20 and master; tables made before epoch jobs lack
    C{when_to_run} (gearmand adds it when it opens them).  A job
    submitted with empty data is stored with a NULL C{data} (which
    gearmand 1.1.20 itself then refuses to replay).

  - C{redis}: one key per job, C{<prefix>-<function>-<unique>}, holding
    a hash.  1.1.16 to 2.0.0 write only the fields C{data} and
    C{priority}, so the function and unique come from the key, which is
    ambiguous when either holds a C{-} (and the UUID gearmand makes for a
    job without a unique always does).  Master (after 2.0.0) also writes C{function}
    and C{unique}, which are not.  1.1.15 and older wrote a plain string
    holding the data, at normal priority.  The Redis queue refuses epoch
    jobs, so no layout has a time field.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

from txgearman.importer.resp import RespError
from txgearman.store.interfaces import StoredJob

__all__ = [
    "DEFAULT_REDIS_PREFIX",
    "DEFAULT_TABLE",
    "PRIORITY_NAMES",
    "GearmandRedisQueue",
    "GearmandSQLiteQueue",
    "JobSource",
    "SQLiteKey",
    "SourceError",
    "SourceJob",
    "Unreadable",
    "keySplits",
    "readRedisValue",
    "rowJob",
    "splitKey",
]

DEFAULT_TABLE = "gearman_queue"
DEFAULT_REDIS_PREFIX = "_gear_"

#: What gearmand's priorities are called (C{gearman_job_priority_t}).
PRIORITY_NAMES = {0: "high", 1: "normal", 2: "low"}


class SourceError(Exception):
    """
    gearmand's queue cannot be read at all; the message names it and says
    why.
    """


class SourceJob(NamedTuple):
    """
    A job read from gearmand's queue.

    @ivar key: where it is in the queue, for L{GearmandSQLiteQueue.delete}
        or L{GearmandRedisQueue.delete}.
    @ivar job: what txgearman is to store.
    """

    key: object
    job: StoredJob


class Unreadable(NamedTuple):
    """
    A record of gearmand's queue that is not imported, since reading it
    would be a guess.

    @ivar where: the record, in words (a Redis key, or a table row).
    @ivar reason: why it cannot be read.
    """

    where: str
    reason: str


Item = SourceJob | Unreadable


class JobSource(Protocol):
    """
    What the import loop needs of a reader of gearmand's queue.
    """

    def batches(self, size: int = 1000) -> Iterator[list[Item]]:
        """
        The queue's records, about C{size} at a time.
        """

    def delete(self, keys: Sequence[object]) -> int:
        """
        Delete the jobs at these L{SourceJob.key}s; return how many were.
        """


def _names(value: bytes) -> bool:
    """
    Whether C{value} can be a function name or a unique: the protocol
    separates arguments with NUL, so neither can hold one.
    """
    return b"\0" not in value


# -- the SQLite queue -----------------------------------------------------------


class SQLiteKey(NamedTuple):
    """
    Where a job is in gearmand's table: its row, and the primary key
    gearmand deletes it by, checked again when it is deleted here.
    """

    rowid: int
    unique: bytes
    function: bytes


def _quoteName(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rowJob(row: Sequence[Any]) -> Item:
    """
    The job in one row of gearmand's table, read with C{text_factory =
    bytes} (so that TEXT and BLOB values alike come as their exact bytes).

    @param row: C{(rowid, unique_key, function_name, priority, data,
        when_to_run)}; C{when_to_run} is C{None} for a table without it.
    """
    rowid, unique, function, priority, data, when = row
    where = f"row {rowid} (function_name {function!r}, unique_key {unique!r})"
    if not isinstance(function, bytes) or not function or not _names(function):
        return Unreadable(where, "function_name is not a function name")
    if not isinstance(unique, bytes) or not _names(unique):
        return Unreadable(where, "unique_key is not a unique")
    if not isinstance(priority, int) or priority not in PRIORITY_NAMES:
        return Unreadable(where, f"priority {priority!r} is not 0, 1 or 2")
    if data is None:
        # What gearmand writes for a job submitted with empty data.
        data = b""
    if not isinstance(data, bytes):
        return Unreadable(where, f"data is a number ({data!r}), not bytes")
    if when is None:
        when = 0
    if not isinstance(when, int) or when < 0:
        return Unreadable(where, f"when_to_run {when!r} is not an epoch second")
    return SourceJob(
        SQLiteKey(rowid, unique, function),
        StoredJob(function, unique, data, priority, when),
    )


class GearmandSQLiteQueue:
    """
    gearmand's C{libsqlite3} queue: a table in an SQLite file.

    The file is opened read-only unless deleting, and never created: a
    missing file or table is an error naming it, not an empty queue.
    """

    def __init__(
        self, path: str, table: str = DEFAULT_TABLE, write: bool = False
    ) -> None:
        self.path = path
        self.table = table
        if not os.path.isfile(path):
            what = "is not a file" if os.path.exists(path) else "does not exist"
            raise SourceError(f"gearmand's queue {path} {what}")
        mode = "rw" if write else "ro"
        uri = f"file:{quote(os.path.abspath(path))}?mode={mode}"
        try:
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as e:
            raise SourceError(
                f"gearmand's queue {path} cannot be opened: {e}"
            ) from None
        self.db.text_factory = bytes
        try:
            self._checkTable()
        except BaseException:
            self.db.close()
            raise

    def _checkTable(self) -> None:
        try:
            info = self.db.execute(
                f"PRAGMA table_info({_quoteName(self.table)})"
            ).fetchall()
            tables = [
                name.decode("utf-8", "replace")
                for (name,) in self.db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
        except sqlite3.DatabaseError as e:
            raise SourceError(
                f"{self.path} is not a gearmand queue: it is not an SQLite database ({e})"
            ) from None
        if not info:
            raise SourceError(
                f"{self.path} is not a gearmand queue: it has no table {self.table!r} "
                f"(its tables: {', '.join(tables) or 'none'}; name the table with "
                "--gearmand-sqlite-table)"
            )
        columns = {row[1].decode("utf-8", "replace") for row in info}
        missing = [
            name
            for name in ("unique_key", "function_name", "priority", "data")
            if name not in columns
        ]
        if missing:
            raise SourceError(
                f"{self.path} is not a gearmand queue: table {self.table!r} has no "
                f"column {', '.join(missing)}"
            )
        when = "when_to_run" if "when_to_run" in columns else "NULL"
        self._select = (
            f"SELECT rowid, unique_key, function_name, priority, data, {when} "
            f"FROM {_quoteName(self.table)}"
        )

    def batches(self, size: int = 1000) -> Iterator[list[Item]]:
        """
        The jobs in the table, C{size} rows at a time, in row order (the
        order gearmand inserted them).  Each batch is a new query after
        the last row seen, so rows may be deleted between batches.
        """
        last: int | None = None
        while True:
            try:
                if last is None:
                    rows = self.db.execute(
                        f"{self._select} ORDER BY rowid LIMIT ?", (size,)
                    )
                else:
                    rows = self.db.execute(
                        f"{self._select} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                        (last, size),
                    )
                batch = rows.fetchall()
            except sqlite3.Error as e:
                raise SourceError(
                    f"reading gearmand's queue {self.path}: {e}"
                ) from None
            if not batch:
                return
            last = batch[-1][0]
            yield [rowJob(row) for row in batch]

    def delete(self, keys: Sequence[object]) -> int:
        """
        Delete these jobs (L{SQLiteKey}s) in one transaction: each by its
        row, if it still holds the same unique and function.

        @return: how many rows were deleted.
        """
        if not keys:
            return 0
        before = self.db.total_changes
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                f"DELETE FROM {_quoteName(self.table)} WHERE rowid = ? "
                "AND CAST(unique_key AS BLOB) = ? AND CAST(function_name AS BLOB) = ?",
                [
                    (k.rowid, k.unique, k.function)
                    for k in keys
                    if isinstance(k, SQLiteKey)
                ],
            )
            self.db.execute("COMMIT")
        except sqlite3.Error as e:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise SourceError(
                f"deleting from gearmand's queue {self.path}: {e}"
            ) from None
        return self.db.total_changes - before

    def describe(self) -> str:
        return f"gearmand's SQLite queue {self.path} (table {self.table})"

    def close(self) -> None:
        self.db.close()


# -- the Redis queue ------------------------------------------------------------


def keySplits(rest: bytes) -> list[tuple[bytes, bytes]]:
    """
    Every way C{rest} (a key without its C{<prefix>-}) reads as
    C{<function>-<unique>}: split at each C{-}, with a function that is
    not empty.
    """
    return [
        (rest[:i], rest[i + 1 :])
        for i in range(1, len(rest))
        if rest[i : i + 1] == b"-"
    ]


def splitKey(
    rest: bytes, functions: frozenset[bytes] = frozenset()
) -> tuple[bytes, bytes] | list[tuple[bytes, bytes]]:
    """
    The function and unique a key names, when it names one pair only.

    A key with one possible split (one C{-} after the function's first
    byte) is read; one with more is read only when exactly one of its
    splits gives one of C{functions}, the functions the operator named.

    @return: C{(function, unique)}, or else the list of the possible
        splits (empty when there is none), for the report.
    """
    splits = keySplits(rest)
    if len(splits) == 1:
        return splits[0]
    known = [split for split in splits if split[0] in functions]
    if len(known) == 1:
        return known[0]
    return known or splits


def _splitWords(splits: list[tuple[bytes, bytes]]) -> str:
    return "; ".join(f"function {f!r} unique {u!r}" for f, u in splits)


def readRedisValue(
    key: bytes,
    kind: bytes,
    value: Any,
    prefix: bytes,
    functions: frozenset[bytes] = frozenset(),
) -> Item:
    """
    The job in one key of gearmand's Redis queue.

    @param kind: what C{TYPE key} answered.
    @param value: for a hash, what C{HGETALL key} answered (a flat list of
        fields and values); for a string, what C{GET key} answered.
    @param prefix: gearmand's C{--redis-prefix}; the key starts with it
        and a C{-}.
    @param functions: the functions the operator named (C{--function}),
        which make keys holding more than one C{-} readable.
    """
    where = f"key {key!r}"
    rest = key[len(prefix) + 1 :]
    fields: dict[bytes, bytes] = {}
    if kind == b"string":
        # gearmand 1.1.15 and older: the value is the data.
        data, priority = value, 1
    elif kind == b"hash":
        if not isinstance(value, list) or len(value) % 2:
            return Unreadable(where, "HGETALL gave no field list")
        fields = dict(zip(value[::2], value[1::2], strict=True))
        unknown = sorted(set(fields) - {b"data", b"priority", b"function", b"unique"})
        if unknown:
            return Unreadable(
                where,
                f"not a gearmand job: unknown fields {', '.join(map(repr, unknown))}",
            )
        if b"data" not in fields or b"priority" not in fields:
            return Unreadable(where, "not a gearmand job: no data or no priority field")
        data = fields[b"data"]
        try:
            priority = int(fields[b"priority"])
        except ValueError:
            priority = -1
        if priority not in PRIORITY_NAMES or not fields[b"priority"].isdigit():
            return Unreadable(
                where, f"priority {fields[b'priority']!r} is not 0, 1 or 2"
            )
    elif kind == b"none":
        return Unreadable(where, "deleted while being read")
    else:
        return Unreadable(
            where, f"a Redis {kind.decode('ascii', 'replace')}, not a gearmand job"
        )
    if not isinstance(data, bytes):
        return Unreadable(where, "its value is not a string")
    function = fields.get(b"function")
    unique = fields.get(b"unique")
    if function and unique is not None:
        # gearmand master names them: no guess needed.
        pass
    else:
        split = splitKey(rest, functions)
        if isinstance(split, list):
            if not split:
                return Unreadable(where, "the key names no function and unique")
            if functions:
                reason = "no --function, or more than one, matches"
            else:
                reason = "ambiguous (name its function with --function)"
            return Unreadable(where, f"{reason}: could be {_splitWords(split)}")
        function, unique = split
    if not _names(function) or not _names(unique):
        return Unreadable(where, "the function or unique holds a NUL byte")
    return SourceJob(key, StoredJob(function, unique, data, priority, 0))


class RedisConnection(Protocol):
    """
    What L{GearmandRedisQueue} needs of a Redis client
    (L{txgearman.importer.resp.RespClient}).
    """

    def pipeline(
        self, commands: Sequence[Sequence[bytes | str | int]]
    ) -> list[Any]: ...


def globEscape(text: bytes) -> bytes:
    """
    C{text} as a literal in a Redis C{MATCH} pattern.
    """
    for special in (b"\\", b"*", b"?", b"[", b"]"):
        text = text.replace(special, b"\\" + special)
    return text


class GearmandRedisQueue:
    """
    gearmand's C{redis} queue: the keys under its prefix, read with
    C{SCAN} (never C{KEYS}, which blocks a Redis that others use).
    """

    def __init__(
        self,
        redis: RedisConnection,
        prefix: bytes = DEFAULT_REDIS_PREFIX.encode(),
        functions: frozenset[bytes] = frozenset(),
        address: str = "",
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.functions = functions
        self.address = address

    def _call(self, commands: Sequence[Sequence[bytes | str | int]]) -> list[Any]:
        try:
            replies = self.redis.pipeline(commands)
        except OSError as e:
            raise SourceError(f"gearmand's Redis {self.address}: {e}") from None
        if commands and commands[0][0] == "SCAN" and isinstance(replies[0], RespError):
            raise SourceError(
                f"gearmand's Redis {self.address} refused SCAN: {replies[0]}"
            )
        return replies

    def batches(self, size: int = 1000) -> Iterator[list[Item]]:
        """
        The jobs under the prefix, one C{SCAN} step (about C{size} keys)
        at a time.  A key C{SCAN} returns twice is read twice.
        """
        pattern = globEscape(self.prefix) + b"-*"
        cursor = b"0"
        while True:
            ((cursor, keys),) = self._call(
                [("SCAN", cursor, "MATCH", pattern, "COUNT", size)]
            )
            if keys:
                kinds = self._call([("TYPE", key) for key in keys])
                reads: list[tuple[bytes | str, ...]] = []
                for key, kind in zip(keys, kinds, strict=True):
                    if kind == b"hash":
                        reads.append(("HGETALL", key))
                    elif kind == b"string":
                        reads.append(("GET", key))
                    else:
                        reads.append(("EXISTS", key))
                values = self._call(reads)
                batch: list[Item] = []
                for key, kind, value in zip(keys, kinds, values, strict=True):
                    if isinstance(kind, RespError) or isinstance(value, RespError):
                        error = kind if isinstance(kind, RespError) else value
                        batch.append(Unreadable(f"key {key!r}", f"Redis said {error}"))
                    elif kind == b"none" or (kind == b"string" and value is None):
                        # Gone since SCAN returned it: nothing to import.
                        continue
                    else:
                        batch.append(
                            readRedisValue(
                                key, kind, value, self.prefix, self.functions
                            )
                        )
                yield batch
            if cursor == b"0":
                return

    def delete(self, keys: Sequence[object]) -> int:
        """
        Delete these keys (C{DEL}, one pipeline).

        @return: how many were deleted.
        """
        replies = self._call([("DEL", key) for key in keys if isinstance(key, bytes)])
        return sum(reply for reply in replies if isinstance(reply, int))

    def describe(self) -> str:
        return f"gearmand's Redis queue at {self.address} (prefix {self.prefix!r})"

    def close(self) -> None:
        close = getattr(self.redis, "close", None)
        if close is not None:
            close()
