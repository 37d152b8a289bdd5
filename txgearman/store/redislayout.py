# -*- test-case-name: txgearman.test.test_redislayout -*-
"""
How txgearman lays its queue out in Redis: key names, the job record, and
the Lua scripts that change them.  Pure: no I/O, so every rule here is
tested without a server; L{txgearman.store.redis} does the talking.

Layout version 1, under a prefix P (C{--redis-prefix}, C{txgearman} by
default)::

    P:layout     "1": the version of this layout
    P:lock       the owner token of the server that holds the queue, with a TTL:
                 host|claim|pid|run (see L{ownerToken})
    P:seq        the highest job number handed out so far
    P:job:<N>    one background job; N orders the jobs by submission

A job record is one string of NUL-separated fields::

    1 NUL priority NUL when NUL function NUL unique NUL reducer NUL data

C{1} is the record version; C{priority} is C{0}, C{1} or C{2} (high,
normal, low); C{when} the epoch second it may run, C{0} for now; the reducer
field is empty for a job without one and C{+} and the reducer name
otherwise.  Gearman forbids NUL in function names, uniques and reducers, so
the only field that may hold NUL bytes is the last, and the record parses
unambiguously.  The job number, not the function or unique id, names the
key: jobs with empty or equal uniques, and functions with dashes, never
collide.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from txgearman.store.interfaces import StoredJob, storedJob

__all__ = [
    "LAYOUT_VERSION",
    "DEFAULT_PREFIX",
    "CorruptRecord",
    "Owner",
    "ownerToken",
    "parseOwner",
    "Layout",
    "encodeRecord",
    "decodeRecord",
    "ACQUIRE_SCRIPT",
    "APPLY_SCRIPT",
    "RELEASE_SCRIPT",
    "REPLAY_SCRIPT",
    "LOCKED_ERROR",
]

LAYOUT_VERSION = b"1"
DEFAULT_PREFIX = "txgearman"
_RECORD_VERSION = b"1"
_PRIORITIES = {b"0": 0, b"1": 1, b"2": 2}
_GLOB_SPECIAL = re.compile(rb"([*?\[\]\\])")


class Owner(NamedTuple):
    """
    What a lock's owner token says of the server holding it.
    """

    host: str
    claim: str
    pid: str


def ownerToken(host: str, claim: str | None, pid: int, run: str) -> bytes:
    """
    The token a server writes into the lock: its host, its claim (what only
    one live process on the host can hold, such as its listening address;
    C{-} for none), its process id, and a random id of this run.  Host and
    claim let the server's next run recognise a lock its dead predecessor
    left; the run id tells two runs apart.
    """
    fields = [host, claim or "-", str(pid), run]
    return "|".join(field.replace("|", "/") for field in fields).encode("utf-8")


def parseOwner(token: bytes) -> Owner | None:
    """
    The fields of an owner token, or C{None} for a token of another form
    (an older txgearman's C{host:pid:run}).
    """
    parts = token.decode("utf-8", "replace").split("|")
    if len(parts) != 4:
        return None
    return Owner(parts[0], parts[1], parts[2])


class CorruptRecord(ValueError):
    """
    A value under a job key is not a job record this version understands.
    """


class Layout:
    """
    The key names under one prefix.
    """

    def __init__(self, prefix: bytes) -> None:
        if not prefix:
            raise ValueError("the Redis key prefix must not be empty")
        self.prefix = prefix
        self.version = prefix + b":layout"
        self.lock = prefix + b":lock"
        self.seq = prefix + b":seq"
        self.jobPrefix = prefix + b":job:"
        self.ownKeys = frozenset((self.version, self.lock, self.seq))
        # SCAN's MATCH is a glob: escape the prefix so that a prefix such
        # as "a*" matches only itself, and end at ':' so that prefix "q"
        # never sees "q2"'s keys.
        self.scanPattern = _GLOB_SPECIAL.sub(rb"\\\1", prefix) + b":*"

    def jobKey(self, number: int) -> bytes:
        return self.jobPrefix + b"%d" % (number,)

    def jobNumber(self, key: bytes) -> int | None:
        """
        The job number a key names, or C{None} if it is not a job key.
        """
        if not key.startswith(self.jobPrefix):
            return None
        digits = key[len(self.jobPrefix) :]
        if not digits.isdigit() or (digits[:1] == b"0" and len(digits) > 1):
            return None
        return int(digits)


def encodeRecord(job: StoredJob) -> bytes:
    """
    The Redis value that stores C{job}.
    """
    reducer = b"" if job.reducer is None else b"+" + job.reducer
    return b"\0".join(
        (
            _RECORD_VERSION,
            b"%d" % (job.priority,),
            b"%d" % (job.when,),
            job.function,
            job.unique,
            reducer,
            job.data,
        )
    )


def decodeRecord(value: bytes, names: dict[bytes, bytes] | None = None) -> StoredJob:
    """
    The job a Redis value stores.

    @param names: function names seen so far, to share one bytes object
        per name among the many jobs a replay decodes.
    @raise CorruptRecord: saying what is wrong with it.
    """
    fields = value.split(b"\0", 6)
    if len(fields) != 7:
        raise CorruptRecord(f"{len(fields)} fields, not 7")
    version, priority, when, function, unique, reducer, data = fields
    if version != _RECORD_VERSION:
        raise CorruptRecord(f"record version {version[:20]!r}, not 1")
    if priority not in _PRIORITIES:
        raise CorruptRecord(f"priority {priority[:20]!r}")
    if not when.isdigit() or len(when) > 19:
        raise CorruptRecord(f"time {when[:20]!r}")
    if not function:
        raise CorruptRecord("empty function name")
    if reducer and reducer[:1] != b"+":
        raise CorruptRecord(f"reducer field {reducer[:20]!r}")
    if names is not None:
        function = names.setdefault(function, function)
    return storedJob(
        function,
        unique,
        data,
        _PRIORITIES[priority],
        int(when),
        reducer[1:] if reducer else None,
    )


#: The error a script answers when another server holds the lock.
LOCKED_ERROR = "TXGEARMAN_LOCKED"

#: Take the queue at start-up.  KEYS: lock, layout, seq.  ARGV: owner,
#: lock TTL in ms, layout version, and optionally the token of a dead
#: predecessor whose lock may be taken over.  Answers {1, seq} when taken,
#: {0, holder, pttl} when another server holds it, {-1, layout} when the
#: stored layout is not ours.
ACQUIRE_SCRIPT = b"""
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[4] then
  return {0, holder, redis.call('PTTL', KEYS[1])}
end
local layout = redis.call('GET', KEYS[2])
if layout and layout ~= ARGV[3] then
  return {-1, layout}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if not layout then
  redis.call('SET', KEYS[2], ARGV[3])
end
return {1, redis.call('GET', KEYS[3]) or '0'}
"""

#: Store and delete jobs, and extend the lock, as the lock's owner, in one
#: atomic step.  KEYS: lock, layout, seq, then n job keys to store, then
#: the job keys to delete.  ARGV: owner, lock TTL in ms, layout version,
#: the highest job number stored (or ''), then the n records.  Answers 0,
#: or 1 if the lock had expired and was taken again, or 2 if the layout
#: key was gone too (Redis lost its data).
APPLY_SCRIPT = b"""
local holder = redis.call('GET', KEYS[1])
local retaken = 0
if holder ~= ARGV[1] then
  if holder then
    return redis.error_reply('TXGEARMAN_LOCKED the queue is held by ' .. holder)
  end
  retaken = 1
  if redis.call('EXISTS', KEYS[2]) == 0 then
    retaken = 2
    redis.call('SET', KEYS[2], ARGV[3])
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local n = #ARGV - 4
for i = 1, n do
  redis.call('SET', KEYS[3 + i], ARGV[4 + i])
end
for i = 4 + n, #KEYS do
  redis.call('DEL', KEYS[i])
end
if ARGV[4] ~= '' and tonumber(ARGV[4]) > (tonumber(redis.call('GET', KEYS[3])) or 0) then
  redis.call('SET', KEYS[3], ARGV[4])
end
return retaken
"""

#: Give the queue up at a clean stop.  KEYS: lock.  ARGV: owner.
RELEASE_SCRIPT = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: One step of a replay: SCAN, and read the job records the step found, in
#: one round trip.  ARGV: cursor, MATCH pattern, COUNT, job key prefix, and a
#: byte budget.  Answers {cursor, job numbers joined by ',', their records,
#: numbers of job records left out to stay within the budget (read them
#: apart), other keys (not job keys, or not strings)}.
REPLAY_SCRIPT = b"""
local step = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local prefix, budget, used = ARGV[4], tonumber(ARGV[5]), 0
local numbers, values, later, others = {}, {}, {}, {}
for _, key in ipairs(step[2]) do
  local digits = nil
  if string.sub(key, 1, #prefix) == prefix then
    digits = string.sub(key, #prefix + 1)
    if not (string.match(digits, '^[1-9][0-9]*$') or digits == '0') then
      digits = nil
    end
  end
  local size = digits and redis.pcall('STRLEN', key)
  if type(size) ~= 'number' or (size == 0 and redis.call('EXISTS', key) == 0) then
    others[#others + 1] = key
  elseif used > 0 and used + size > budget then
    later[#later + 1] = digits
  else
    used = used + size
    numbers[#numbers + 1] = digits
    values[#values + 1] = redis.call('GET', key)
  end
end
return {step[1], table.concat(numbers, ','), values, table.concat(later, ','), others}
"""
