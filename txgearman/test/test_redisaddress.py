"""
Tests for L{txgearman.store.redisaddress}: the C{--redis} option's value.

Pure parsing: no Redis server is involved.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from txgearman.store.redisaddress import (
    DEFAULT_PORT,
    DEFAULT_SENTINEL_PORT,
    RedisAddress,
    parseRedisAddress,
)

hosts = st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)
ports = st.integers(1, 65535)
dbs = st.none() | st.integers(0, 10**6)
# Any text that UTF-8 can encode (surrogates cannot be percent-encoded).
secrets = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)


class DefaultsTests(unittest.SynchronousTestCase):
    """
    The default ports are the ones Redis and Sentinel listen on.
    """

    def test_ports(self) -> None:
        self.assertEqual((DEFAULT_PORT, DEFAULT_SENTINEL_PORT), (6379, 26379))


class EmptyTests(unittest.SynchronousTestCase):
    """
    An empty value names nothing.
    """

    def test_empty(self) -> None:
        self.assertRaises(ValueError, parseRedisAddress, "")

    def test_blank(self) -> None:
        self.assertRaises(ValueError, parseRedisAddress, "  \t ")


class HostPortTests(unittest.SynchronousTestCase):
    """
    The plain C{host[:port]} form.
    """

    def test_hostPort(self) -> None:
        self.assertEqual(
            parseRedisAddress("redis.example.com:6380"),
            RedisAddress(kind="tcp", host="redis.example.com", port=6380),
        )

    def test_bareHost(self) -> None:
        """
        Without a port, Redis's own port is meant.
        """
        self.assertEqual(
            parseRedisAddress("localhost"),
            RedisAddress(kind="tcp", host="localhost", port=6379),
        )

    def test_surroundingWhitespace(self) -> None:
        self.assertEqual(
            parseRedisAddress("  10.0.0.1:7000\n"),
            RedisAddress(kind="tcp", host="10.0.0.1", port=7000),
        )

    def test_ipv6InBrackets(self) -> None:
        self.assertEqual(
            parseRedisAddress("[::1]:6380"),
            RedisAddress(kind="tcp", host="::1", port=6380),
        )

    def test_ipv6InBracketsDefaultPort(self) -> None:
        self.assertEqual(
            parseRedisAddress("[fe80::1]"),
            RedisAddress(kind="tcp", host="fe80::1", port=6379),
        )

    def test_bareIPv6Rejected(self) -> None:
        """
        Without brackets an IPv6 address's last group cannot be told from a
        port, so it is refused, with a hint at the bracketed form.
        """
        for text in ["::1", "fe80::1:6379", "2001:db8::5"]:
            e = self.assertRaises(ValueError, parseRedisAddress, text)
            self.assertIn(f"[{text}]", str(e))

    def test_badBrackets(self) -> None:
        for text in ["[::1", "[::1]6379", "[::1]x:6379", "[]:6379"]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_noHost(self) -> None:
        self.assertRaises(ValueError, parseRedisAddress, ":6379")

    def test_badPort(self) -> None:
        for text in [
            "h:0",
            "h:65536",
            "h:99999",
            "h:x",
            "h:-1",
            "h:+1",
            "h:63 79",
            "h:1.5",
        ]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_extremePorts(self) -> None:
        self.assertEqual(parseRedisAddress("h:1").port, 1)
        self.assertEqual(parseRedisAddress("h:65535").port, 65535)

    @settings(max_examples=200, deadline=None)
    @given(hosts, ports)
    def test_anyHostPort(self, host: str, port: int) -> None:
        self.assertEqual(
            parseRedisAddress(f"{host}:{port}"),
            RedisAddress(kind="tcp", host=host, port=port),
        )


class URLTests(unittest.SynchronousTestCase):
    """
    The C{redis://} URL form.
    """

    def test_hostOnly(self) -> None:
        self.assertEqual(
            parseRedisAddress("redis://cache"),
            RedisAddress(kind="tcp", host="cache", port=6379),
        )

    def test_portAndDatabase(self) -> None:
        self.assertEqual(
            parseRedisAddress("redis://cache:6380/4"),
            RedisAddress(kind="tcp", host="cache", port=6380, db=4),
        )

    def test_trailingSlashNoDatabase(self) -> None:
        self.assertEqual(parseRedisAddress("redis://cache/").db, None)

    def test_databaseZero(self) -> None:
        self.assertEqual(parseRedisAddress("redis://cache/0").db, 0)

    def test_passwordOnlyWithColon(self) -> None:
        self.assertEqual(
            parseRedisAddress("redis://:pw@h:1/2"),
            RedisAddress(
                kind="tcp", host="h", port=1, db=2, username=None, password="pw"
            ),
        )

    def test_userAndPassword(self) -> None:
        self.assertEqual(
            parseRedisAddress("redis://user:pw@h"),
            RedisAddress(
                kind="tcp", host="h", port=6379, username="user", password="pw"
            ),
        )

    def test_loneWordIsPassword(self) -> None:
        """
        C{redis://pw@h} names a password, not a user, as C{redis-cli -u}
        reads it.
        """
        self.assertEqual(
            parseRedisAddress("redis://pw@h"),
            RedisAddress(kind="tcp", host="h", port=6379, username=None, password="pw"),
        )

    def test_percentEncodedCredentials(self) -> None:
        address = parseRedisAddress("redis://us%3Aer:p%40ss%3Aw%2Fo%25rd@h:7/1")
        self.assertEqual((address.username, address.password), ("us:er", "p@ss:w/o%rd"))
        self.assertEqual((address.host, address.port, address.db), ("h", 7, 1))

    def test_unencodedAtInPassword(self) -> None:
        """
        The host follows the last C{@}, so an unencoded C{@} in a password
        still parses.
        """
        address = parseRedisAddress("redis://:p@ss@h")
        self.assertEqual((address.host, address.password), ("h", "p@ss"))

    def test_ipv6(self) -> None:
        self.assertEqual(
            parseRedisAddress("redis://:pw@[::1]:6380/3"),
            RedisAddress(kind="tcp", host="::1", port=6380, db=3, password="pw"),
        )

    def test_bareIPv6Rejected(self) -> None:
        self.assertRaises(ValueError, parseRedisAddress, "redis://::1")

    def test_noHost(self) -> None:
        for text in ["redis://", "redis://:6379", "redis://:pw@"]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_badPort(self) -> None:
        for text in [
            "redis://h:0",
            "redis://h:65536",
            "redis://h:x/1",
            "redis://:pw@h:-5",
        ]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_badDatabase(self) -> None:
        for text in ["redis://h/x", "redis://h/1/2", "redis://h/-1", "redis://h:1/1x"]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_queryRejected(self) -> None:
        """
        Query parameters (C{?db=}, C{?timeout=}...) would otherwise be
        silently ignored, so they are refused.
        """
        for text in ["redis://h?db=2", "redis://h:1/2?timeout=1", "redis://:pw@h/?x"]:
            e = self.assertRaises(ValueError, parseRedisAddress, text)
            self.assertIn("query", str(e))

    def test_tls(self) -> None:
        """
        C{rediss://} is the same URL, over TLS.
        """
        self.assertEqual(
            parseRedisAddress("rediss://user:pw@h:6380/1"),
            RedisAddress(
                kind="tcp",
                host="h",
                port=6380,
                db=1,
                username="user",
                password="pw",
                tls=True,
            ),
        )
        self.assertEqual(
            parseRedisAddress("rediss://[::1]"),
            RedisAddress(kind="tcp", host="::1", port=6379, tls=True),
        )
        self.assertFalse(parseRedisAddress("redis://h").tls)
        self.assertFalse(parseRedisAddress("h:1").tls)

    def test_tlsErrorsHidePasswords(self) -> None:
        with self.assertRaises(ValueError) as caught:
            parseRedisAddress("rediss://:secret@h:99999")
        self.assertNotIn("secret", str(caught.exception))

    def test_tlsSentinelRejected(self) -> None:
        """
        txredisapi reaches the master a Sentinel names without TLS: a
        Sentinel address that asks for TLS is refused, saying so, rather
        than taken as plaintext.
        """
        for text in [
            "sentinels://h/m",
            "rediss+sentinel://h/m",
            "sentinel+rediss://h/m",
        ]:
            e = self.assertRaises(ValueError, parseRedisAddress, text)
            self.assertIn("TLS through Sentinel is not supported", str(e))

    def test_userWithoutPassword(self) -> None:
        """
        C{redis://user:@h} names a user and no password (which may come
        from a file): an empty password is none.
        """
        address = parseRedisAddress("rediss://gearman:@h")
        self.assertEqual((address.username, address.password), ("gearman", None))
        self.assertIsNone(parseRedisAddress("redis://:@h").password)

    def test_unknownScheme(self) -> None:
        for text in ["http://h:6379", "tcp://h:6379", "valkey://h", "REDIS://h"]:
            e = self.assertRaises(ValueError, parseRedisAddress, text)
            self.assertIn("scheme", str(e))

    @settings(max_examples=200, deadline=None)
    @given(st.none() | secrets, secrets, hosts, ports, dbs)
    def test_credentialsRoundTrip(
        self, username: str | None, password: str, host: str, port: int, db: int | None
    ) -> None:
        """
        Any user name and password, percent-encoded, parse back exactly.
        """
        user = "" if username is None else quote(username, safe="")
        path = "" if db is None else f"/{db}"
        text = f"redis://{user}:{quote(password, safe='')}@{host}:{port}{path}"
        self.assertEqual(
            parseRedisAddress(text),
            RedisAddress(
                kind="tcp",
                host=host,
                port=port,
                db=db,
                username=username,
                password=password,
            ),
        )


class UnixTests(unittest.SynchronousTestCase):
    """
    Unix socket paths, bare or as C{unix:} URLs.
    """

    def test_barePath(self) -> None:
        self.assertEqual(
            parseRedisAddress("/run/redis/redis.sock"),
            RedisAddress(kind="unix", path="/run/redis/redis.sock"),
        )

    def test_unixColon(self) -> None:
        self.assertEqual(
            parseRedisAddress("unix:/tmp/r.sock"),
            RedisAddress(kind="unix", path="/tmp/r.sock"),
        )

    def test_unixURLWithDatabase(self) -> None:
        self.assertEqual(
            parseRedisAddress("unix:///tmp/r.sock?db=3"),
            RedisAddress(kind="unix", path="/tmp/r.sock", db=3),
        )

    def test_emptyDatabase(self) -> None:
        self.assertEqual(
            parseRedisAddress("unix:/tmp/r.sock?db="),
            RedisAddress("unix", path="/tmp/r.sock"),
        )

    def test_relativePathRejected(self) -> None:
        for text in ["unix:tmp/r.sock", "unix:r.sock", "unix:", "unix:?db=1"]:
            e = self.assertRaises(ValueError, parseRedisAddress, text)
            self.assertIn("absolute", str(e))

    def test_badDatabase(self) -> None:
        for text in [
            "unix:/tmp/r.sock?db=x",
            "unix:/tmp/r.sock?db=-1",
            "unix:/r?db=1&x=2",
        ]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_otherQueryRejected(self) -> None:
        for text in ["unix:/tmp/r.sock?timeout=1", "unix:/tmp/r.sock?password=x"]:
            self.assertRaises(ValueError, parseRedisAddress, text)


class SentinelTests(unittest.SynchronousTestCase):
    """
    The C{sentinel://} form.
    """

    def test_oneHostDefaultPort(self) -> None:
        self.assertEqual(
            parseRedisAddress("sentinel://s1/mymaster"),
            RedisAddress(
                kind="sentinel", sentinels=(("s1", 26379),), master="mymaster"
            ),
        )

    def test_severalHosts(self) -> None:
        self.assertEqual(
            parseRedisAddress("sentinel://s1:5000,s2,[::1]:5002/mymaster"),
            RedisAddress(
                kind="sentinel",
                sentinels=(("s1", 5000), ("s2", 26379), ("::1", 5002)),
                master="mymaster",
            ),
        )

    def test_database(self) -> None:
        self.assertEqual(parseRedisAddress("sentinel://s1/mymaster/5").db, 5)
        self.assertEqual(parseRedisAddress("sentinel://s1/mymaster/").db, None)

    def test_password(self) -> None:
        self.assertEqual(
            parseRedisAddress("sentinel://:p%40w@s1:1,s2:2/m/1"),
            RedisAddress(
                kind="sentinel",
                sentinels=(("s1", 1), ("s2", 2)),
                master="m",
                db=1,
                username=None,
                password="p@w",
            ),
        )

    def test_userAndPassword(self) -> None:
        address = parseRedisAddress("sentinel://admin:pw@s1/m")
        self.assertEqual((address.username, address.password), ("admin", "pw"))

    def test_masterRequired(self) -> None:
        for text in [
            "sentinel://s1",
            "sentinel://s1:26379",
            "sentinel://s1/",
            "sentinel://s1//2",
        ]:
            e = self.assertRaises(ValueError, parseRedisAddress, text)
            self.assertIn("master", str(e))

    def test_noSentinel(self) -> None:
        for text in ["sentinel:///m", "sentinel://,/m"]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_badSentinel(self) -> None:
        for text in ["sentinel://s1:0/m", "sentinel://s1:x/m", "sentinel://::1/m"]:
            self.assertRaises(ValueError, parseRedisAddress, text)

    def test_badDatabase(self) -> None:
        for text in ["sentinel://s1/m/x", "sentinel://s1/m/1/2"]:
            self.assertRaises(ValueError, parseRedisAddress, text)


class StrTests(unittest.SynchronousTestCase):
    """
    C{str(address)} is for logs and errors: it says where, never the
    password.
    """

    def test_tcp(self) -> None:
        self.assertEqual(str(parseRedisAddress("h")), "h:6379")
        self.assertEqual(str(parseRedisAddress("redis://h:1/2")), "h:1 db 2")

    def test_tls(self) -> None:
        """
        A TLS address says so, for the logs.
        """
        self.assertEqual(
            str(parseRedisAddress("rediss://:pw@h:1/2")), "rediss://h:1 db 2"
        )
        self.assertEqual(
            str(parseRedisAddress("rediss://[::1]")), "rediss://[::1]:6379"
        )

    def test_ipv6(self) -> None:
        self.assertEqual(str(parseRedisAddress("[::1]:5")), "[::1]:5")

    def test_unix(self) -> None:
        self.assertEqual(
            str(parseRedisAddress("unix:///r.sock?db=3")), "unix:/r.sock db 3"
        )

    def test_sentinel(self) -> None:
        self.assertEqual(
            str(parseRedisAddress("sentinel://a,[::1]:2/mm/4")),
            "sentinel://a:26379,[::1]:2/mm db 4",
        )

    def test_noPassword(self) -> None:
        for text in [
            "redis://:hunter2@h:1/2",
            "redis://user:hunter2@h",
            "redis://hunter2@h",
            "rediss://user:hunter2@h",
            "sentinel://:hunter2@s1,s2/m/1",
        ]:
            address = parseRedisAddress(text)
            self.assertEqual(address.password, "hunter2")
            self.assertNotIn("hunter2", str(address))
            self.assertNotIn("hunter2", repr(address))

    @settings(max_examples=200, deadline=None)
    @given(
        st.sampled_from(
            [
                "redis://{}@h:1/2",
                "redis://u:{}@[::1]",
                "rediss://:{}@h",
                "sentinel://:{}@a,b:2/m/3",
            ]
        ),
        secrets,
    )
    def test_passwordNeverShown(self, template: str, password: str) -> None:
        """
        What C{str} and C{repr} say does not depend on the password at all.
        """
        address = parseRedisAddress(template.format(quote(password, safe="")))
        self.assertEqual(address.password, password)
        withoutPassword = replace(address, password=None)
        self.assertEqual(str(address), str(withoutPassword))
        self.assertEqual(repr(address), repr(withoutPassword))


class ArbitraryTextTests(unittest.SynchronousTestCase):
    """
    Whatever an operator types, the parser answers with an address or a
    L{ValueError} (which C{twistd} reports as a usage error), never a
    traceback.
    """

    @settings(max_examples=500, deadline=None)
    @given(
        st.text()
        | st.lists(
            st.sampled_from(
                [
                    "redis://",
                    "rediss://",
                    "sentinel://",
                    "unix:",
                    "/",
                    ":",
                    "@",
                    "[",
                    "]",
                    "::1",
                    ",",
                    "?db=",
                    "%",
                    "%40",
                    "#",
                    "h",
                    "6379",
                    "0",
                    "99999",
                    "\u0663",
                    "\u00b2",
                    " ",
                ]
            ),
            max_size=10,
        ).map("".join)
    )
    def test_addressOrValueError(self, text: str) -> None:
        try:
            address = parseRedisAddress(text)
        except ValueError:
            return
        self.assertIn(address.kind, {"tcp", "unix", "sentinel"})
        self.assertIsInstance(str(address), str)


class RedactionTests(unittest.SynchronousTestCase):
    """
    Errors quote the address they reject, but never its password: they end
    up in logs and on terminals.
    """

    def test_errorsHidePasswords(self) -> None:
        for text in [
            "redis://:secret@h/x",
            "redis://:secret@h?db=1",
            "redis://user:secret@h:99999",
            "redis://:secret@:1",
            "sentinel://:secret@h",
            "sentinel://:secret@h/m/x",
            "sentinel://:secret@,/m",
        ]:
            with self.assertRaises(ValueError) as caught:
                parseRedisAddress(text)
            self.assertNotIn("secret", str(caught.exception), text)

    def test_sentinelQuery(self) -> None:
        """
        A query string after a Sentinel master name is rejected, not taken
        as part of the name.
        """
        self.assertRaises(ValueError, parseRedisAddress, "sentinel://h/mymaster?db=2")

    def test_asciiDigits(self) -> None:
        """
        Ports and database numbers are ASCII digits only.
        """
        self.assertRaises(
            ValueError, parseRedisAddress, "localhost:\uff16\uff13\uff17\uff19"
        )
        self.assertRaises(ValueError, parseRedisAddress, "redis://h/\uff11")
