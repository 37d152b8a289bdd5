"""
Tests for L{txgearman.codec}: packet encoding, argument splitting and the
incremental L{Decoder}.
"""

from __future__ import annotations

import mmap
import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from txgearman import codec
from txgearman.codec import (
    ARGUMENTS,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_PACKET_SIZE,
    LARGE_BODY,
    REQ,
    RES,
    AdminLine,
    BadMagic,
    Decoder,
    LineTooLong,
    MalformedPacket,
    Packet,
    PacketTooLarge,
    PacketType,
    ProtocolError,
    UnknownPacketType,
    encode,
    encodeRequest,
    encodeResponse,
    printable,
    splitArguments,
)

_T = PacketType


def parts(ptype: PacketType) -> int:
    """How many arguments a packet of C{ptype} decodes into."""
    count, hasData = ARGUMENTS[ptype]
    return count + hasData


def sampleArgs(ptype: PacketType) -> tuple[bytes, ...]:
    """
    Distinct arguments for C{ptype}; the last one contains NULs where the
    type allows it (it always runs to the end of the body).
    """
    n = parts(ptype)
    if n == 0:
        return ()
    return (*tuple(b"arg%d" % i for i in range(n - 1)), b"last\x00with\x00nuls")


def drain(decoder: Decoder) -> list[Packet | AdminLine]:
    """Everything the decoder can decode now."""
    out: list[Packet | AdminLine] = []
    while True:
        event = decoder.next()
        if event is None:
            return out
        out.append(event)


def decodeChunks(
    chunks: list[bytes], decoder: Decoder | None = None
) -> list[Packet | AdminLine]:
    """Feed C{chunks} one by one, draining after each."""
    decoder = decoder if decoder is not None else Decoder()
    out: list[Packet | AdminLine] = []
    for chunk in chunks:
        decoder.feed(chunk)
        out.extend(drain(decoder))
    return out


def header(magic: bytes, number: int, size: int) -> bytes:
    return magic + struct.pack(">II", number, size)


class ArgumentTableTests(unittest.SynchronousTestCase):
    """
    L{ARGUMENTS} describes every packet type as gearmand's command table does.
    """

    def test_everyTypeHasARule(self) -> None:
        """
        Every L{PacketType} from 1 to 42 has an argument rule.
        """
        self.assertEqual(sorted(ARGUMENTS), sorted(PacketType))
        self.assertEqual([int(t) for t in sorted(PacketType)], list(range(1, 43)))

    def test_gearmandCounts(self) -> None:
        """
        A sample of the counts from gearmand's command table, including the
        4+data of the reduce submits and the 7+data of SUBMIT_JOB_SCHED.
        """
        T = PacketType
        self.assertEqual(parts(T.GRAB_JOB), 0)
        self.assertEqual(parts(T.CAN_DO), 1)
        self.assertEqual(parts(T.ECHO_REQ), 1)
        self.assertEqual(parts(T.SUBMIT_JOB), 3)
        self.assertEqual(parts(T.WORK_STATUS), 3)
        self.assertEqual(parts(T.STATUS_RES), 5)
        self.assertEqual(parts(T.SUBMIT_JOB_EPOCH), 4)
        self.assertEqual(parts(T.SUBMIT_JOB_SCHED), 8)
        self.assertEqual(parts(T.SUBMIT_REDUCE_JOB), 5)
        self.assertEqual(parts(T.SUBMIT_REDUCE_JOB_BACKGROUND), 5)
        self.assertEqual(parts(T.JOB_ASSIGN_ALL), 5)
        self.assertEqual(parts(T.STATUS_RES_UNIQUE), 6)


class EncodeTests(unittest.SynchronousTestCase):
    """
    L{encode}, L{encodeRequest} and L{encodeResponse} produce the wire format.
    """

    def test_protocolExample(self) -> None:
        """
        The SUBMIT_JOB / JOB_CREATED example of the Gearman protocol
        document encodes byte for byte.
        """
        self.assertEqual(
            encodeRequest(PacketType.SUBMIT_JOB, b"reverse", b"", b"test"),
            b"\0REQ\0\0\0\x07\0\0\0\x0dreverse\0\0test",
        )
        self.assertEqual(
            encodeResponse(PacketType.JOB_CREATED, b"H:lap:1"),
            b"\0RES\0\0\0\x08\0\0\0\x07H:lap:1",
        )

    def test_noArguments(self) -> None:
        """
        A packet without arguments is a bare header with a zero size.
        """
        self.assertEqual(encodeResponse(PacketType.NOOP), b"\0RES\0\0\0\x06\0\0\0\0")
        self.assertEqual(encode(REQ, 9, []), b"\0REQ\0\0\0\x09\0\0\0\0")


class SplitArgumentsTests(unittest.SynchronousTestCase):
    """
    L{splitArguments} splits a body at the first C{parts - 1} NULs.
    """

    def test_everyType(self) -> None:
        """
        Joining a type's arguments and splitting them again gives them back.
        """
        for ptype in PacketType:
            args = sampleArgs(ptype)
            self.assertEqual(splitArguments(ptype, b"\0".join(args)), args, ptype)

    def test_bodyIgnoredWithoutArguments(self) -> None:
        """
        A type without arguments decodes to no arguments whatever its body.
        """
        self.assertEqual(splitArguments(PacketType.GRAB_JOB, b"junk"), ())

    def test_tooFewNuls(self) -> None:
        """
        A body with too few NULs raises L{MalformedPacket}.
        """
        self.assertRaises(
            MalformedPacket, splitArguments, PacketType.SUBMIT_JOB, b"fn\0uniq"
        )
        self.assertRaises(MalformedPacket, splitArguments, PacketType.WORK_STATUS, b"")

    def test_bareHandle(self) -> None:
        """
        A C{WORK_COMPLETE}, C{WORK_EXCEPTION}, C{WORK_DATA} or
        C{WORK_WARNING} body that is only a job handle (no NUL, no data), as
        Perl's Gearman::Worker sends for a false result, is that handle
        with empty data, as gearmand takes it.  Other packets of a handle
        and data still need the NUL.
        """
        for ptype in [
            PacketType.WORK_COMPLETE,
            PacketType.WORK_EXCEPTION,
            PacketType.WORK_DATA,
            PacketType.WORK_WARNING,
        ]:
            self.assertEqual(splitArguments(ptype, b"H:host:1"), (b"H:host:1", b""))
            decoder = Decoder()
            decoder.feed(encodeRequest(ptype, b"H:host:1"))
            self.assertEqual(decoder.next(), Packet(REQ, ptype, (b"H:host:1", b"")))
        self.assertRaises(
            MalformedPacket, splitArguments, PacketType.WORK_STATUS, b"H:1"
        )
        self.assertRaises(
            MalformedPacket, splitArguments, PacketType.JOB_ASSIGN, b"H:1"
        )


class DecoderTests(unittest.SynchronousTestCase):
    """
    L{Decoder} turns a byte stream into packets and admin lines.
    """

    def test_everyTypeRoundTrips(self) -> None:
        """
        Every packet type, with its arguments, decodes to what was encoded,
        with either magic.
        """
        for ptype in PacketType:
            args = sampleArgs(ptype)
            for magic in (REQ, RES):
                decoder = Decoder()
                decoder.feed(encode(magic, ptype, args))
                self.assertEqual(drain(decoder), [Packet(magic, ptype, args)], ptype)
                self.assertEqual(decoder.buffered, 0)

    def test_typeIsPacketType(self) -> None:
        """
        A decoded packet's type is a L{PacketType} member.
        """
        decoder = Decoder()
        decoder.feed(encodeRequest(PacketType.CAN_DO, b"fn"))
        packet = decoder.next()
        assert isinstance(packet, Packet)
        self.assertIs(packet.type, PacketType.CAN_DO)

    def test_bodyOfArgumentlessTypeDiscarded(self) -> None:
        """
        A GRAB_JOB carrying a body decodes to no arguments, and the body does
        not leak into the next packet.
        """
        stream = header(REQ, 9, 4) + b"abcd" + encodeRequest(PacketType.ECHO_REQ, b"x")
        self.assertEqual(
            decodeChunks([stream]),
            [
                Packet(REQ, PacketType.GRAB_JOB, ()),
                Packet(REQ, PacketType.ECHO_REQ, (b"x",)),
            ],
        )

    def test_emptyLastArgument(self) -> None:
        """
        Empty arguments, including an empty last one, are kept.
        """
        decoder = Decoder()
        decoder.feed(encodeRequest(PacketType.SUBMIT_JOB, b"f", b"", b""))
        self.assertEqual(
            decoder.next(), Packet(REQ, PacketType.SUBMIT_JOB, (b"f", b"", b""))
        )

    def test_nulsInDataPreserved(self) -> None:
        """
        NUL bytes in the opaque data are part of the data, not separators.
        """
        data = b"\0\0a\0b\0\0"
        decoder = Decoder()
        decoder.feed(encodeRequest(PacketType.SUBMIT_JOB_BG, b"fn", b"u", data))
        decoder.feed(encodeRequest(PacketType.ECHO_REQ, data))
        self.assertEqual(
            drain(decoder),
            [
                Packet(REQ, PacketType.SUBMIT_JOB_BG, (b"fn", b"u", data)),
                Packet(REQ, PacketType.ECHO_REQ, (data,)),
            ],
        )

    def test_byteByByte(self) -> None:
        """
        A stream fed one byte at a time decodes to the same events, each
        only once it is complete.
        """
        packets = [
            encodeRequest(PacketType.SUBMIT_JOB, b"reverse", b"u1", b"payload\0x"),
            encodeRequest(PacketType.GRAB_JOB),
            encodeRequest(PacketType.WORK_STATUS, b"H:x:1", b"1", b"2"),
        ]
        stream = b"".join(packets)
        decoder = Decoder()
        events = []
        ends = {sum(len(p) for p in packets[: i + 1]) for i in range(len(packets))}
        for i in range(len(stream)):
            decoder.feed(stream[i : i + 1])
            got = drain(decoder)
            if i + 1 in ends:
                self.assertEqual(len(got), 1, i)
            else:
                self.assertEqual(got, [], i)
            events.extend(got)
        self.assertEqual(events, decodeChunks([stream]))
        self.assertEqual(len(events), 3)

    def test_randomChunkings(self) -> None:
        """
        However a stream is cut into chunks, it decodes to the same events.
        """
        stream = (
            encodeRequest(PacketType.SUBMIT_JOB_HIGH_BG, b"f", b"u", b"d" * 300)
            + b"status\r\n"
            + encodeRequest(PacketType.PRE_SLEEP)
            + b"workers\n"
            + encodeRequest(PacketType.ECHO_REQ, bytes(range(256)) * 4)
            + encodeRequest(
                PacketType.SUBMIT_JOB_SCHED, b"f", b"u", *[b"*"] * 5, b"data"
            )
        )
        expected = decodeChunks([stream])
        self.assertEqual(len(expected), 6)
        rng = random.Random(4730)
        for _ in range(200):
            cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 30)))
            chunks = [
                stream[a:b]
                for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=False)
            ]
            self.assertEqual(decodeChunks(chunks), expected, cuts)

    def test_mixedTextAndBinary(self) -> None:
        """
        Admin lines ending in C{\\r\\n} or C{\\n} and binary packets decode
        in stream order, without their line endings.
        """
        stream = (
            b"status\r\n"
            + encodeRequest(PacketType.ECHO_REQ, b"ping")
            + b"workers\n"
            + b"\n"
            + b"\r\n"
            + encodeRequest(PacketType.CAN_DO, b"fn")
            + b"version"
        )
        decoder = Decoder()
        decoder.feed(stream)
        self.assertEqual(
            drain(decoder),
            [
                AdminLine(b"status"),
                Packet(REQ, PacketType.ECHO_REQ, (b"ping",)),
                AdminLine(b"workers"),
                AdminLine(b""),
                AdminLine(b""),
                Packet(REQ, PacketType.CAN_DO, (b"fn",)),
            ],
        )
        self.assertEqual(decoder.buffered, len(b"version"))
        decoder.feed(b"\n")
        self.assertEqual(drain(decoder), [AdminLine(b"version")])

    def test_onlyTrailingCarriageReturnStripped(self) -> None:
        """
        Only a C{\\r} right before the C{\\n} is removed; other C{\\r}s and
        whitespace stay.
        """
        decoder = Decoder()
        decoder.feed(b"a\rb \r\r\n")
        self.assertEqual(decoder.next(), AdminLine(b"a\rb \r"))

    def test_largePacketInChunks(self) -> None:
        """
        A packet of several MiB fed in 64 KiB chunks decodes once, intact,
        when its last byte arrives; C{buffered} counts what has arrived.
        """
        data = bytes(range(256)) * (5 * 4096) + b"\0tail"
        stream = encodeRequest(PacketType.SUBMIT_JOB_BG, b"big", b"", data)
        decoder = Decoder()
        chunk = 64 * 1024
        fed = 0
        for start in range(0, len(stream) - chunk, chunk):
            decoder.feed(stream[start : start + chunk])
            fed += chunk
            self.assertIsNone(decoder.next())
            self.assertEqual(decoder.buffered, fed)
        decoder.feed(stream[fed:] + encodeRequest(PacketType.NOOP))
        self.assertEqual(
            decoder.next(), Packet(REQ, PacketType.SUBMIT_JOB_BG, (b"big", b"", data))
        )
        self.assertEqual(decoder.next(), Packet(REQ, PacketType.NOOP, ()))
        self.assertIsNone(decoder.next())
        self.assertEqual(decoder.buffered, 0)

    def test_largeBodyAnnounced(self) -> None:
        """
        A body of L{LARGE_BODY} bytes or more that does not arrive at once
        is announced by C{bodySize} from its header's read until its last
        byte's, and C{bodyMoves} counts its start and its end; what follows
        it in the last read is decoded too, even another large body.
        """
        data = b"d" * LARGE_BODY
        stream = encodeRequest(PacketType.SUBMIT_JOB, b"f", b"", data)
        noop = encodeRequest(PacketType.NOOP)
        decoder = Decoder()
        self.assertEqual((decoder.bodySize, decoder.bodyMoves), (0, 0))
        self.assertEqual(
            decoder.decode(noop + stream[:1000]), [Packet(REQ, _T.NOOP, ())]
        )
        self.assertEqual(decoder.bodySize, len(stream) - 12)
        self.assertEqual(decoder.bodyMoves, 1)
        self.assertEqual(decoder.buffered, 1000)
        self.assertEqual(decoder.decode(stream[1000:-1]), [])
        self.assertEqual(decoder.buffered, len(stream) - 1)
        self.assertEqual(decoder.bodyMoves, 1)
        events = decoder.decode(stream[-1:] + noop + stream[:20])
        self.assertEqual(
            events,
            [Packet(REQ, _T.SUBMIT_JOB, (b"f", b"", data)), Packet(REQ, _T.NOOP, ())],
        )
        # The next large body, begun in the same read.
        self.assertEqual(decoder.bodyMoves, 3)
        self.assertEqual(decoder.buffered, 20)
        self.assertEqual(decoder.decode(stream[20:] + b"v"), [events[0]])
        self.assertEqual((decoder.bodySize, decoder.bodyMoves), (0, 4))
        self.assertEqual(decoder.buffered, 1)

    def test_largeBodyMappedWhenMoreComes(self) -> None:
        """
        What of a large body came with its header is kept as it is; only
        once more comes is the body given a memory map of its announced
        size (so that a reader that stops reading holds one read for it).
        """
        maps: list[int] = []
        real = codec.mmap.mmap

        def recording(fileno: int, length: int) -> mmap.mmap:
            maps.append(length)
            return real(fileno, length)

        self.patch(codec.mmap, "mmap", recording)
        stream = encodeRequest(PacketType.ECHO_REQ, b"e" * LARGE_BODY)
        decoder = Decoder()
        decoder.decode(stream[:5000])
        self.assertEqual((maps, decoder.buffered), ([], 5000))
        decoder.decode(stream[5000:6000])
        self.assertEqual((maps, decoder.buffered), ([LARGE_BODY], 6000))
        self.assertEqual(len(decoder.decode(stream[6000:])), 1)

    def test_noMemoryForLargeBody(self) -> None:
        """
        A large body the system refuses memory for spends the decoder, as
        too large, saying so.
        """

        def refusing(fileno: int, length: int) -> mmap.mmap:
            raise OSError(12, "Cannot allocate memory")

        self.patch(codec.mmap, "mmap", refusing)
        stream = encodeRequest(PacketType.ECHO_REQ, b"e" * LARGE_BODY)
        decoder = Decoder()
        decoder.decode(stream[:5000])
        self.assertEqual(decoder.decode(stream[5000:]), [])
        self.assertIsInstance(decoder.failed, PacketTooLarge)
        self.assertIn(
            f"no memory for a packet of {LARGE_BODY} bytes", str(decoder.failed)
        )
        self.assertEqual((decoder.buffered, decoder.bodySize), (0, 0))

    def test_largeBodyInOneRead(self) -> None:
        """
        A large packet that arrives whole is decoded as any other, never
        announced.
        """
        data = b"d" * (2 * LARGE_BODY)
        decoder = Decoder()
        events = decoder.decode(encodeRequest(PacketType.ECHO_REQ, data))
        self.assertEqual(events, [Packet(REQ, _T.ECHO_REQ, (data,))])
        self.assertEqual(decoder.bodyMoves, 0)

    def test_largeBodyArguments(self) -> None:
        """
        A large body is split into arguments as a small one: NULs in the
        data stay, a large bare handle means empty data, and a type without
        arguments ignores its body.
        """
        cases = [
            (_T.JOB_ASSIGN_UNIQ, (b"H:1", b"f", b"u", b"a\0" * LARGE_BODY)),
            (_T.WORK_DATA, (b"h" * LARGE_BODY, b"")),
            (_T.NOOP, ()),
        ]
        bodies = [b"\0".join(args) for _, args in cases]
        bodies[1] = b"h" * LARGE_BODY
        bodies[2] = b"x" * LARGE_BODY
        for (ptype, args), body in zip(cases, bodies, strict=True):
            stream = header(RES, ptype, len(body)) + body
            decoder = Decoder()
            self.assertEqual(decoder.decode(stream[:100]), [])
            self.assertEqual(decoder.decode(stream[100:]), [Packet(RES, ptype, args)])

    def test_discard(self) -> None:
        """
        L{Decoder.discard} lets go of a partial packet, large or small, and
        of events decoded ahead.
        """
        big = encodeRequest(PacketType.ECHO_REQ, b"e" * LARGE_BODY)
        for partial in (big[:-1], big[:100], b"stat"):
            decoder = Decoder()
            decoder.feed(
                encodeRequest(PacketType.NOOP) + encodeRequest(PacketType.NOOP)
            )
            decoder.next()
            decoder.decode(partial)
            moves = decoder.bodyMoves
            decoder.discard()
            self.assertEqual(decoder.buffered, 0)
            self.assertEqual(decoder.bodySize, 0)
            self.assertEqual(decoder.bodyMoves, moves + (moves == 1))
            self.assertIsNone(decoder.next())

    def test_buffered(self) -> None:
        """
        C{buffered} is the number of received bytes not yet decoded.
        """
        decoder = Decoder()
        self.assertEqual(decoder.buffered, 0)
        packet = encodeRequest(PacketType.ECHO_REQ, b"0123456789")
        decoder.feed(packet[:5])
        self.assertIsNone(decoder.next())
        self.assertEqual(decoder.buffered, 5)
        decoder.feed(packet[5:15])
        self.assertIsNone(decoder.next())
        self.assertEqual(decoder.buffered, 15)
        decoder.feed(packet[15:] + b"stat")
        self.assertEqual(decoder.buffered, len(packet) + 4)
        self.assertIsNotNone(decoder.next())
        self.assertEqual(decoder.buffered, 4)
        self.assertIsNone(decoder.next())
        self.assertEqual(decoder.buffered, 4)

    def test_nothingFed(self) -> None:
        """
        A decoder with no input has nothing to give.
        """
        decoder = Decoder()
        self.assertIsNone(decoder.next())
        decoder.feed(b"")
        self.assertIsNone(decoder.next())

    def test_defaults(self) -> None:
        """
        The default bounds are 64 MiB per packet and 8192 bytes per line.
        """
        decoder = Decoder()
        self.assertEqual(decoder.maxPacketSize, DEFAULT_MAX_PACKET_SIZE)
        self.assertEqual(DEFAULT_MAX_PACKET_SIZE, 64 * 1024 * 1024)
        self.assertEqual(decoder.maxLineLength, DEFAULT_MAX_LINE_LENGTH)
        self.assertEqual(DEFAULT_MAX_LINE_LENGTH, 8192)


class DecoderErrorTests(unittest.SynchronousTestCase):
    """
    L{Decoder.next} raises a L{ProtocolError} subclass carrying the Gearman
    error code once the stream cannot be framed, and stays failed.
    """

    def assertFails(
        self, decoder: Decoder, error: type[ProtocolError], code: bytes
    ) -> ProtocolError:
        """
        C{decoder.next()} raises C{error} with C{code}, and again on the
        next call, even after more input.
        """
        exc = self.assertRaises(error, decoder.next)
        self.assertEqual(exc.code, code)
        self.assertIsInstance(exc.text, bytes)
        self.assertTrue(exc.text)
        decoder.feed(encodeRequest(PacketType.NOOP))
        self.assertRaises(error, decoder.next)
        return exc

    def test_badMagic(self) -> None:
        """
        A binary header whose magic is neither C{\\0REQ} nor C{\\0RES}
        raises L{BadMagic}.
        """
        decoder = Decoder()
        decoder.feed(header(b"\0REX", 16, 0))
        self.assertFails(decoder, BadMagic, b"INVALID_MAGIC")

    def test_badMagicAfterGoodPackets(self) -> None:
        """
        Packets before the bad one are still decoded.
        """
        decoder = Decoder()
        decoder.feed(encodeRequest(PacketType.NOOP) + header(b"\0\0\0\0", 6, 0))
        self.assertEqual(decoder.next(), Packet(REQ, PacketType.NOOP, ()))
        self.assertFails(decoder, BadMagic, b"INVALID_MAGIC")

    def test_unknownTypes(self) -> None:
        """
        Types 0, 43 and anything above raise L{UnknownPacketType}.
        """
        for number in (0, 43, 50, 0xFFFFFFFF):
            decoder = Decoder()
            decoder.feed(header(REQ, number, 0))
            exc = self.assertFails(decoder, UnknownPacketType, b"INVALID_COMMAND")
            self.assertIn(str(number), str(exc))

    def test_malformedLargeBody(self) -> None:
        """
        A large body with too few NULs fails the decoder once it is
        complete, after the packets before it, and lets the body go.
        """
        body = b"no separators" * LARGE_BODY
        stream = encodeRequest(PacketType.NOOP) + header(REQ, 7, len(body)) + body
        decoder = Decoder()
        self.assertEqual(len(decoder.decode(stream[:100])), 1)
        self.assertEqual(decoder.decode(stream[100:]), [])
        self.assertIsInstance(decoder.failed, MalformedPacket)
        self.assertIn(
            "SUBMIT_JOB needs 3 NUL-separated parts, got 1", str(decoder.failed)
        )
        self.assertEqual((decoder.buffered, decoder.bodySize), (0, 0))

    def test_oversizedFromHeaderAlone(self) -> None:
        """
        A declared size above the bound raises L{PacketTooLarge} as soon as
        the header is in, without waiting for the body.
        """
        decoder = Decoder(maxPacketSize=1000)
        decoder.feed(header(REQ, 16, 1001))
        self.assertFails(decoder, PacketTooLarge, b"ARGUMENT_TOO_LARGE")

    def test_oversizedDefaultBound(self) -> None:
        """
        With the default bound, a header declaring 64 MiB + 1 is rejected.
        """
        decoder = Decoder()
        decoder.feed(header(REQ, 18, DEFAULT_MAX_PACKET_SIZE + 1) + b"f\0")
        self.assertRaises(PacketTooLarge, decoder.next)

    def test_sizeAtBoundAccepted(self) -> None:
        """
        A packet of exactly the bound is accepted.
        """
        decoder = Decoder(maxPacketSize=1000)
        decoder.feed(encodeRequest(PacketType.ECHO_REQ, b"x" * 1000))
        self.assertEqual(
            decoder.next(), Packet(REQ, PacketType.ECHO_REQ, (b"x" * 1000,))
        )

    def test_malformed(self) -> None:
        """
        A body with too few NULs for its type raises L{MalformedPacket}
        once the whole body is in, and does not swallow the next packet.
        """
        decoder = Decoder()
        decoder.feed(encodeRequest(PacketType.SUBMIT_JOB_BG, b"funconly"))
        self.assertFails(decoder, MalformedPacket, b"INVALID_ARGUMENTS")
        decoder = Decoder()
        decoder.feed(encodeRequest(PacketType.STATUS_RES_UNIQUE))
        self.assertFails(decoder, MalformedPacket, b"INVALID_ARGUMENTS")
        decoder = Decoder()
        decoder.feed(
            encodeRequest(PacketType.SUBMIT_REDUCE_JOB, b"f", b"u", b"r", b"data")
        )
        self.assertFails(decoder, MalformedPacket, b"INVALID_ARGUMENTS")

    def test_lineTooLongWithoutNewline(self) -> None:
        """
        Text beyond the line bound without a newline raises L{LineTooLong}
        without waiting for the end of the line.
        """
        decoder = Decoder()
        decoder.feed(b"x" * DEFAULT_MAX_LINE_LENGTH)
        self.assertIsNone(decoder.next())
        decoder.feed(b"x")
        self.assertFails(decoder, LineTooLong, b"ARGUMENT_TOO_LARGE")

    def test_lineTooLongWithNewline(self) -> None:
        """
        A complete line longer than the bound raises L{LineTooLong}.
        """
        decoder = Decoder(maxLineLength=10)
        decoder.feed(b"x" * 11 + b"\n")
        self.assertFails(decoder, LineTooLong, b"ARGUMENT_TOO_LARGE")

    def test_lineAtBound(self) -> None:
        """
        A line of exactly the bound, without its line ending, is accepted.
        """
        decoder = Decoder(maxLineLength=10)
        decoder.feed(b"x" * 10 + b"\nyyyyyyyyy\r\n")
        self.assertEqual(drain(decoder), [AdminLine(b"x" * 10), AdminLine(b"y" * 9)])

    def test_errorsAreProtocolErrors(self) -> None:
        """
        Every specific error is a L{ProtocolError}.
        """
        for error in (
            BadMagic,
            UnknownPacketType,
            PacketTooLarge,
            MalformedPacket,
            LineTooLong,
        ):
            self.assertTrue(issubclass(error, ProtocolError))
        self.assertEqual(ProtocolError.code, b"INVALID_PACKET")
        self.assertEqual(ProtocolError("caf\u00e9").text, "caf\u00e9".encode())


# Hypothesis strategies.

packetTypes = st.sampled_from(list(PacketType))
noNul = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"."))


@st.composite
def packetArgs(draw: st.DrawFn) -> tuple[PacketType, tuple[bytes, ...]]:
    ptype = draw(packetTypes)
    n = parts(ptype)
    if n == 0:
        return ptype, ()
    head = tuple(draw(noNul) for _ in range(n - 1))
    return ptype, (*head, draw(st.binary(max_size=200)))


# Byte streams biased towards plausible headers so that the decoder's
# deeper paths are reached, not just the text-line path.
fragments = st.one_of(
    st.binary(max_size=30),
    st.builds(
        lambda magic, number, size: magic + struct.pack(">II", number, size),
        st.sampled_from([REQ, RES, b"\0REZ", b"\0\0\0\0"]),
        st.integers(0, 45),
        st.integers(0, 64),
    ),
    packetArgs().map(lambda pa: encode(REQ, pa[0], pa[1])),
    st.sampled_from([b"\n", b"\r\n", b"\0", b"status\n"]),
)


class DecoderPropertyTests(unittest.SynchronousTestCase):
    """
    Properties of L{Decoder} over arbitrary input.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.lists(fragments, max_size=12), st.integers(1, 64))
    def test_arbitraryBytesOnlyProtocolError(
        self, pieces: list[bytes], chunk: int
    ) -> None:
        """
        Whatever bytes arrive, in whatever chunks, L{Decoder.next} returns
        events or C{None} or raises L{ProtocolError}, never anything else,
        and never produces more events than bytes (so it cannot spin).
        """
        stream = b"".join(pieces)
        decoder = Decoder(maxPacketSize=100, maxLineLength=50)
        events = 0
        try:
            for start in range(0, len(stream), chunk):
                decoder.feed(stream[start : start + chunk])
                while decoder.next() is not None:
                    events += 1
                    self.assertLessEqual(events, len(stream))
        except ProtocolError:
            self.assertRaises(ProtocolError, decoder.next)
        else:
            self.assertLessEqual(decoder.buffered, len(stream))

    @settings(max_examples=300, deadline=None)
    @given(st.lists(packetArgs(), min_size=1, max_size=8), st.integers(1, 100))
    def test_roundTrip(
        self, packets: list[tuple[PacketType, tuple[bytes, ...]]], chunk: int
    ) -> None:
        """
        Encoding packets with arbitrary arguments (NULs only in the last)
        and decoding the stream in arbitrary chunks gives them back.
        """
        stream = b"".join(encode(RES, ptype, args) for ptype, args in packets)
        chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
        decoder = Decoder()
        self.assertEqual(
            decodeChunks(chunks, decoder), [Packet(RES, t, a) for t, a in packets]
        )
        self.assertEqual(decoder.buffered, 0)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(fragments, max_size=12), st.integers(1, 64))
    def test_largeBodiesAsOthers(self, pieces: list[bytes], chunk: int) -> None:
        """
        Over arbitrary bytes in arbitrary chunks, a decoder that collects
        every split body on its own gives the events and the fault of one
        that collects none so.
        """
        stream = b"".join(pieces)
        ordinary = Decoder(maxPacketSize=100, maxLineLength=50)
        large = Decoder(maxPacketSize=100, maxLineLength=50, largeBody=1)
        viaOrdinary: list[Packet | AdminLine] = []
        viaLarge: list[Packet | AdminLine] = []
        for start in range(0, len(stream), chunk):
            piece = stream[start : start + chunk]
            viaOrdinary.extend(ordinary.decode(piece))
            viaLarge.extend(large.decode(piece))
            self.assertEqual(viaLarge, viaOrdinary)
            self.assertEqual(large.buffered, ordinary.buffered)
            self.assertEqual(type(large.failed), type(ordinary.failed))
            self.assertEqual(large.bodySize > 0, large.bodyMoves % 2 == 1)


class DecodeTests(unittest.SynchronousTestCase):
    """
    L{Decoder.decode}: every complete event of a read in one call, never
    raising.
    """

    def test_severalPacketsAndALine(self) -> None:
        """
        Packets and lines complete in the bytes come back in order; a
        partial packet waits for the rest.
        """
        decoder = Decoder()
        noop = encodeRequest(PacketType.NOOP)
        submit = encodeRequest(PacketType.SUBMIT_JOB, b"f", b"u", b"d\0ata")
        events = decoder.decode(noop + b"status\r\n" + submit + submit[:5])
        self.assertEqual(
            events,
            [
                Packet(REQ, PacketType.NOOP, ()),
                AdminLine(b"status"),
                Packet(REQ, PacketType.SUBMIT_JOB, (b"f", b"u", b"d\0ata")),
            ],
        )
        self.assertEqual(decoder.buffered, 5)
        self.assertEqual(decoder.decode(submit[5:]), [events[2]])
        self.assertEqual(decoder.buffered, 0)
        self.assertIsNone(decoder.failed)

    def test_faultAfterGoodPackets(self) -> None:
        """
        On a malformed stream the events before the fault are returned, and
        L{Decoder.failed} tells why; the decoder stays spent.
        """
        decoder = Decoder()
        noop = encodeRequest(PacketType.NOOP)
        events = decoder.decode(noop + header(b"\0REQ", 200, 0) + noop)
        self.assertEqual(events, [Packet(REQ, PacketType.NOOP, ())])
        self.assertIsInstance(decoder.failed, UnknownPacketType)
        self.assertEqual(decoder.decode(noop), [])
        self.assertRaises(UnknownPacketType, decoder.next)

    def test_mixedWithNext(self) -> None:
        """
        Events decoded by L{Decoder.next}'s look-ahead are not lost to a
        later L{Decoder.decode}.
        """
        decoder = Decoder()
        noop = encodeRequest(PacketType.NOOP)
        decoder.feed(noop + noop)
        self.assertEqual(decoder.next(), Packet(REQ, PacketType.NOOP, ()))
        self.assertEqual(len(decoder.decode(noop)), 2)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(fragments, max_size=12), st.integers(1, 64))
    def test_sameAsNext(self, pieces: list[bytes], chunk: int) -> None:
        """
        Over arbitrary bytes in arbitrary chunks, L{Decoder.decode} gives
        the events L{Decoder.next} gives, and fails where it fails.
        """
        stream = b"".join(pieces)
        one = Decoder(maxPacketSize=100, maxLineLength=50)
        bulk = Decoder(maxPacketSize=100, maxLineLength=50)
        viaNext: list[Packet | AdminLine] = []
        viaDecode: list[Packet | AdminLine] = []
        error: type[ProtocolError] | None = None
        for start in range(0, len(stream), chunk):
            piece = stream[start : start + chunk]
            viaDecode.extend(bulk.decode(piece))
            if error is None:
                one.feed(piece)
                try:
                    while (event := one.next()) is not None:
                        viaNext.append(event)
                except ProtocolError as e:
                    error = type(e)
        self.assertEqual(viaDecode, viaNext)
        self.assertEqual(type(bulk.failed) if bulk.failed else None, error)


class PrintableTests(unittest.SynchronousTestCase):
    """
    L{printable}: peer-chosen bytes as text safe for a log line.
    """

    def test_plain(self) -> None:
        self.assertEqual(printable("r\u00e9sum\u00e9".encode()), "r\u00e9sum\u00e9")

    def test_controlsEscaped(self) -> None:
        self.assertEqual(
            printable(b"a\nb\r\x1b[0m\x00\x7f" + "\u2028\u0085".encode()),
            "a\\x0ab\\x0d\\x1b[0m\\x00\\x7f\\u2028\\x85",
        )

    def test_invalidUtf8(self) -> None:
        self.assertEqual(printable(b"\xff\xfeok"), "\\xff\\xfeok")

    def test_cut(self) -> None:
        self.assertEqual(printable(b"x" * 500, 10), "xxxxxxxxxx... (500 bytes)")
