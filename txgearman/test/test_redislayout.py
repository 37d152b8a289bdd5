"""
Tests for L{txgearman.store.redislayout}: key names, the job record format
and the Lua scripts' calling conventions.

Pure: no Redis server is involved.  Records outlive the process that wrote
them, so the exact bytes of the format are pinned here too.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from txgearman.store.interfaces import StoredJob
from txgearman.store.redislayout import (
    ACQUIRE_SCRIPT,
    APPLY_SCRIPT,
    DEFAULT_PREFIX,
    LAYOUT_VERSION,
    LOCKED_ERROR,
    RELEASE_SCRIPT,
    CorruptRecord,
    Layout,
    Owner,
    decodeRecord,
    encodeRecord,
    ownerToken,
    parseOwner,
)

noNul = st.lists(st.integers(1, 255), max_size=40).map(bytes)
storedJobs = st.builds(
    StoredJob,
    function=st.lists(st.integers(1, 255), min_size=1, max_size=40).map(bytes),
    unique=noNul,
    data=st.binary(max_size=200),
    priority=st.integers(0, 2),
    when=st.integers(0, 2**40),
    reducer=st.none() | noNul,
)


@st.composite
def damagedRecords(draw: st.DrawFn) -> bytes:
    """
    A valid record with a few bytes changed, inserted or removed, so that
    decoding gets past the first checks.
    """
    record = bytearray(encodeRecord(draw(storedJobs)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(record)))
        op = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        byte = draw(st.sampled_from([0, ord("+"), ord("0"), ord("3"), ord("-"), 0xFF]))
        if op == "set" and where < len(record):
            record[where] = byte
        elif op == "insert":
            record.insert(where, byte)
        elif op == "delete" and where < len(record):
            del record[where]
        else:
            del record[where:]
    return bytes(record)


pieces = st.lists(
    st.sampled_from(
        [
            b"",
            b"0",
            b"1",
            b"2",
            b"3",
            b"01",
            b"+",
            b"+r",
            b"r",
            b"f",
            b"-1",
            b"\xd9\xa3",
            b"9" * 20,
        ]
    ),
    max_size=9,
).map(b"\0".join)


def record(*fields: bytes) -> bytes:
    return b"\0".join(fields)


class RecordFormatTests(unittest.SynchronousTestCase):
    """
    The bytes L{encodeRecord} writes: stored queues outlive the server that
    wrote them, so this format may only change with a new version.
    """

    def test_format(self) -> None:
        job = StoredJob(
            b"f", b"u", b"da\0ta", priority=2, when=1700000000, reducer=b"r"
        )
        self.assertEqual(
            encodeRecord(job), b"1\x002\x001700000000\x00f\x00u\x00+r\x00da\x00ta"
        )

    def test_formatNoReducer(self) -> None:
        job = StoredJob(b"f", b"", b"", priority=1, when=0)
        self.assertEqual(encodeRecord(job), b"1\x001\x000\x00f\x00\x00\x00")

    def test_versions(self) -> None:
        self.assertEqual(LAYOUT_VERSION, b"1")
        self.assertEqual(DEFAULT_PREFIX, "txgearman")


class RecordRoundTripTests(unittest.SynchronousTestCase):
    """
    L{decodeRecord} gives back exactly what L{encodeRecord} was given.
    """

    def assertRoundTrip(self, job: StoredJob) -> None:
        self.assertEqual(decodeRecord(encodeRecord(job)), job)

    def test_dashesInFunction(self) -> None:
        self.assertRoundTrip(StoredJob(b"resize-image-v2", b"u-1", b"x"))

    def test_emptyUnique(self) -> None:
        self.assertRoundTrip(StoredJob(b"f", b"", b"data"))

    def test_dashUnique(self) -> None:
        """
        C{-} is the unique id C{gearman -u -} style clients send; it is
        just bytes here.
        """
        self.assertRoundTrip(StoredJob(b"f", b"-", b"data"))

    def test_binaryData(self) -> None:
        """
        The data may hold NUL, CR and LF bytes: it is the last field.
        """
        self.assertRoundTrip(StoredJob(b"f", b"u", b"\0\0a\r\n\0b\r\n\0"))
        self.assertRoundTrip(StoredJob(b"f", b"u", b"\0"))
        self.assertRoundTrip(StoredJob(b"f", b"u", bytes(range(256))))

    def test_emptyData(self) -> None:
        self.assertRoundTrip(StoredJob(b"f", b"u", b""))

    def test_allPriorities(self) -> None:
        for priority in (0, 1, 2):
            self.assertRoundTrip(StoredJob(b"f", b"u", b"d", priority=priority))

    def test_when(self) -> None:
        for when in (0, 1, 1700000000, 2**40, 2**63 - 1):
            self.assertRoundTrip(StoredJob(b"f", b"u", b"d", when=when))

    def test_reducers(self) -> None:
        """
        No reducer, an empty reducer name and a reducer named C{r} are three
        different jobs and stay so.
        """
        jobs = [StoredJob(b"f", b"u", b"d", reducer=r) for r in (None, b"", b"r")]
        records = [encodeRecord(job) for job in jobs]
        self.assertEqual(len(set(records)), 3)
        self.assertEqual([decodeRecord(r) for r in records], jobs)
        self.assertIsNone(decodeRecord(records[0]).reducer)
        self.assertEqual(decodeRecord(records[1]).reducer, b"")

    def test_reducerStartingWithPlus(self) -> None:
        self.assertRoundTrip(StoredJob(b"f", b"u", b"d", reducer=b"+"))
        self.assertRoundTrip(StoredJob(b"f", b"u", b"d", reducer=b"++r"))

    def test_fieldsLookingLikeSeparators(self) -> None:
        self.assertRoundTrip(
            StoredJob(b"1", b"+", b"1\x001\x000", priority=0, reducer=b"\r\n")
        )

    @settings(max_examples=500, deadline=None)
    @given(storedJobs)
    def test_anyJob(self, job: StoredJob) -> None:
        self.assertRoundTrip(job)

    @settings(max_examples=200, deadline=None)
    @given(storedJobs, storedJobs)
    def test_distinctJobsDistinctRecords(self, a: StoredJob, b: StoredJob) -> None:
        """
        Two different jobs never share a record.
        """
        self.assertEqual(a == b, encodeRecord(a) == encodeRecord(b))


class CorruptRecordTests(unittest.SynchronousTestCase):
    """
    L{decodeRecord} refuses values that are not records it wrote, with
    L{CorruptRecord}.
    """

    def assertCorrupt(self, value: bytes) -> None:
        self.assertRaises(CorruptRecord, decodeRecord, value)

    def test_isValueError(self) -> None:
        self.assertTrue(issubclass(CorruptRecord, ValueError))

    def test_tooFewFields(self) -> None:
        good = encodeRecord(StoredJob(b"f", b"u", b"d"))
        for count in range(6):
            self.assertCorrupt(b"\0".join(good.split(b"\0")[:count]))
        self.assertCorrupt(b"1\x001\x000\x00f\x00u\x00+r")

    def test_wrongVersion(self) -> None:
        for version in (b"", b"0", b"2", b"01", b"1 ", b"v1"):
            self.assertCorrupt(record(version, b"1", b"0", b"f", b"u", b"", b"d"))

    def test_badPriority(self) -> None:
        for priority in (b"3", b"", b"-1", b"00", b"01", b" 1", b"\xd9\xa1", b"high"):
            self.assertCorrupt(record(b"1", priority, b"0", b"f", b"u", b"", b"d"))

    def test_badWhen(self) -> None:
        for when in (
            b"",
            b"x",
            b"-1",
            b"+1",
            b"1.5",
            b" 1",
            b"1e9",
            b"\xd9\xa3",
            b"9" * 20,
        ):
            self.assertCorrupt(record(b"1", b"1", when, b"f", b"u", b"", b"d"))

    def test_longestWhen(self) -> None:
        """
        Nineteen digits, more than any real time, is the most accepted.
        """
        value = record(b"1", b"1", b"9" * 19, b"f", b"u", b"", b"d")
        self.assertEqual(decodeRecord(value).when, 10**19 - 1)

    def test_emptyFunction(self) -> None:
        self.assertCorrupt(record(b"1", b"1", b"0", b"", b"u", b"", b"d"))

    def test_reducerWithoutPlus(self) -> None:
        for reducer in (b"r", b"-r", b" +r", b"\xff"):
            self.assertCorrupt(record(b"1", b"1", b"0", b"f", b"u", reducer, b"d"))

    def test_garbage(self) -> None:
        for value in (b"", b"\0", b"\0" * 6, b"hello", b"OK", b"\xff" * 30):
            self.assertCorrupt(value)

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=100) | damagedRecords() | pieces)
    def test_arbitraryBytes(self, value: bytes) -> None:
        """
        Whatever a key holds, decoding gives a valid job or
        L{CorruptRecord}, never another exception; a job it gives is one
        that encodes and decodes to itself.
        """
        try:
            job = decodeRecord(value)
        except CorruptRecord:
            return
        self.assertIsInstance(job, StoredJob)
        self.assertIn(job.priority, (0, 1, 2))
        self.assertGreaterEqual(job.when, 0)
        self.assertNotEqual(job.function, b"")
        self.assertEqual(decodeRecord(encodeRecord(job)), job)


def redisGlobMatch(pattern: bytes, string: bytes) -> bool:
    """
    Whether Redis's C{SCAN ... MATCH pattern} selects C{string}: a
    transcription of C{stringmatchlen} in Redis's C{util.c} (case-sensitive),
    so that L{Layout.scanPattern} is checked against Redis's own rules.
    """
    p = s = 0
    while p < len(pattern) and s < len(string):
        c = pattern[p : p + 1]
        if c == b"*":
            while pattern[p + 1 : p + 2] == b"*":
                p += 1
            if p + 1 == len(pattern):
                return True
            return any(
                redisGlobMatch(pattern[p + 1 :], string[i:])
                for i in range(s, len(string))
            )
        elif c == b"?":
            s += 1
        elif c == b"[":
            p += 1
            negate = pattern[p : p + 1] == b"^"
            if negate:
                p += 1
            matched = False
            while True:
                if pattern[p : p + 1] == b"\\" and len(pattern) - p >= 2:
                    p += 1
                    matched = matched or pattern[p] == string[s]
                elif pattern[p : p + 1] == b"]":
                    break
                elif p >= len(pattern):
                    p -= 1
                    break
                elif len(pattern) - p >= 3 and pattern[p + 1 : p + 2] == b"-":
                    low, high = sorted((pattern[p], pattern[p + 2]))
                    matched = matched or low <= string[s] <= high
                    p += 2
                else:
                    matched = matched or pattern[p] == string[s]
                p += 1
            if matched == negate:
                return False
            s += 1
        else:
            if c == b"\\" and len(pattern) - p >= 2:
                p += 1
            if pattern[p] != string[s]:
                return False
            s += 1
        p += 1
    if s == len(string):
        while pattern[p : p + 1] == b"*":
            p += 1
    return p == len(pattern) and s == len(string)


class RedisGlobMatchTests(unittest.SynchronousTestCase):
    """
    The test's transcription of Redis's glob matcher behaves as Redis
    documents C{KEYS} patterns.
    """

    def test_rules(self) -> None:
        cases = [
            (b"h?llo", b"hello", True),
            (b"h?llo", b"hllo", False),
            (b"h*llo", b"heeeello", True),
            (b"h*llo", b"hllo", True),
            (b"h[ae]llo", b"hallo", True),
            (b"h[ae]llo", b"hillo", False),
            (b"h[^e]llo", b"hallo", True),
            (b"h[^e]llo", b"hello", False),
            (b"h[a-b]llo", b"hbllo", True),
            (b"h[a-b]llo", b"hcllo", False),
            (b"a\\*", b"a*", True),
            (b"a\\*", b"ab", False),
            (b"a\\[b\\]", b"a[b]", True),
            (b"a[b]", b"a[b]", False),
            (b"a\\\\", b"a\\", True),
            (b"a:*", b"a:", True),
            (b"a:*", b"a", False),
        ]
        for pattern, string, expected in cases:
            self.assertEqual(
                redisGlobMatch(pattern, string), expected, (pattern, string)
            )


globPrefixes = st.lists(
    st.sampled_from(b"a:*?[]\\^-!0job"), min_size=1, max_size=8
).map(bytes)


class LayoutTests(unittest.SynchronousTestCase):
    """
    The key names under a prefix.
    """

    def setUp(self) -> None:
        self.layout = Layout(b"txgearman")

    def test_keyNames(self) -> None:
        layout = self.layout
        self.assertEqual(layout.prefix, b"txgearman")
        self.assertEqual(layout.version, b"txgearman:layout")
        self.assertEqual(layout.lock, b"txgearman:lock")
        self.assertEqual(layout.seq, b"txgearman:seq")
        self.assertEqual(layout.jobPrefix, b"txgearman:job:")
        self.assertEqual(layout.ownKeys, {layout.version, layout.lock, layout.seq})
        self.assertEqual(layout.scanPattern, b"txgearman:*")

    def test_jobKey(self) -> None:
        self.assertEqual(self.layout.jobKey(0), b"txgearman:job:0")
        self.assertEqual(self.layout.jobKey(12345), b"txgearman:job:12345")

    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, 2**64))
    def test_jobNumberRoundTrip(self, number: int) -> None:
        self.assertEqual(self.layout.jobNumber(self.layout.jobKey(number)), number)

    def test_ownKeysAreNotJobs(self) -> None:
        for key in self.layout.ownKeys:
            self.assertIsNone(self.layout.jobNumber(key))

    def test_otherPrefix(self) -> None:
        for key in (
            b"other:job:1",
            b"txgearman2:job:1",
            b"xtxgearman:job:1",
            b"txgearman:jobs:1",
            b"txgearman:job",
            b"txgearman:1",
            b"TXGEARMAN:job:1",
        ):
            self.assertIsNone(self.layout.jobNumber(key), key)

    def test_nonDigits(self) -> None:
        for suffix in (
            b"",
            b"a",
            b"1a",
            b"a1",
            b"+1",
            b"-1",
            b" 1",
            b"1 ",
            b"1.0",
            b"\xd9\xa3",
        ):
            self.assertIsNone(self.layout.jobNumber(b"txgearman:job:" + suffix), suffix)

    def test_leadingZeros(self) -> None:
        """
        C{jobKey} never writes leading zeros, so a key with them is not one
        of ours (and would otherwise alias another job's number).
        """
        for suffix in (b"00", b"01", b"007"):
            self.assertIsNone(self.layout.jobNumber(b"txgearman:job:" + suffix), suffix)
        self.assertEqual(self.layout.jobNumber(b"txgearman:job:0"), 0)

    def test_emptyPrefixRejected(self) -> None:
        self.assertRaises(ValueError, Layout, b"")

    def test_scanPatternEscapes(self) -> None:
        self.assertEqual(
            Layout(b"a*b?c[d]e\\f").scanPattern, b"a\\*b\\?c\\[d\\]e\\\\f:*"
        )
        self.assertEqual(Layout(b"q-^!").scanPattern, b"q-^!:*")

    @settings(max_examples=300, deadline=None)
    @given(globPrefixes, st.binary(max_size=12) | globPrefixes)
    def test_scanPatternSelectsExactlyThePrefix(
        self, prefix: bytes, key: bytes
    ) -> None:
        """
        By Redis's glob rules, the pattern selects a key iff the key starts
        with the prefix and a colon, whatever glob characters the prefix
        holds.
        """
        pattern = Layout(prefix).scanPattern
        self.assertTrue(pattern.endswith(b":*"))
        for candidate in (key, prefix + b":" + key, prefix + key, key + b":" + prefix):
            self.assertEqual(
                redisGlobMatch(pattern, candidate),
                candidate.startswith(prefix + b":"),
                (pattern, candidate),
            )

    @settings(max_examples=300, deadline=None)
    @given(globPrefixes, globPrefixes, st.integers(0, 10**6))
    def test_prefixesDoNotShareJobs(self, a: bytes, b: bytes, number: int) -> None:
        """
        No key that one prefix writes is a job key of another prefix, even
        when one prefix extends the other (C{q} and C{q:job}).
        """
        if a == b:
            return
        mine, theirs = Layout(a), Layout(b)
        for key in (*theirs.ownKeys, theirs.jobKey(number)):
            self.assertIsNone(mine.jobNumber(key), key)

    def test_prefixExtendingAnother(self) -> None:
        mine, theirs = Layout(b"q"), Layout(b"q:job")
        for key in (*theirs.ownKeys, theirs.jobKey(5)):
            self.assertIsNone(mine.jobNumber(key), key)


def indices(script: bytes, table: bytes) -> set[int]:
    return {int(n) for n in re.findall(rb"\b" + table + rb"\[(\d+)\]", script)}


class ScriptTests(unittest.SynchronousTestCase):
    """
    The Lua scripts use the KEYS and ARGV slots their comments (and
    L{txgearman.store.redis}) say they do.
    """

    def test_bytes(self) -> None:
        for script in (ACQUIRE_SCRIPT, APPLY_SCRIPT, RELEASE_SCRIPT):
            self.assertIsInstance(script, bytes)
            script.decode("ascii")

    def test_acquire(self) -> None:
        self.assertEqual(indices(ACQUIRE_SCRIPT, b"KEYS"), {1, 2, 3})
        self.assertEqual(indices(ACQUIRE_SCRIPT, b"ARGV"), {1, 2, 3, 4})

    def test_apply(self) -> None:
        """
        APPLY's fixed slots are lock, layout, seq and owner, TTL, version,
        highest number; the rest it reaches by computed index.
        """
        self.assertEqual(indices(APPLY_SCRIPT, b"KEYS"), {1, 2, 3})
        self.assertEqual(indices(APPLY_SCRIPT, b"ARGV"), {1, 2, 3, 4})

    def test_release(self) -> None:
        self.assertEqual(indices(RELEASE_SCRIPT, b"KEYS"), {1})
        self.assertEqual(indices(RELEASE_SCRIPT, b"ARGV"), {1})

    def test_lockedErrorCode(self) -> None:
        """
        Redis takes an error reply's first word as its code: APPLY's
        refusal starts with L{LOCKED_ERROR}, a single word.
        """
        self.assertRegex(LOCKED_ERROR, r"^[A-Z][A-Z_]+$")
        self.assertIn(
            b"redis.error_reply('" + LOCKED_ERROR.encode() + b" ", APPLY_SCRIPT
        )


class OwnerTokenTests(unittest.SynchronousTestCase):
    """
    L{ownerToken} and L{parseOwner}: what a lock says of its holder.
    """

    def test_roundTrip(self) -> None:
        token = ownerToken("host", "tcp 127.0.0.1:4730", 42, "abc")
        self.assertEqual(token, b"host|tcp 127.0.0.1:4730|42|abc")
        self.assertEqual(parseOwner(token), Owner("host", "tcp 127.0.0.1:4730", "42"))

    def test_noClaim(self) -> None:
        self.assertEqual(
            parseOwner(ownerToken("h", None, 1, "r")), Owner("h", "-", "1")
        )

    def test_separatorInField(self) -> None:
        """
        A C{|} inside a field cannot shift the others.
        """
        token = ownerToken("h|x", "unix /tmp/a|b", 1, "r")
        self.assertEqual(parseOwner(token), Owner("h/x", "unix /tmp/a/b", "1"))

    def test_otherForm(self) -> None:
        """
        An older txgearman's C{host:pid:run} token is nobody's predecessor.
        """
        self.assertIsNone(parseOwner(b"host:123:abcdef"))
