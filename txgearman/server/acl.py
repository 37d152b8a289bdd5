# -*- test-case-name: txgearman.test.test_acl -*-
"""
Who may do what: the access-control list of C{--acl FILE}.

The file has one section per identity: the common name of the client
certificate a connection presented (see L{txgearman.server.tls}), or
C{anonymous} for a connection without one.  Each section lists, for five
rights, the functions (or admin commands) it grants::

    [web]
    submit = resize, thumbnail-*
    status = resize, thumbnail-*

    [worker]
    register = resize, thumbnail-*
    grab = resize, thumbnail-*

    [operator]
    admin = read, cancel job

Function patterns are shell-style (C{*}, C{?}, C{[...]}), matched against
the function's name byte for byte, separated by commas.  Once a file is
given, whatever it does not grant is denied: an identity without a section
may do nothing but C{ECHO_REQ} and the packets that need no right.

This module only decides; the protocols ask it and answer a denial
(L{txgearman.server.guard}, L{txgearman.web.submit}).
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from twisted.logger import Logger

__all__ = [
    "ANONYMOUS",
    "ADMIN_READ",
    "ADMIN_WRITE",
    "ACLError",
    "Rule",
    "Rights",
    "AccessPolicy",
    "adminCommand",
]

#: The section for connections that presented no certificate.
ANONYMOUS = "anonymous"

#: Admin commands that only read, granted together as C{read}.
ADMIN_READ = (
    "status",
    "prioritystatus",
    "workers",
    "show jobs",
    "show unique jobs",
    "version",
    "getpid",
    "verbose",
    "settings",
    "acl list",
)

#: Admin commands that change the server, granted together as C{write}.
ADMIN_WRITE = (
    "shutdown",
    "cancel job",
    "drop function",
    "create function",
    "maxqueue",
)

_ADMIN_GROUPS = {
    "read": ADMIN_READ,
    "write": ADMIN_WRITE,
    "all": ADMIN_READ + ADMIN_WRITE,
    "*": ADMIN_READ + ADMIN_WRITE,
}

#: The rights a section may grant to functions.
FUNCTION_RIGHTS = ("submit", "register", "grab", "status")

# The admin commands of two words, by their first.
_TWO_WORDS = {"show", "cancel", "drop", "create", "acl"}

# Decisions cached per right: past this many names the cache starts over,
# so that a peer naming random functions cannot grow it without bound.
_CACHE_LIMIT = 10_000


class ACLError(Exception):
    """The ACL file cannot be used: the message says where and why."""


def adminCommand(line: bytes) -> str:
    """
    The admin command an admin line runs, as the ACL names it: C{"status"},
    C{"cancel job"}, C{"show unique jobs"}; unknown commands as typed.
    """
    tokens = line.decode("ascii", "replace").lower().split()
    if not tokens:
        return ""
    first = tokens[0]
    if first == "show" and tokens[1:3] == ["unique", "jobs"]:
        return "show unique jobs"
    if first in _TWO_WORDS and len(tokens) > 1:
        return f"{first} {tokens[1]}"
    return first


@dataclass(frozen=True)
class Rule:
    """
    What one identity is granted.

    @ivar patterns: per right in L{FUNCTION_RIGHTS}, function-name globs.
    @ivar admin: the admin commands, groups expanded.
    """

    identity: str
    patterns: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    admin: frozenset[str] = frozenset()
    #: The values as written, for C{acl list}.
    written: tuple[tuple[str, str], ...] = ()

    def grants(self, right: str, name: bytes) -> bool:
        for pattern in self.patterns.get(right, ()):
            if fnmatchcase(name, pattern):
                return True
        return False


_NOBODY = Rule("")


class Rights:
    """
    What one identity may do under the policy in force, cached per name:
    asked on every submit, so a repeated answer costs one set lookup.  A
    reload changes the rule of the same object, so that open connections
    judge their next packet by the new rules.

    @ivar allowed: per right, the names found allowed so far (read directly
        by the per-packet path).
    """

    def __init__(self, identity: str, rule: Rule | None) -> None:
        self.identity = identity
        self.rule = rule if rule is not None else _NOBODY
        self.allowed: dict[str, set[bytes]] = {
            right: set() for right in FUNCTION_RIGHTS
        }
        self._denied: dict[str, set[bytes]] = {
            right: set() for right in FUNCTION_RIGHTS
        }

    def _setRule(self, rule: Rule | None) -> None:
        self.rule = rule if rule is not None else _NOBODY
        for cache in (*self.allowed.values(), *self._denied.values()):
            cache.clear()

    def may(self, right: str, name: bytes) -> bool:
        """Whether this identity has C{right} to function C{name}."""
        allowed = self.allowed[right]
        if name in allowed:
            return True
        denied = self._denied[right]
        if name in denied:
            return False
        verdict = self.rule.grants(right, name)
        cache = allowed if verdict else denied
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache.add(name)
        return verdict

    def mayAny(self, right: str) -> bool:
        """Whether any function is granted C{right}."""
        return bool(self.rule.patterns.get(right))

    def mayStatus(self, name: bytes | None) -> bool:
        """
        Whether this identity may read the status of a job of function
        C{name}, or of a handle no job has (C{None}): only with some
        C{status} right, so that one with none cannot learn which handles
        exist.
        """
        if not self.rule.patterns.get("status"):
            return False
        return name is None or self.may("status", name)

    def mayAdmin(self, command: str) -> bool:
        """Whether this identity may run the admin C{command}."""
        return command in self.rule.admin


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _parse(text: str, source: str) -> dict[str, Rule]:
    parser = configparser.ConfigParser(
        interpolation=None, delimiters=("=",), comment_prefixes=("#", ";")
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source)
    except configparser.Error as e:
        raise ACLError(f"{source}: {e.message}") from None
    rules: dict[str, Rule] = {}
    known = set(FUNCTION_RIGHTS) | {"admin"}
    for identity in parser.sections():
        section = parser[identity]
        patterns: dict[str, tuple[bytes, ...]] = {}
        admin: set[str] = set()
        written: list[tuple[str, str]] = []
        for key, value in section.items():
            right = key.lower()
            if right not in known:
                raise ACLError(
                    f"{source}: [{identity}] has {key!r}; the rights are "
                    f"{', '.join(FUNCTION_RIGHTS)} and admin"
                )
            written.append((right, ",".join(_split(value))))
            if right == "admin":
                for command in _split(value):
                    command = " ".join(command.lower().split())
                    if command in _ADMIN_GROUPS:
                        admin.update(_ADMIN_GROUPS[command])
                    elif command in ADMIN_READ or command in ADMIN_WRITE:
                        admin.add(command)
                    else:
                        raise ACLError(
                            f"{source}: [{identity}] admin names {command!r}, which "
                            "is no admin command (nor read, write or all)"
                        )
            else:
                patterns[right] = tuple(p.encode("utf-8") for p in _split(value))
        rules[identity] = Rule(identity, patterns, frozenset(admin), tuple(written))
    return rules


class AccessPolicy:
    """
    The rules of an ACL file, and the L{Rights} of every identity that has
    connected, kept up to date by L{reload}.
    """

    log = Logger()

    def __init__(
        self,
        rules: dict[str, Rule],
        path: str | None = None,
        default: Rule | None = None,
    ) -> None:
        """
        @param default: the rule of identities without a section of their
            own; by default they may do nothing.
        """
        self.path = path
        self.rules = rules
        self.default = default
        #: What C{settings} says of it, when it was not read from a file.
        self.summary: str | None = None
        self._rights: dict[str, Rights] = {}
        #: Bumped by every reload that took new rules.
        self.generation = 0

    @classmethod
    def fromFile(cls, path: str) -> AccessPolicy:
        """
        Read C{path}.

        @raise ACLError: it cannot be read or parsed.
        """
        return cls(cls._read(path), path)

    @classmethod
    def fromText(cls, text: str, source: str = "<acl>") -> AccessPolicy:
        """Rules written in a string (for tests and embedding)."""
        return cls(_parse(text, source))

    @staticmethod
    def _read(path: str) -> dict[str, Rule]:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ACLError(f"cannot read the ACL {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ACLError(f"the ACL {path} is not UTF-8 text") from None
        return _parse(text, path)

    def rightsFor(self, identity: str | None) -> Rights:
        """The rights of C{identity}; C{None} is L{ANONYMOUS}."""
        if identity is None:
            identity = ANONYMOUS
        rights = self._rights.get(identity)
        if rights is None:
            rights = self._rights[identity] = Rights(identity, self._ruleOf(identity))
        return rights

    def _ruleOf(self, identity: str) -> Rule | None:
        rule = self.rules.get(identity)
        return rule if rule is not None else self.default

    @classmethod
    def everythingBut(cls, admin: Iterable[str]) -> AccessPolicy:
        """
        A policy that grants every identity every right except the admin
        commands C{admin}: what the network ports get when only
        C{--admin-socket} keeps those commands local.
        """
        everything: dict[str, tuple[bytes, ...]] = {
            right: (b"*",) for right in FUNCTION_RIGHTS
        }
        kept = frozenset(ADMIN_READ + ADMIN_WRITE) - frozenset(admin)
        written = (
            *((right, "*") for right in FUNCTION_RIGHTS),
            ("admin", ",".join(sorted(kept))),
        )
        policy = cls({}, default=Rule("*", everything, kept, written))
        policy.summary = "none; " + ", ".join(sorted(admin)) + " only on --admin-socket"
        return policy

    @classmethod
    def adminOnly(cls) -> AccessPolicy:
        """Every admin command and nothing else: the admin socket's policy."""
        everything = frozenset(ADMIN_READ + ADMIN_WRITE)
        policy = cls({}, default=Rule("*", {}, everything, (("admin", "all"),)))
        policy.summary = "every admin command, nothing else"
        return policy

    def replace(self, rules: dict[str, Rule]) -> None:
        """Put C{rules} in force, for open connections too."""
        self.rules = rules
        self.generation += 1
        for identity, rights in self._rights.items():
            rights._setRule(self._ruleOf(identity))

    def reload(self) -> bool:
        """
        Read the file again; a file that cannot be used is logged and the
        rules in force stay.

        @return: whether new rules were taken.
        """
        if self.path is None:
            return False
        try:
            rules = self._read(self.path)
        except ACLError as e:
            self.log.error(
                "ACL not reloaded, the old rules stay in force: {error}", error=str(e)
            )
            return False
        self.replace(rules)
        self.log.info(
            "ACL reloaded from {path}: {count} identities",
            path=self.path,
            count=len(rules),
        )
        return True

    def listing(self) -> Iterable[bytes]:
        """
        The rules in force, one C{identity<TAB>right=patterns...} line per
        identity, as C{acl list} shows them.
        """
        rules = dict(self.rules)
        if self.default is not None:
            rules["*"] = self.default
        for identity in sorted(rules):
            rule = rules[identity]
            fields = "".join(f"\t{right}={value}" for right, value in rule.written)
            yield f"{identity}{fields}\n".encode("utf-8", "replace")

    def describe(self) -> str:
        """For C{settings}."""
        if self.path is None and self.summary is not None:
            return self.summary
        return f"{self.path or 'given'} ({len(self.rules)} identities)"
