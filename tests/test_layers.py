"""The architecture's rules, read off the source: who imports whom, and who touches Tornado's
privates (docs/architecture.md, "The map")."""

from __future__ import annotations

import ast
import os

import pytest
import tornado

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_TREES = ("auth", "edge", "handlers", "hub", "models", "services")
SERVER_FILES = ("app.py", "config.py", "context.py", "main.py")
# The only modules that may read, set, override or import a private of Tornado's.
TORNADO_PRIVATE_MODULES = {"edge/internals.py", "edge/protocol.py"}
# Which of the server's own floors each floor may import (besides itself and third parties).
ALLOWED = {
    "models": set(),
    "auth": set(),
    "hub": set(),
    "edge": {"hub", "auth", "config"},
    "services": {"hub", "models", "auth", "config"},
    "handlers": {"edge", "services", "hub", "auth", "config", "context", "models"},
    "context": {"auth", "config", "edge", "hub", "models", "services"},
}
OURS = {"auth", "edge", "handlers", "hub", "models", "services", "app", "config", "context",
        "main"}


def server_modules() -> list[str]:
    """Returns the server's Python files, relative to the repository root."""
    out = [f for f in SERVER_FILES if os.path.exists(os.path.join(ROOT, f))]
    for tree in SERVER_TREES:
        for folder, _, files in os.walk(os.path.join(ROOT, tree)):
            out += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files
                    if f.endswith(".py") and not f.endswith("_pb2.py")]
    return sorted(out)


def parse(path: str) -> ast.Module:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def floor(path: str) -> str:
    return path.split("/")[0].removesuffix(".py")


def imported(tree: ast.Module) -> list[tuple[int, str]]:
    """Returns (line, module) of every absolute import in a module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def tornado_private_names() -> set[str]:
    """Returns every single-underscore name Tornado's modules define or assign."""
    names: set[str] = set()
    package = os.path.dirname(tornado.__file__)
    for folder, _, files in os.walk(package):
        if "test" in os.path.relpath(folder, package):
            continue
        for file in files:
            if not file.endswith(".py"):
                continue
            with open(os.path.join(folder, file), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def tornado_subclasses(trees: dict[str, ast.Module]) -> set[str]:
    """Returns the names of the server's classes that derive, at any depth, from Tornado's."""
    from_tornado: set[str] = set()
    bases: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tornado"):
                from_tornado |= {alias.asname or alias.name for alias in node.names}
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {ast.unparse(b).split(".")[-1] for b in node.bases}
    derived = {name for name, b in bases.items() if b & from_tornado}
    while True:
        more = {name for name, b in bases.items() if b & derived} - derived
        if not more:
            return derived
        derived |= more


def private_uses(path: str, tree: ast.Module, private: set[str], subclasses: set[str],
                 own: set[str]) -> list[str]:
    """Returns where a module reads, sets, overrides or imports a private of Tornado's."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tornado"):
            found += [f"{path}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name.startswith("_")]
        elif isinstance(node, ast.ClassDef) and node.name in subclasses:
            for inner in ast.walk(node):
                if (isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and inner.name in private):
                    found.append(f"{path}:{inner.lineno} overrides {inner.name}")
                elif (isinstance(inner, ast.Attribute) and inner.attr in private
                      and ast.unparse(inner.value) in ("self", "super()")):
                    found.append(f"{path}:{inner.lineno} uses self.{inner.attr}")
        if (isinstance(node, ast.Attribute) and node.attr in private - own
                and ast.unparse(node.value) not in ("self", "cls", "super()")):
            found.append(f"{path}:{node.lineno} uses {ast.unparse(node)}")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and node.value in private - own):
            found.append(f"{path}:{node.lineno} names {node.value!r}")
    return found


def own_private_names(trees: dict[str, ast.Module]) -> set[str]:
    """Returns the private names the server's own modules define or assign on self."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and ast.unparse(node.value) == "self"):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_")}


@pytest.fixture(scope="module")
def trees() -> dict[str, ast.Module]:
    return {path: parse(path) for path in server_modules()}


def test_each_floor_imports_only_the_floors_below_it(trees):
    """models, auth and hub import none of the server's other packages; edge, services,
    handlers and the context only what lies below them; only main.py imports app.py."""
    wrong = []
    for path, tree in trees.items():
        here = floor(path)
        for line, module in imported(tree):
            there = module.split(".")[0]
            if there not in OURS or there == here:
                continue
            if there == "app" and here != "main":
                wrong.append(f"{path}:{line} imports app")
            elif here in ALLOWED and there not in ALLOWED[here]:
                wrong.append(f"{path}:{line} imports {module}")
    assert wrong == []


def test_tornado_privates_are_touched_only_in_the_edge_adapter_and_protocol(trees):
    """No module but edge/internals.py and edge/protocol.py reads, sets, overrides or imports
    a private name of Tornado's; hub/, handlers/ and services/ use its public API only."""
    private = tornado_private_names()
    subclasses = tornado_subclasses(trees)
    inside = {p: t for p, t in trees.items() if p not in TORNADO_PRIVATE_MODULES}
    own = own_private_names(inside) - {n for p in TORNADO_PRIVATE_MODULES
                                       for n in own_private_names({p: trees[p]})}
    uses = [use for path, tree in inside.items()
            for use in private_uses(path, tree, private, subclasses, own)]
    assert uses == []


def test_the_private_scan_finds_what_the_adapter_does(trees):
    """The scan is not blind: run on the adapter and the protocol, it finds their uses."""
    private = tornado_private_names()
    subclasses = tornado_subclasses(trees)
    for path in TORNADO_PRIVATE_MODULES:
        assert private_uses(path, trees[path], private, subclasses, set()), path


def test_hub_has_no_type_ignores():
    """The hub's connection interface is typed well enough to need no `type: ignore`."""
    found = []
    for path in server_modules():
        if floor(path) != "hub" or path.endswith("_pb2.py"):
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            found += [f"{path}:{n}" for n, line in enumerate(f, 1) if "type: ignore" in line]
    assert found == []


def test_handlers_hold_routes_only():
    """handlers/ holds route handlers and their mixins; the server's plumbing is in edge/."""
    plumbing = {"server.py", "edge.py", "upgrade.py", "wsframes.py", "heartbeat.py",
                "access_log.py", "log_format.py"}
    assert plumbing & set(os.listdir(os.path.join(ROOT, "handlers"))) == set()
    with open(os.path.join(ROOT, "handlers", "ws.py"), encoding="utf-8") as f:
        assert sum(1 for _ in f) <= 200


def test_the_benchmarks_stay_within_their_line_budget():
    """bench/ (its .py and .js files, not the peers' node_modules nor results) stays within
    4,540 lines: it was once the largest room of the house (4,200 until the floor server,
    the bare handshake every handshake is measured against, took its own file; 4,310 until
    paired rounds could run a git revision's build beside this tree's, `--base`; 4,340 until
    they measured known sessions reconnecting, the R rounds, with three tabs a user; 4,400
    until every server's full garbage collections were counted, bench/gcwatch)."""
    total = 0
    for top, dirs, files in os.walk(os.path.join(ROOT, "bench")):
        dirs[:] = [d for d in dirs if d not in ("node_modules", "results", "__pycache__")]
        for name in files:
            if name.endswith((".py", ".js")):
                with open(os.path.join(top, name), encoding="utf-8") as f:
                    total += sum(1 for _ in f)
    assert 1000 < total <= 4540, total
