"""
Property tests for the server protocol: any sequence of well-framed
requests, with any arguments, from several connections at once, is
answered without an unhandled error, and leaves the server consistent.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.trial import unittest

from txgearman.codec import ARGUMENTS, PacketType, encodeRequest, splitArguments
from txgearman.server.batching import WriteBatcher
from txgearman.server.core import JobServer
from txgearman.server.protocol import GearmanServerFactory
from txgearman.test.fakes import FakeStore, MemoryConnection
from txgearman.test.test_core_model import assertConsistent

# Arguments drawn from small pools, so that handles, functions and uniques
# often name the same things and the packets interact.
_WORDS = st.sampled_from(
    [
        b"",
        b"f",
        b"g-h",
        b"u",
        b"-",
        b"H:z:1",
        b"H:z:2",
        b"H:z:3",
        b"1000",
        b"0",
        b"*",
        b"5",
        b"x" * 70,
    ]
)
_DATA = st.sampled_from([b"", b"data", b"\x00\xff"])


# Every type, with the ones that make jobs move weighted up.
_P = PacketType
_TYPES = list(PacketType) + 4 * [
    _P.CAN_DO,
    _P.SUBMIT_JOB,
    _P.SUBMIT_JOB_BG,
    _P.GRAB_JOB,
    _P.GRAB_JOB_UNIQ,
    _P.PRE_SLEEP,
    _P.WORK_COMPLETE,
    _P.WORK_STATUS,
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[int, bytes]:
    """
    C{(connection index, encoded request)}: a packet type 1-42 with the
    argument count its type needs.
    """
    ptype = draw(st.sampled_from(_TYPES))
    count, hasData = ARGUMENTS[ptype]
    args = [draw(_WORDS) for _ in range(count)]
    if hasData:
        args.append(draw(_DATA))
    packet = encodeRequest(ptype, *args)
    # The request must decode to the arguments it was built from.
    assert splitArguments(ptype, packet[12:]) == tuple(args) or count + hasData == 0
    return draw(st.integers(0, 3)), packet


class ProtocolFuzzTests(unittest.SynchronousTestCase):
    @settings(
        max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        st.lists(
            st.one_of(
                *[requests()] * 10,
                st.tuples(
                    st.integers(0, 3), st.sampled_from([b"status\n", b"show jobs\n"])
                ),
                st.tuples(st.integers(0, 3), st.sampled_from([b"<lose>", b"<tick>"])),
            ),
            min_size=20,
            max_size=80,
        )
    )
    def test_anyRequests(self, steps: list[tuple[int, bytes]]) -> None:
        """
        Whatever is sent, C{dataReceived} never raises, a connection is
        only closed after an ERROR, and the core stays consistent.
        """
        clock = task.Clock()
        clock.advance(1_700_000_000)
        store = FakeStore()
        core = JobServer(clock, store=store, handlePrefix=b"H:z")
        factory = GearmanServerFactory(core, batcher=WriteBatcher(clock))
        connections = [MemoryConnection(factory, 40000 + i) for i in range(4)]
        for index, data in steps:
            conn = connections[index]
            if data == b"<tick>":
                clock.advance(61)
            elif data == b"<lose>":
                conn.lose()
                connections[index] = MemoryConnection(factory, 41000 + index)
            else:
                conn.raw(data)
                clock.advance(0)
            if conn.transport.disconnecting:
                self.assertIn(b"\0RES\0\0\0\x13", conn.transport.value())
                conn.lose()
                connections[index] = MemoryConnection(factory, 42000 + index)
            assertConsistent(core, store)
        for conn in connections:
            conn.lose()
        assertConsistent(core, store)
        self.assertEqual(core.sessions, {})
