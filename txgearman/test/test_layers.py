"""
The dependency rule, checked on the source: the codec imports nothing of
the project; a store imports only the store package; the server imports
the codec, the stores and itself; the client library imports the codec and
itself; the web face imports the server, the stores, the codec and
itself (and only twistd's composition root, C{server.tap}, imports it);
txgearman-import imports the codec, the stores, the server's store
options and itself.
Only L{txgearman.testing}, which wires both ends together for tests, and
the test packages may import across.

Read with L{ast} rather than by importing, so that an import inside a
function or under C{TYPE_CHECKING} counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import txgearman

PACKAGE = Path(txgearman.__file__).parent

#: What each layer may import of the project, by module name prefix.  The
#: package's own C{__init__} (its version), L{txgearman._words} and
#: L{txgearman._histogram} (which import nothing) may be imported by every
#: layer.
SHARED = (
    "txgearman",
    "txgearman.__version__",
    "txgearman._words",
    "txgearman._words.counted",
    "txgearman._histogram",
    "txgearman._histogram.Histogram",
    "txgearman._histogram.JOB_SECONDS",
    "txgearman._histogram.STORE_SECONDS",
    "txgearman._pem",
    "txgearman._pem.loadCertificates",
    "txgearman._pem.readCertificates",
    "txgearman._pem.readKey",
)

ALLOWED: dict[str, tuple[str, ...]] = {
    "txgearman.codec": (),
    "txgearman.store": ("txgearman.store",),
    "txgearman.server": ("txgearman.codec", "txgearman.store", "txgearman.server"),
    "txgearman.client": ("txgearman.codec", "txgearman.client"),
    "txgearman.web": (
        "txgearman.codec",
        "txgearman.store",
        "txgearman.server",
        "txgearman.web",
    ),
    # txgearman-import: it builds a store as the server does, with the
    # server's store options, and needs nothing else of the server.
    "txgearman.importer": (
        "txgearman.codec",
        "txgearman.store",
        "txgearman.server.storeoptions",
        "txgearman.importer",
    ),
}

#: Modules allowed one import beyond their layer's: the composition root
#: of twistd gearman builds the web face (which reads the server) on top.
ROOTS: dict[str, tuple[str, ...]] = {
    "txgearman.server.tap": ("txgearman.web",),
}

#: Third-party modules a layer must not import: only the Redis store talks
#: to Redis (and txredisapi installs the global reactor when imported).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "txgearman.codec": ("txredisapi",),
    "txgearman.server": ("txredisapi",),
    "txgearman.client": ("txredisapi",),
    "txgearman.web": ("txredisapi",),
    "txgearman.importer": ("txredisapi",),
}

#: Imported at the top of no library module: the application chooses the
#: reactor.  (A function may fall back to the global one when none is
#: given, by importing it when called.)
NEVER_AT_TOP = ("twisted.internet.reactor",)


def moduleName(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, topLevel: bool = False) -> set[str]:
    """
    Every module the source at C{path} imports, anywhere in it (or, with
    C{topLevel}, outside functions).  For C{from package import name},
    both C{package} and C{package.name}: the name may be a module.
    """
    names: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    nodes = _outsideFunctions(tree) if topLevel else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _outsideFunctions(node: ast.AST) -> list[ast.AST]:
    found: list[ast.AST] = []
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            found.append(child)
            found.extend(_outsideFunctions(child))
    return found


def layerOf(module: str) -> str | None:
    for layer in ALLOWED:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        module = moduleName(path, package)
        layer = layerOf(module)
        if layer is None:
            continue
        for name in sorted(imported(path)):
            if name in SHARED:
                continue
            if name.startswith("txgearman.") and layerOf(name) is not None:
                if not within(name, ALLOWED[layer] + ROOTS.get(module, ())):
                    found.append(f"{module} imports {name}")
            elif name.startswith("txgearman."):
                # testing, test: no library module may lean on them.
                found.append(f"{module} imports {name}")
            if within(name, FORBIDDEN.get(layer, ())):
                found.append(f"{module} imports {name}")
        if module != "txgearman.store.redis" and layer == "txgearman.store":
            found.extend(
                f"{module} imports {name}"
                for name in sorted(imported(path))
                if within(name, ("txredisapi",))
            )
        found.extend(
            f"{module} imports {name} at the top"
            for name in sorted(imported(path, topLevel=True))
            if within(name, NEVER_AT_TOP)
        )
    return found


class DependencyRuleTests(SynchronousTestCase):
    def test_rule(self) -> None:
        """
        No module of the library imports outside what its layer may.
        """
        self.assertEqual(violations(), [])

    def test_sharedImportsNothing(self) -> None:
        """
        What every layer may import imports nothing itself, of the project
        or beyond the standard library's C{__future__}.
        """
        self.assertEqual(
            imported(PACKAGE / "_words.py"), {"__future__", "__future__.annotations"}
        )
        self.assertEqual(
            imported(PACKAGE / "_histogram.py"),
            {
                "__future__",
                "__future__.annotations",
                "bisect",
                "bisect.bisect_left",
                "collections.abc",
                "collections.abc.Sequence",
            },
        )

    def test_layersSeen(self) -> None:
        """
        The check reads every layer's modules: a rename that hid a package
        from it would make it pass without looking.
        """
        layers = {layerOf(moduleName(path)) for path in PACKAGE.rglob("*.py")}
        self.assertTrue(set(ALLOWED) <= layers, layers)

    def test_violationsFound(self) -> None:
        """
        Each kind of breach is reported, naming the module and the import.
        """
        package = Path(self.mktemp()) / "txgearman"
        for name, source in {
            "codec.py": "import txgearman.store.interfaces\n",
            "client/worker.py": "def f():\n    from txgearman.server import core\n",
            "server/core.py": "from txgearman.client import errors\nimport txredisapi\n",
            "store/memory.py": "import txredisapi\nfrom txgearman import testing\n",
            "store/redis.py": "import txredisapi\n",
            "server/service.py": "from twisted.internet import reactor\n",
        }.items():
            (package / name).parent.mkdir(parents=True, exist_ok=True)
            (package / name).write_text(source)
        self.assertEqual(
            violations(package),
            [
                "txgearman.client.worker imports txgearman.server",
                "txgearman.client.worker imports txgearman.server.core",
                "txgearman.codec imports txgearman.store.interfaces",
                "txgearman.server.core imports txgearman.client",
                "txgearman.server.core imports txgearman.client.errors",
                "txgearman.server.core imports txredisapi",
                "txgearman.server.service imports twisted.internet.reactor at the top",
                "txgearman.store.memory imports txgearman.testing",
                "txgearman.store.memory imports txredisapi",
            ],
        )

    def test_detects(self) -> None:
        """
        The reader finds imports at any depth and in both forms.
        """
        path = Path(self.mktemp())
        path.write_text(
            "import txgearman.server.core\n"
            "def f():\n"
            "    from txgearman.store import memory\n"
            "if True:\n"
            "    from txredisapi import Connection\n"
        )
        self.assertEqual(
            imported(path, topLevel=True),
            {"txgearman.server.core", "txredisapi", "txredisapi.Connection"},
        )
        self.assertEqual(
            imported(path),
            {
                "txgearman.server.core",
                "txgearman.store",
                "txgearman.store.memory",
                "txredisapi",
                "txredisapi.Connection",
            },
        )
