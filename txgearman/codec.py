# -*- test-case-name: txgearman.test.test_codec -*-
"""
The Gearman wire format: packet types, argument rules, encoding, an
incremental decoder, and the table by which a protocol finds its handler
for each packet type.

Pure functions over bytes, no Twisted: the server protocol, the client
library and the tests all share this one parser.

A binary packet is a 12-byte header (C{\\0REQ} or C{\\0RES}, a big-endian
type, a big-endian body size) followed by the body; the body is split into
arguments by NUL bytes according to the type's L{ARGUMENTS} rule.  A chunk of
the stream whose first byte is not NUL is a text (admin) line ending in
C{\\n}.  Both kinds can be mixed on one connection.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections import deque
from enum import IntEnum
from typing import Any, NamedTuple

__all__ = [
    "REQ",
    "RES",
    "PacketType",
    "Priority",
    "ARGUMENTS",
    "SUBMITS",
    "submitType",
    "packetHandlers",
    "Packet",
    "AdminLine",
    "printable",
    "ProtocolError",
    "BadMagic",
    "UnknownPacketType",
    "PacketTooLarge",
    "MalformedPacket",
    "LineTooLong",
    "encode",
    "encodeRequest",
    "encodeResponse",
    "splitArguments",
    "Decoder",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_MAX_LINE_LENGTH",
    "LARGE_BODY",
]

REQ = b"\0REQ"
RES = b"\0RES"

#: Default bound on a packet body: far above any sane job payload, far
#: below what would let one peer exhaust the server's memory.
DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024

#: Default bound on an admin text line (gearmand's receive buffer size).
DEFAULT_MAX_LINE_LENGTH = 8192

#: Bodies of at least this many bytes that do not arrive in one read are
#: collected in a buffer of their own, as they come (L{Decoder.bodySize}).
#: Twisted reads 64 KiB at a time, so smaller packets split across reads
#: take the ordinary path.
LARGE_BODY = 64 * 1024

_HEADER = struct.Struct(">4sII")
HEADER_SIZE = _HEADER.size


class PacketType(IntEnum):
    """
    Every Gearman packet type, numbered as on the wire.
    """

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    UNUSED = 5
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


_T = PacketType


class Priority(IntEnum):
    """
    Gearman's three job priorities, numbered as gearmand numbers them (and
    as stores record them).
    """

    HIGH = 0
    NORMAL = 1
    LOW = 2


#: The six plain submit packet types, each with the priority and the
#: background flag it stands for: the one table both ends of the wire read.
SUBMITS: dict[PacketType, tuple[Priority, bool]] = {
    _T.SUBMIT_JOB: (Priority.NORMAL, False),
    _T.SUBMIT_JOB_BG: (Priority.NORMAL, True),
    _T.SUBMIT_JOB_HIGH: (Priority.HIGH, False),
    _T.SUBMIT_JOB_HIGH_BG: (Priority.HIGH, True),
    _T.SUBMIT_JOB_LOW: (Priority.LOW, False),
    _T.SUBMIT_JOB_LOW_BG: (Priority.LOW, True),
}

_SUBMIT_TYPES = {kind: ptype for ptype, kind in SUBMITS.items()}


def submitType(priority: Priority, background: bool) -> PacketType:
    """
    The plain submit packet type for a job of C{priority}, in the
    background or not.
    """
    return _SUBMIT_TYPES[(priority, background)]


def packetHandlers(cls: type, default: object = None) -> tuple[Any, ...]:
    """
    The dispatch table of a protocol class: indexed by wire number, the
    C{packet_<NAME>} attribute C{cls} has for each packet type, or
    C{default} for a type it has no handler for (and for the unused
    numbers).

    Looked up on C{cls} itself, so a subclass's override is in its table.
    A protocol builds its table once per class, when the class is made,
    so that each packet costs one tuple index, not a name lookup.
    """
    return tuple(
        getattr(cls, "packet_" + _T(n).name, default)
        if n in _T._value2member_map_
        else default
        for n in range(max(_T) + 1)
    )


#: How each packet body splits into arguments: C{(count, hasData)}.  With
#: C{hasData}, C{count} NUL-terminated arguments are followed by opaque data
#: that may contain NULs; without it, the last of C{count} arguments runs to
#: the end of the body.  Either way the body is split into
#: C{count + hasData} parts at the first C{count + hasData - 1} NULs.
ARGUMENTS: dict[PacketType, tuple[int, bool]] = {
    _T.CAN_DO: (1, False),
    _T.CANT_DO: (1, False),
    _T.RESET_ABILITIES: (0, False),
    _T.PRE_SLEEP: (0, False),
    _T.UNUSED: (0, False),
    _T.NOOP: (0, False),
    _T.SUBMIT_JOB: (2, True),
    _T.JOB_CREATED: (1, False),
    _T.GRAB_JOB: (0, False),
    _T.NO_JOB: (0, False),
    _T.JOB_ASSIGN: (2, True),
    _T.WORK_STATUS: (3, False),
    _T.WORK_COMPLETE: (1, True),
    _T.WORK_FAIL: (1, False),
    _T.GET_STATUS: (1, False),
    _T.ECHO_REQ: (0, True),
    _T.ECHO_RES: (0, True),
    _T.SUBMIT_JOB_BG: (2, True),
    _T.ERROR: (2, False),
    _T.STATUS_RES: (5, False),
    _T.SUBMIT_JOB_HIGH: (2, True),
    _T.SET_CLIENT_ID: (1, False),
    _T.CAN_DO_TIMEOUT: (2, False),
    _T.ALL_YOURS: (0, False),
    _T.WORK_EXCEPTION: (1, True),
    _T.OPTION_REQ: (1, False),
    _T.OPTION_RES: (1, False),
    _T.WORK_DATA: (1, True),
    _T.WORK_WARNING: (1, True),
    _T.GRAB_JOB_UNIQ: (0, False),
    _T.JOB_ASSIGN_UNIQ: (3, True),
    _T.SUBMIT_JOB_HIGH_BG: (2, True),
    _T.SUBMIT_JOB_LOW: (2, True),
    _T.SUBMIT_JOB_LOW_BG: (2, True),
    _T.SUBMIT_JOB_SCHED: (7, True),
    _T.SUBMIT_JOB_EPOCH: (3, True),
    _T.SUBMIT_REDUCE_JOB: (4, True),
    _T.SUBMIT_REDUCE_JOB_BACKGROUND: (4, True),
    _T.GRAB_JOB_ALL: (0, False),
    _T.JOB_ASSIGN_ALL: (4, True),
    _T.GET_STATUS_UNIQUE: (1, False),
    _T.STATUS_RES_UNIQUE: (6, False),
}

# Indexed by the wire number: (PacketType, number of parts) or None.  A
# tuple lookup is the cheapest way from an int to both facts on the
# per-packet path.
_BY_NUMBER: tuple[tuple[PacketType, int] | None, ...] = tuple(
    (_T(n), ARGUMENTS[_T(n)][0] + ARGUMENTS[_T(n)][1])
    if n in _T._value2member_map_
    else None
    for n in range(max(_T) + 1)
)


class Packet(NamedTuple):
    """
    One decoded binary packet.

    @ivar magic: L{REQ} or L{RES}.
    @ivar type: the packet type.
    @ivar args: the body split into arguments per L{ARGUMENTS}.
    """

    magic: bytes
    type: PacketType
    args: tuple[bytes, ...]


class AdminLine(NamedTuple):
    """
    One text (admin protocol) line, without its C{\\n} or C{\\r\\n}.
    """

    line: bytes


class ProtocolError(Exception):
    """
    The stream cannot be decoded any further.

    @ivar code: the Gearman error code to report to the peer.
    """

    code = b"INVALID_PACKET"

    @property
    def text(self) -> bytes:
        return str(self).encode("utf-8", "replace")


class BadMagic(ProtocolError):
    """A binary header whose magic is neither C{\\0REQ} nor C{\\0RES}."""

    code = b"INVALID_MAGIC"


class UnknownPacketType(ProtocolError):
    """A packet type outside 1..42."""

    code = b"INVALID_COMMAND"


class PacketTooLarge(ProtocolError):
    """A declared body size above the decoder's bound."""

    code = b"ARGUMENT_TOO_LARGE"


class MalformedPacket(ProtocolError):
    """A body with fewer NUL separators than its type requires."""

    code = b"INVALID_ARGUMENTS"


class LineTooLong(ProtocolError):
    """A text line longer than the decoder's bound."""

    code = b"ARGUMENT_TOO_LARGE"


def splitArguments(ptype: PacketType, body: bytes) -> tuple[bytes, ...]:
    """
    Split a packet body into its arguments.

    @raise MalformedPacket: if the body has too few NUL separators.
    """
    count, hasData = ARGUMENTS[ptype]
    return _split(ptype, count + hasData, body)


#: The packets whose body may be a job handle alone, meaning empty data.
_BARE_HANDLE_TYPES = frozenset(
    {_T.WORK_COMPLETE, _T.WORK_EXCEPTION, _T.WORK_DATA, _T.WORK_WARNING}
)


def _split(ptype: PacketType, parts: int, body: bytes) -> tuple[bytes, ...]:
    """
    Split C{body} at its first C{parts - 1} NULs.

    @raise MalformedPacket: if the body has too few NUL separators.
    """
    if parts == 0:
        return ()
    if parts == 1:
        return (body,)
    args = body.split(b"\0", parts - 1)
    if len(args) != parts:
        if parts == 2 and ptype in _BARE_HANDLE_TYPES:
            # A bare handle: what Perl's Gearman::Worker sends when the work
            # function returns a false value; gearmand takes it as no data.
            return (body, b"")
        raise MalformedPacket(
            f"{ptype.name} needs {parts} NUL-separated parts, got {len(args)}"
        )
    return tuple(args)


def _splitBody(ptype: PacketType, parts: int, body: mmap.mmap) -> tuple[bytes, ...]:
    """
    L{_split} for a large body collected in a memory map: each argument is
    copied out once, so the body and its arguments are the most held at
    once (splitting C{bytes(body)} would make a third copy).

    @raise MalformedPacket: if the body has too few NUL separators.
    """
    if parts == 0:
        return ()
    args: list[bytes] = []
    start = 0
    for _ in range(parts - 1):
        end = body.find(b"\0", start)
        if end < 0:
            if parts == 2 and ptype in _BARE_HANDLE_TYPES:
                return (body[:], b"")
            raise MalformedPacket(
                f"{ptype.name} needs {parts} NUL-separated parts, got {len(args) + 1}"
            )
        args.append(body[start:end])
        start = end + 1
    args.append(body[start:])
    return tuple(args)


def encode(magic: bytes, ptype: int, args: tuple[bytes, ...] | list[bytes]) -> bytes:
    """
    Encode one packet: C{args} joined by NULs form the body.
    """
    body = b"\0".join(args)
    return _HEADER.pack(magic, ptype, len(body)) + body


def encodeRequest(ptype: int, *args: bytes) -> bytes:
    """Encode a C{\\0REQ} packet (what clients and workers send)."""
    return encode(REQ, ptype, args)


def encodeResponse(ptype: int, *args: bytes) -> bytes:
    """Encode a C{\\0RES} packet (what the server sends)."""
    return encode(RES, ptype, args)


class Decoder:
    """
    Incremental decoder for one connection's byte stream.

    Feed it bytes and take the complete packets and lines: all at once with
    L{decode}, or one at a time with L{feed} and L{next}.  It never buffers
    more than one packet beyond its declared size, never reads a body past
    its declared size, and joins partial chunks only once a whole packet
    has arrived (so a large payload costs one copy, not one per chunk).
    A body of L{LARGE_BODY} bytes or more that does not arrive at once is
    collected in a memory map of its own, and L{bodySize} announces it, so
    that a server can count what its connections hold.

    A malformed stream spends the decoder: its framing is lost and the
    connection should be closed.  L{decode} then returns what came before
    the fault and sets L{failed}; L{next} returns those events, then
    raises.
    """

    def __init__(
        self,
        maxPacketSize: int = DEFAULT_MAX_PACKET_SIZE,
        maxLineLength: int = DEFAULT_MAX_LINE_LENGTH,
        largeBody: int = LARGE_BODY,
    ) -> None:
        """
        @param largeBody: the size from which a body that does not arrive
            at once is collected on its own (see L{LARGE_BODY}).
        """
        self.maxPacketSize = maxPacketSize
        self.maxLineLength = maxLineLength
        self.largeBody = largeBody
        self._buf = b""
        self._pos = 0
        self._chunks: list[bytes] = []
        self._chunked = 0
        # How many more bytes must arrive before anything can be decoded.
        self._need = 0
        # The large body being collected: what came with its header, until
        # more comes and it moves to a map of its own; and its packet's
        # magic, type and number of arguments.
        self._bodyHead = b""
        self._body: mmap.mmap | None = None
        self._bodyPacket: tuple[bytes, PacketType, int] = (REQ, _T.NOOP, 0)
        #: The announced size of the large body being collected, or 0.
        self.bodySize = 0
        #: Counts the large bodies started and finished (or dropped): a
        #: reader compares it with the count it saw last, one test a read,
        #: to learn that L{bodySize} has a new meaning.
        self.bodyMoves = 0
        # Events decoded ahead by next(); made on first use, since the
        # server decodes with decode() and a deque costs over 600 bytes
        # per connection.
        self._ready: deque[Packet | AdminLine] | None = None
        #: Why the stream cannot be decoded any further, once it cannot.
        self.failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet decoded."""
        held = len(self._buf) - self._pos + self._chunked
        if self.bodySize:
            body = self._body
            held += HEADER_SIZE + (len(self._bodyHead) if body is None else body.tell())
        return held

    def discard(self) -> None:
        """
        Let go of everything buffered, at once: the connection is gone, and
        its partial packet (up to the packet size limit) should not wait
        for the garbage collector to find the protocol that holds us.
        """
        self._buf = b""
        self._pos = 0
        self._chunks = []
        self._chunked = 0
        self._need = 0
        if self.bodySize:
            if self._body is not None:
                self._body.close()
                self._body = None
            self._bodyHead = b""
            self.bodySize = 0
            self.bodyMoves += 1
        self._ready = None

    def feed(self, data: bytes) -> None:
        """
        Add received bytes.
        """
        if self.failed is not None:
            return
        if self.bodySize:
            body = self._body
            if body is None:
                body = self._openBody()
                if body is None:
                    return
            room = self.bodySize - body.tell()
            if len(data) < room:
                body.write(data)
                return
            with memoryview(data) as view:
                body.write(view[:room])
            data = data[room:]
            self._finishBody()
            if not data or self.failed is not None:
                return
        if self._need:
            self._chunks.append(data)
            self._chunked += len(data)
            if self._chunked < self._need:
                return
            data = b"".join(self._chunks)
            self._chunks = []
            self._chunked = 0
            self._need = 0
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
        else:
            self._buf = data
        self._pos = 0

    def decode(self, data: bytes) -> list[Packet | AdminLine]:
        """
        Add received bytes and return every packet and line now complete,
        in order.  Never raises: on a malformed stream, the events before
        the fault are returned and L{failed} is set.

        One call per read, with one loop inside, is what the server's
        per-packet path can afford.
        """
        self.feed(data)
        events: list[Packet | AdminLine] = []
        if self._ready:
            events.extend(self._ready)
            self._ready.clear()
        self._decodeInto(events)
        return events

    def next(self) -> Packet | AdminLine | None:
        """
        Decode the next complete packet or line, or return C{None} if more
        bytes are needed.

        @raise ProtocolError: the stream is malformed.
        """
        ready = self._ready
        if ready is None:
            ready = self._ready = deque()
        if not ready:
            self._decodeInto(ready)
            if not ready:
                if self.failed is not None:
                    raise self.failed
                return None
        return ready.popleft()

    def _decodeInto(
        self, out: list[Packet | AdminLine] | deque[Packet | AdminLine]
    ) -> None:
        """
        Append every complete event in the buffer to C{out}; on a fault,
        spend the decoder.
        """
        if self.failed is not None or self._need or self.bodySize:
            return
        buf = self._buf
        pos = self._pos
        size = len(buf)
        append = out.append
        try:
            while pos < size:
                if buf[pos] == 0:
                    if size - pos < HEADER_SIZE:
                        self._need = HEADER_SIZE - (size - pos)
                        break
                    magic, number, length = _unpackHeader(buf, pos)
                    if magic != REQ and magic != RES:
                        raise BadMagic(f"bad magic {magic!r}")
                    spec = _BY_NUMBER[number] if number < len(_BY_NUMBER) else None
                    if spec is None:
                        raise UnknownPacketType(f"unknown packet type {number}")
                    if length > self.maxPacketSize:
                        raise PacketTooLarge(
                            f"packet of {length} bytes exceeds the limit of "
                            f"{self.maxPacketSize} bytes"
                        )
                    end = pos + HEADER_SIZE + length
                    if end > size:
                        if length >= self.largeBody:
                            self._startBody(magic, spec, buf, pos + HEADER_SIZE, length)
                            pos = size
                        else:
                            self._need = end - size
                        break
                    ptype, parts = spec
                    args = _split(ptype, parts, buf[pos + HEADER_SIZE : end])
                    pos = end
                    append(_newTuple(Packet, (magic, ptype, args)))
                    continue
                end = buf.find(b"\n", pos)
                if end < 0:
                    if size - pos > self.maxLineLength:
                        raise LineTooLong(
                            f"text line exceeds {self.maxLineLength} bytes"
                        )
                    self._need = 1
                    break
                if end - pos > self.maxLineLength:
                    raise LineTooLong(f"text line exceeds {self.maxLineLength} bytes")
                line = buf[pos : end - 1 if end > pos and buf[end - 1] == 13 else end]
                pos = end + 1
                append(_newTuple(AdminLine, (line,)))
        except ProtocolError as error:
            self._fail(error)
            return
        if pos >= size:
            # Everything was decoded: let go of the buffer (it may hold a
            # large payload) rather than keep it until the next read.
            self._buf = b""
            self._pos = 0
        else:
            self._pos = pos

    def _startBody(
        self,
        magic: bytes,
        spec: tuple[PacketType, int],
        buf: bytes,
        start: int,
        length: int,
    ) -> None:
        """
        Collect the large body announced by a header, from what of it
        C{buf} holds from C{start} on.  That part is kept as it is until
        more of the body comes: a reader that does not want the body yet
        (the server, while its budget has no room) stops reading, and then
        holds no more than this for it.
        """
        self._bodyHead = buf[start:]
        self._bodyPacket = (magic, spec[0], spec[1])
        self.bodySize = length
        self.bodyMoves += 1

    def _openBody(self) -> mmap.mmap | None:
        """
        More of the large body came: move it into an anonymous memory map of
        the announced size, whose pages are taken only as the body arrives
        and given back to the system when it is closed.  (Bytes joined from
        a list of reads, or a growing bytearray, come from the allocator,
        which keeps freed blocks below 32 MiB in its heap, and their pages
        with them, long after the connection is gone.)

        @return: the map, or C{None} if the system refused it (then the
            decoder is spent, since the body cannot be read).
        """
        try:
            body = mmap.mmap(-1, self.bodySize)
        except OSError as e:
            self._fail(
                PacketTooLarge(f"no memory for a packet of {self.bodySize} bytes: {e}")
            )
            return None
        body.write(self._bodyHead)
        self._bodyHead = b""
        self._body = body
        return body

    def _finishBody(self) -> None:
        """
        The large body is complete: make its packet ready.
        """
        body = self._body
        assert body is not None
        magic, ptype, parts = self._bodyPacket
        self._body = None
        self._bodyHead = b""
        self.bodySize = 0
        self.bodyMoves += 1
        try:
            args = _splitBody(ptype, parts, body)
        except ProtocolError as error:
            self._fail(error)
            return
        finally:
            body.close()
        ready = self._ready
        if ready is None:
            ready = self._ready = deque()
        ready.append(_newTuple(Packet, (magic, ptype, args)))

    def _fail(self, error: ProtocolError) -> None:
        """Spend the decoder: its framing is lost."""
        self.failed = error
        ready = self._ready
        self.discard()
        # What was decoded before the fault is still given out.
        self._ready = ready


_unpackHeader = _HEADER.unpack_from
# Build decoded named tuples without their Python-level __new__ (about
# half the cost of each, on the per-packet path).
_newTuple = tuple.__new__


# Control characters (C0, DEL, C1) and the Unicode line and paragraph
# separators: what could end a log line early, or drive a terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(data: bytes, limit: int = 120) -> str:
    """
    Bytes a peer chose (a function name, a unique id, an admin command) as
    text that is safe in a log line: UTF-8 where it is valid, every other
    byte and every control character (a newline that would forge a line,
    an ANSI escape) written as C{\\xNN}, and cut after C{limit}
    characters, saying how long it was.
    """
    text = _UNPRINTABLE.sub(
        _escape, data[: limit * 4].decode("utf-8", "backslashreplace")
    )
    if len(text) > limit:
        return f"{text[:limit]}... ({len(data)} bytes)"
    return text
