"""
Tests for L{txgearman.server.acl}: reading the rules and deciding.
"""

from __future__ import annotations

from pathlib import Path

from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from txgearman.server.acl import (
    ADMIN_READ,
    ADMIN_WRITE,
    ANONYMOUS,
    AccessPolicy,
    ACLError,
    adminCommand,
)

RULES = """
# A web tier submits, workers work, an operator administers.
[web]
submit = resize, thumb-*
status = resize

[worker]
register = resize, thumb-*
grab = resize

[operator]
admin = read, cancel job

[anonymous]
admin = version
"""


class AdminCommandTests(SynchronousTestCase):
    def test_names(self) -> None:
        """Admin lines are named as the ACL names their commands."""
        for line, name in [
            (b"status", "status"),
            (b"STATUS extra", "status"),
            (b"show jobs", "show jobs"),
            (b"show   unique jobs", "show unique jobs"),
            (b"cancel job H:x:1", "cancel job"),
            (b"drop function f", "drop function"),
            (b"create function f", "create function"),
            (b"maxqueue f 10", "maxqueue"),
            (b"acl list", "acl list"),
            (b"shutdown graceful", "shutdown"),
            (b"", ""),
            (b"\xff\xfe", "\ufffd\ufffd"),
        ]:
            self.assertEqual(adminCommand(line), name, line)


class ParseTests(SynchronousTestCase):
    def test_rules(self) -> None:
        policy = AccessPolicy.fromText(RULES)
        self.assertEqual(
            sorted(policy.rules), ["anonymous", "operator", "web", "worker"]
        )
        operator = policy.rules["operator"]
        self.assertEqual(operator.admin, frozenset((*ADMIN_READ, "cancel job")))
        self.assertEqual(
            policy.rules["web"].patterns["submit"], (b"resize", b"thumb-*")
        )

    def test_groups(self) -> None:
        policy = AccessPolicy.fromText(
            "[a]\nadmin = write\n[b]\nadmin = all\n[c]\nadmin=*\n"
        )
        self.assertEqual(policy.rules["a"].admin, frozenset(ADMIN_WRITE))
        self.assertEqual(policy.rules["b"].admin, frozenset(ADMIN_READ + ADMIN_WRITE))
        self.assertEqual(policy.rules["c"].admin, policy.rules["b"].admin)

    def assertRefused(self, text: str, message: str) -> None:
        e = self.assertRaises(ACLError, AccessPolicy.fromText, text, "acl.ini")
        self.assertIn(message, str(e))

    def test_unknownRight(self) -> None:
        self.assertRefused(
            "[web]\ninvoke = x\n",
            "acl.ini: [web] has 'invoke'; the rights are submit, register, grab, status and admin",
        )

    def test_unknownAdminCommand(self) -> None:
        self.assertRefused(
            "[op]\nadmin = status, reboot\n", "[op] admin names 'reboot'"
        )

    def test_duplicateSection(self) -> None:
        self.assertRefused(
            "[web]\nsubmit=a\n[web]\nsubmit=b\n", "acl.ini: While reading"
        )

    def test_noSection(self) -> None:
        self.assertRefused("submit = a\n", "acl.ini")

    def test_unreadable(self) -> None:
        missing = self.mktemp()
        e = self.assertRaises(ACLError, AccessPolicy.fromFile, missing)
        self.assertEqual(
            str(e), f"cannot read the ACL {missing}: No such file or directory"
        )
        binary = Path(self.mktemp())
        binary.write_bytes(b"[web]\nsubmit = \xff\n")
        e = self.assertRaises(ACLError, AccessPolicy.fromFile, str(binary))
        self.assertEqual(str(e), f"the ACL {binary} is not UTF-8 text")


class RightsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.policy = AccessPolicy.fromText(RULES)

    def test_functionRights(self) -> None:
        """Each right grants only the functions its patterns match."""
        web = self.policy.rightsFor("web")
        worker = self.policy.rightsFor("worker")
        for rights, right, name, verdict in [
            (web, "submit", b"resize", True),
            (web, "submit", b"thumb-small", True),
            (web, "submit", b"thumb", False),
            (web, "submit", b"resize2", False),
            (web, "status", b"resize", True),
            (web, "status", b"thumb-small", False),
            (web, "register", b"resize", False),
            (web, "grab", b"resize", False),
            (worker, "register", b"thumb-x", True),
            (worker, "grab", b"thumb-x", False),
            (worker, "grab", b"resize", True),
            (worker, "submit", b"resize", False),
        ]:
            # Asked twice: the second answer comes from the cache.
            for _ in range(2):
                self.assertEqual(
                    rights.may(right, name), verdict, (rights.identity, right, name)
                )

    def test_bytes(self) -> None:
        """Patterns match bytes, not text: any function name can be judged."""
        policy = AccessPolicy.fromText("[w]\nsubmit = caf\u00e9, a?c\n")
        rights = policy.rightsFor("w")
        self.assertTrue(rights.may("submit", "caf\u00e9".encode()))
        self.assertTrue(rights.may("submit", b"a\x00c"))
        self.assertFalse(rights.may("submit", b"caf\xe9"))

    def test_admin(self) -> None:
        operator = self.policy.rightsFor("operator")
        self.assertTrue(operator.mayAdmin("status"))
        self.assertTrue(operator.mayAdmin("cancel job"))
        self.assertFalse(operator.mayAdmin("drop function"))
        anonymous = self.policy.rightsFor(None)
        self.assertEqual(anonymous.identity, ANONYMOUS)
        self.assertTrue(anonymous.mayAdmin("version"))
        self.assertFalse(anonymous.mayAdmin("status"))

    def test_noSectionNoRights(self) -> None:
        """An identity the file does not name may do nothing."""
        nobody = self.policy.rightsFor("stranger")
        for right in ("submit", "register", "grab", "status"):
            self.assertFalse(nobody.may(right, b"resize"))
            self.assertFalse(nobody.mayAny(right))
        self.assertFalse(nobody.mayAdmin("version"))

    def test_sameObject(self) -> None:
        self.assertIs(self.policy.rightsFor("web"), self.policy.rightsFor("web"))

    def test_cacheBounded(self) -> None:
        """Random names do not grow the cache without bound."""
        web = self.policy.rightsFor("web")
        for n in range(25_000):
            web.may("submit", b"f%d" % n)
        self.assertLessEqual(len(web._denied["submit"]), 10_000)

    def test_replace(self) -> None:
        """
        New rules apply to the rights already handed out, cached answers
        included.
        """
        web = self.policy.rightsFor("web")
        self.assertTrue(web.may("submit", b"resize"))
        self.assertFalse(web.may("submit", b"crop"))
        generation = self.policy.generation
        self.policy.replace(AccessPolicy.fromText("[web]\nsubmit = crop\n").rules)
        self.assertFalse(web.may("submit", b"resize"))
        self.assertTrue(web.may("submit", b"crop"))
        self.assertEqual(self.policy.generation, generation + 1)


class ReloadTests(SynchronousTestCase):
    def test_reload(self) -> None:
        path = Path(self.mktemp())
        path.write_text(RULES)
        policy = AccessPolicy.fromFile(str(path))
        web = policy.rightsFor("web")
        self.assertTrue(web.may("submit", b"resize"))
        path.write_text("[web]\nsubmit = crop\n")
        with capturedLogs() as events:
            self.assertTrue(policy.reload())
        self.assertFalse(web.may("submit", b"resize"))
        self.assertIn("ACL reloaded from", events[0]["log_format"])

    def test_reloadBroken(self) -> None:
        """A file that cannot be used leaves the rules in force, and says so."""
        path = Path(self.mktemp())
        path.write_text(RULES)
        policy = AccessPolicy.fromFile(str(path))
        path.write_text("[web]\ninvoke = x\n")
        with capturedLogs() as events:
            self.assertFalse(policy.reload())
        self.assertTrue(policy.rightsFor("web").may("submit", b"resize"))
        self.assertEqual(events[0]["log_level"], LogLevel.error)
        self.assertIn("invoke", events[0]["error"])

    def test_listing(self) -> None:
        policy = AccessPolicy.fromText(RULES)
        self.assertEqual(
            list(policy.listing()),
            [
                b"anonymous\tadmin=version\n",
                b"operator\tadmin=read,cancel job\n",
                b"web\tsubmit=resize,thumb-*\tstatus=resize\n",
                b"worker\tregister=resize,thumb-*\tgrab=resize\n",
            ],
        )


class BuiltPolicyTests(SynchronousTestCase):
    def test_everythingBut(self) -> None:
        policy = AccessPolicy.everythingBut(ADMIN_WRITE)
        anyone = policy.rightsFor("whoever")
        self.assertTrue(anyone.may("submit", b"x"))
        self.assertTrue(anyone.may("grab", b"x"))
        self.assertTrue(anyone.mayAdmin("status"))
        for command in ADMIN_WRITE:
            self.assertFalse(anyone.mayAdmin(command))
        self.assertIn("only on --admin-socket", policy.describe())

    def test_adminOnly(self) -> None:
        policy = AccessPolicy.adminOnly()
        local = policy.rightsFor(None)
        for command in ADMIN_READ + ADMIN_WRITE:
            self.assertTrue(local.mayAdmin(command))
        self.assertFalse(local.may("submit", b"x"))
