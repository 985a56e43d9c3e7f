"""Which layer may import which (docs/architecture.md), checked by reading every import.

Each module under ``chat/`` is parsed with :mod:`ast` (nothing is imported, so
a module cannot hide an import behind a condition or a function body: every
``import`` statement counts, wherever it stands). A broken rule fails with the
file, the line, the module and what it imported.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHAT = Path(__file__).resolve().parents[2] / "chat"

# Standard-library modules that do I/O (network, processes, files as a
# database, threads of their own): the pure core takes events in and hands
# events out, and leaves all of these to chat.server and chat.backends.
IO_STDLIB = frozenset(
    {
        "asyncore",
        "dbm",
        "ftplib",
        "http",
        "imaplib",
        "mmap",
        "multiprocessing",
        "poplib",
        "select",
        "selectors",
        "shelve",
        "smtplib",
        "socket",
        "socketserver",
        "sqlite3",
        "ssl",
        "subprocess",
        "telnetlib",
        "urllib.request",
        "xmlrpc",
    }
)


# Libraries the core may use: pure computation, no I/O. argon2-cffi hashes
# passwords (chat.core.passwords): the rule of who may sign in needs it.
CORE_LIBRARIES = frozenset({"argon2"})


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _core_refuses(name: str) -> str | None:
    top = name.split(".")[0]
    if top == "chat":
        if _within(name, "chat.core") or _within(name, "chat.backends.base") or name in ("chat", "chat.backends"):
            return None
        return "the core may import only chat.core and chat.backends.base (the interfaces)"
    if top not in sys.stdlib_module_names and top not in CORE_LIBRARIES:
        return "the core imports no library outside the standard library (tornado, redis, websockets, ...)"
    if any(_within(name, io) for io in IO_STDLIB):
        return "the core does no I/O"
    return None


def _refuses(*prefixes: str) -> Callable[[str], str | None]:
    def check(name: str) -> str | None:
        for prefix in prefixes:
            if _within(name, prefix):
                return f"never {prefix}"
        return None

    return check


@dataclass(frozen=True)
class Rule:
    layer: str  # a package under chat/, dotted
    refuses: Callable[[str], str | None]  # the reason an import is refused, or None


RULES = [
    Rule("chat.core", _core_refuses),
    Rule("chat.backends", _refuses("chat.server", "chat.client", "chat.loadtest")),
    Rule("chat.client", _refuses("chat.server", "chat.backends")),
    Rule("chat.server", _refuses("chat.client", "chat.loadtest")),
]


@dataclass(frozen=True)
class Import:
    path: Path  # relative to the folder that holds chat/
    line: int
    module: str  # the importing module, dotted
    name: str  # what it imports, dotted and absolute

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.name}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every module ``path`` imports, by absolute name.

    ``from a.b import c`` yields ``a.b.c`` when that is a module under ``root``
    (a submodule is what was imported), else ``a.b``.
    """
    module = module_name(path, root)
    shown = path.relative_to(root.parent)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(shown, node.lineno, module, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield Import(shown, node.lineno, module, candidate if _is_module(candidate, root) else source)


def _is_module(name: str, root: Path) -> bool:
    if not _within(name, root.name):
        return False
    relative = Path(*name.split(".")[1:])
    return (root / relative).with_suffix(".py").is_file() or (root / relative / "__init__.py").is_file()


def violations(rule: Rule, root: Path) -> list[str]:
    """Each import under ``rule.layer`` that the rule refuses, with the reason."""
    folder = root.joinpath(*rule.layer.split(".")[1:])
    found = []
    for path in sorted(folder.rglob("*.py")):
        for imported in imports_of(path, root):
            reason = rule.refuses(imported.name)
            if reason is not None:
                found.append(f"{imported}: {rule.layer}: {reason}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=[rule.layer for rule in RULES])
def test_each_layer_imports_only_what_it_may(rule: Rule) -> None:
    found = violations(rule, CHAT)
    assert found == [], "\n".join(["imports across the layers (see docs/architecture.md):", *found])


def test_every_layer_the_rules_name_exists() -> None:
    for rule in RULES:
        assert (CHAT.joinpath(*rule.layer.split(".")[1:]) / "__init__.py").is_file(), rule.layer


# -- the checker itself, on a made-up tree ------------------------------------------------


def write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "chat"
    for package in ("", "core", "backends", "server", "client", "backends/redis"):
        write(root, f"{package}/__init__.py".lstrip("/"), "")
    write(root, "backends/base.py", "")
    write(root, "backends/memory.py", "")
    write(root, "server/metrics.py", "")
    write(root, "core/rules.py", "import json\nfrom chat.backends.base import Broker\nfrom . import rules\n")
    return root


def test_a_clean_core_passes(tree: Path) -> None:
    assert violations(RULES[0], tree) == []


@pytest.mark.parametrize(
    ("source", "imported"),
    [
        ("import tornado.web", "tornado.web"),
        ("import redis.asyncio as aioredis", "redis.asyncio"),
        ("import sqlite3", "sqlite3"),
        ("from websockets.client import connect", "websockets.client"),
        ("import socket", "socket"),
        ("from urllib.request import urlopen", "urllib.request"),
        ("def later():\n    import subprocess", "subprocess"),
        ("from chat.server.metrics import Metrics", "chat.server.metrics"),
        ("from chat.backends import memory", "chat.backends.memory"),
        ("from ..backends.memory import LocalBroker", "chat.backends.memory"),
        ("from ..server import metrics", "chat.server.metrics"),
    ],
)
def test_a_core_module_importing_io_or_an_outer_layer_fails_naming_both(tree: Path, source: str, imported: str) -> None:
    write(tree, "core/leaky.py", f"from __future__ import annotations\n{source}\n")
    [found] = violations(RULES[0], tree)
    assert f"chat.core.leaky imports {imported}:" in found
    assert found.startswith("chat/core/leaky.py:")


def test_the_core_may_use_the_pure_standard_library_and_the_interfaces(tree: Path) -> None:
    write(
        tree,
        "core/fine.py",
        "import asyncio, hmac, json\nfrom urllib.parse import urlsplit\nfrom chat.backends import base\n",
    )
    assert violations(RULES[0], tree) == []


def test_a_back_end_importing_the_server_fails(tree: Path) -> None:
    write(tree, "backends/redis/leaky.py", "from chat.server.metrics import Metrics\n")
    [found] = violations(RULES[1], tree)
    assert "chat.backends.redis.leaky imports chat.server.metrics: chat.backends: never chat.server" in found


def test_the_client_importing_a_back_end_fails(tree: Path) -> None:
    write(tree, "client/leaky.py", "import chat.backends.memory\n")
    [found] = violations(RULES[2], tree)
    assert "chat.client.leaky imports chat.backends.memory: chat.client: never chat.backends" in found
