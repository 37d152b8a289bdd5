"""
Tests for L{txgearman.store.redispassword}: where the Redis password comes
from, and that it comes from one place only.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from txgearman.store.redisaddress import parseRedisAddress
from txgearman.store.redispassword import (
    PASSWORD_ENVIRONMENT,
    RedisPasswordError,
    choosePassword,
    readPasswordFile,
)

SECRET = "s3cr\u00e9t with spaces "


class ReadPasswordFileTests(SynchronousTestCase):
    """
    L{readPasswordFile} takes the file's content less one trailing newline,
    and refuses a file that holds no password.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.directory.mkdir()

    def write(self, content: bytes, mode: int = 0o600) -> str:
        path = self.directory / "password"
        path.write_bytes(content)
        path.chmod(mode)
        return str(path)

    def test_oneNewlineStripped(self) -> None:
        for content in [SECRET, SECRET + "\n", SECRET + "\r\n"]:
            path = self.write(content.encode("utf-8"))
            self.assertEqual(readPasswordFile(path), (SECRET, None))

    def test_onlyOneNewline(self) -> None:
        """
        Only the last newline goes: anything else is the password's.
        """
        path = self.write(b"\tpw\n\n")
        self.assertEqual(readPasswordFile(path)[0], "\tpw\n")

    def test_empty(self) -> None:
        for content in [b"", b"\n", b"\r\n"]:
            path = self.write(content)
            with self.assertRaises(RedisPasswordError) as caught:
                readPasswordFile(path)
            self.assertEqual(
                str(caught.exception),
                f"--redis-password-file {path} is empty: it must hold the password",
            )

    def test_missing(self) -> None:
        path = str(self.directory / "nowhere")
        with self.assertRaises(RedisPasswordError) as caught:
            readPasswordFile(path)
        self.assertEqual(
            str(caught.exception),
            f"cannot read --redis-password-file {path}: No such file or directory",
        )

    def test_directory(self) -> None:
        with self.assertRaises(RedisPasswordError) as caught:
            readPasswordFile(str(self.directory))
        self.assertIn(str(self.directory), str(caught.exception))

    def test_notUTF8(self) -> None:
        path = self.write(b"\xff\xfe")
        with self.assertRaises(RedisPasswordError) as caught:
            readPasswordFile(path)
        self.assertIn("not UTF-8", str(caught.exception))

    def test_readableByOthers(self) -> None:
        """
        A file the group or others may read is used, with a warning that
        names it and its mode, not the password.
        """
        for mode in (0o640, 0o604, 0o644):
            path = self.write(b"pw\n", mode)
            password, warning = readPasswordFile(path)
            self.assertEqual(password, "pw")
            self.assertEqual(
                warning,
                f"The Redis password file {path} is readable by its group or by "
                f"others (mode {mode:04o}): chmod 600 it",
            )

    def test_ownerOnly(self) -> None:
        for mode in (0o600, 0o400):
            self.assertIsNone(readPasswordFile(self.write(b"pw", mode))[1])


class ChoosePasswordTests(SynchronousTestCase):
    """
    L{choosePassword} takes the password from the URL, the file or the
    environment, and refuses two of them at once.
    """

    def setUp(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        self.file = directory / "password"
        self.file.write_bytes(SECRET.encode("utf-8") + b"\n")
        self.file.chmod(0o600)

    def test_none(self) -> None:
        choice = choosePassword(parseRedisAddress("rediss://h"), None, {})
        self.assertIsNone(choice.address.password)
        self.assertIsNone(choice.source)
        self.assertEqual(choice.warnings, ())

    def test_url(self) -> None:
        """
        A password in the URL still works, with a warning that everyone
        sees it and what to do instead.
        """
        choice = choosePassword(parseRedisAddress("redis://:pw@h"), None, {})
        self.assertEqual((choice.address.password, choice.source), ("pw", "url"))
        [warning] = choice.warnings
        self.assertIn("ps", warning)
        self.assertIn("--redis-password-file", warning)
        self.assertIn(PASSWORD_ENVIRONMENT, warning)
        self.assertNotIn("pw@", warning)

    def test_file(self) -> None:
        """
        The file's password goes with the URL's user name.
        """
        choice = choosePassword(
            parseRedisAddress("rediss://gearman:@h:6380/2"), str(self.file), {}
        )
        address = choice.address
        self.assertEqual(
            (address.username, address.password, address.db, address.tls),
            ("gearman", SECRET, 2, True),
        )
        self.assertEqual((choice.source, choice.warnings), ("file", ()))
        self.assertNotIn(SECRET, str(address) + repr(address))

    def test_fileWarning(self) -> None:
        self.file.chmod(0o644)
        choice = choosePassword(parseRedisAddress("h"), str(self.file), {})
        [warning] = choice.warnings
        self.assertIn("readable by its group or by others", warning)
        self.assertNotIn(SECRET, warning)

    def test_environment(self) -> None:
        choice = choosePassword(
            parseRedisAddress("redis://u:@h"), None, {PASSWORD_ENVIRONMENT: SECRET}
        )
        self.assertEqual(
            (choice.address.username, choice.address.password, choice.source),
            ("u", SECRET, "environment"),
        )
        self.assertEqual(choice.warnings, ())

    def test_emptyEnvironment(self) -> None:
        with self.assertRaises(RedisPasswordError) as caught:
            choosePassword(parseRedisAddress("h"), None, {PASSWORD_ENVIRONMENT: ""})
        self.assertIn(f"${PASSWORD_ENVIRONMENT} is empty", str(caught.exception))

    def test_otherVariablesIgnored(self) -> None:
        choice = choosePassword(parseRedisAddress("h"), None, {"REDIS_PASSWORD": "x"})
        self.assertIsNone(choice.address.password)

    def test_twoWays(self) -> None:
        """
        A password given two (or three) ways is refused, naming them and
        saying that which one wins would be ambiguous; the password is
        never in the message.
        """
        url = parseRedisAddress(f"redis://:{SECRET.strip()}@h")
        plain = parseRedisAddress("redis://h")
        env = {PASSWORD_ENVIRONMENT: SECRET}
        for address, passwordFile, environ, named in [
            (url, str(self.file), {}, ["the --redis URL", "--redis-password-file"]),
            (
                plain,
                str(self.file),
                env,
                ["--redis-password-file", PASSWORD_ENVIRONMENT],
            ),
            (url, None, env, ["the --redis URL", PASSWORD_ENVIRONMENT]),
            (url, str(self.file), env, ["URL", "file", PASSWORD_ENVIRONMENT]),
        ]:
            with self.assertRaises(RedisPasswordError) as caught:
                choosePassword(address, passwordFile, environ)
            message = str(caught.exception)
            for name in named:
                self.assertIn(name, message)
            self.assertIn("ambiguous", message)
            self.assertNotIn(SECRET.strip(), message)
