"""The architecture as a test: the layers of docs/architecture.md, checked on every import in src/.

Every `import` counts, also those inside functions (a lazy import is still a dependency); only imports under
`if TYPE_CHECKING:` are skipped (they never run). A violation fails with the rule's name and its reason.

`KNOWN` lists the violations that existed when a rule was introduced, each with why it is still there. It
only shrinks: a new violation fails, and so does an entry that no longer occurs (delete it then).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from phoneops import registry

SRC = Path(__file__).resolve().parents[2] / "src"

# Layers, bottom to top: settings < core < domains (and ui) < the entry points (app, cli, registry, __main__).
DOMAINS = tuple(registry.DOMAINS)  # every domain the app loads (a copy here went stale: webhooks, sources)
TOP = ("app", "cli", "registry", "__main__", "demo_seed")
# Entry points allowed to start simulators: the demo command runs the product against them.
STARTS_SIMULATORS = ("cli", "demo_seed", "demo_live")  # the demo command, its first syncs and its live feed
# The privacy domain finds and erases one person's data in every table: it reads every domain's models by design
# (a service per domain for that would only forward the same query).
READS_EVERY_DOMAIN = ("privacy",)
# What a migration may import: the column types Alembic's autogenerate writes (they must never change meaning).
MIGRATION_MAY_IMPORT = ("core.db",)
PRIVATE_PARTS = ("models", "client", "wire")

RULES = {
    "core-knows-no-domain": "core is what every domain builds on; wiring domains in belongs to the entry points "
    "(phoneops.app, phoneops.cli), which pass what core needs as arguments or hooks",
    "no-simulators-in-product": "simulators stand in for providers in tests and the demo; product code talks to "
    "providers only through its clients (only the demo entry point starts simulators)",
    "simulators-stand-alone": "a simulator imitates the provider's wire format on its own; reusing our client or "
    "parsing code would let a client bug test itself",
    "domain-uses-services": "a domain calls another domain's service functions, never its models, client or wire "
    "format (those may change with the owning domain)",
    "layers": "settings < core < domains < entry points (app, cli, registry): nothing imports a layer above it",
    "migrations-are-frozen": "a migration must do the same thing forever: it may import only the column types "
    "of phoneops.core.db, never live code whose behaviour changes",
    "no-import-cycles": "modules import each other in one direction only (counting imports inside functions), "
    "so each can be read, tested and loaded on its own",
}

KNOWN: dict[tuple[str, str, str], str] = {
    # (rule, importer, imported) -> why it is still there
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


@dataclass(frozen=True)
class Violation:
    rule: str
    importer: str
    imported: str
    line: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.rule, self.importer, self.imported

    def __str__(self) -> str:
        return f"[{self.rule}] {self.importer} imports {self.imported} (line {self.line}): {RULES[self.rule]}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield child
                yield from _runtime_nodes(child)
            continue
        yield node
        yield from _runtime_nodes(node)


def collect_imports(root: Path, package: str) -> tuple[set[str], list[Import]]:
    """All modules of `package` under `root` and every import between them (`from a import b` counts as a.b
    when a.b is a module, else as a)."""
    files = {_module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}
    modules = set(files)
    found: list[Import] = []
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.append(Import(name, target, node.lineno))
    return modules, found


def _layer(package: str, module: str) -> tuple[int, str]:
    """(rank, name): settings 0, core 1, a domain or ui 2, the entry points 3, the package itself -1."""
    rest = module[len(package) + 1:].split(".") if module != package else []
    if not rest:
        return -1, ""
    head = rest[0]
    if head == "settings":
        return 0, head
    if head == "core":
        return 1, head
    if head in TOP:
        return 3, head
    return 2, head


def check(root: Path, package: str, domains: tuple[str, ...] = DOMAINS) -> list[Violation]:
    modules, imports = collect_imports(root, package)
    out: list[Violation] = []
    for imp in imports:
        (rank_from, head_from), (rank_to, head_to) = _layer(package, imp.importer), _layer(package, imp.imported)
        parts_from, parts_to = imp.importer.split("."), imp.imported.split(".")

        def add(rule: str, imp: Import = imp) -> None:
            out.append(Violation(rule, imp.importer, imp.imported, imp.line))

        if head_from == "migrations" and len(parts_from) > 2 and parts_from[2] == "versions":
            if not any(imp.imported == f"{package}.{allowed}" for allowed in MIGRATION_MAY_IMPORT):
                add("migrations-are-frozen")
            continue
        if head_from == "simulators":
            if head_to != "simulators" and rank_to != -1:
                add("simulators-stand-alone")
            continue
        if head_to == "simulators":
            if head_from not in STARTS_SIMULATORS:
                add("no-simulators-in-product")
            continue
        if head_from == "core" and rank_to > 1:
            add("core-knows-no-domain")
            continue
        if head_from == "migrations":  # env.py: Alembic's environment needs every model's metadata
            continue
        if 0 <= rank_from < 3 and rank_to > rank_from and not (rank_from == 2 and rank_to == 2):
            add("layers")
            continue
        if (head_from in domains and head_to in domains and head_from != head_to
                and head_from not in READS_EVERY_DOMAIN and parts_to[-1] in PRIVATE_PARTS):
            add("domain-uses-services")
    for cycle in import_cycles(modules, imports):
        first = min(cycle)
        out.append(Violation("no-import-cycles", first, " -> ".join([*_rotate(cycle, first), first]), 0))
    return out


def _rotate(cycle: list[str], first: str) -> list[str]:
    i = cycle.index(first)
    return cycle[i:] + cycle[:i]


def import_cycles(modules: set[str], imports: list[Import]) -> list[list[str]]:
    """One cycle (as a path) per strongly connected group of two or more modules."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        graph[imp.importer].add(imp.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:  # a shortest way back to the group's first module, for a readable message
        start = min(group)
        paths = {start: [start]}
        queue = [start]
        while queue:
            v = queue.pop(0)
            for w in sorted(graph[v] & group):
                if w == start:
                    cycles.append(paths[v])
                    queue = []
                    break
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
    return cycles


KNOWN_CYCLES: dict[str, str] = {
    # the cycle's first module (alphabetically) -> why it is still there
}


def test_the_source_keeps_the_layers() -> None:
    found = list({v.key: v for v in reversed(check(SRC, "phoneops"))}.values())  # one per key (its first line)
    new = [v for v in found if v.key not in KNOWN and not (v.rule == "no-import-cycles" and v.importer in KNOWN_CYCLES)]
    assert not new, "architecture rules broken (docs/architecture.md):\n" + "\n".join(map(str, new))
    seen = {v.key for v in found} | {("no-import-cycles", v.importer, "") for v in found if v.rule == "no-import-cycles"}
    stale = [k for k in KNOWN if k not in seen] + [c for c in KNOWN_CYCLES if ("no-import-cycles", c, "") not in seen]
    assert not stale, f"fixed now, so remove these entries of KNOWN / KNOWN_CYCLES ({__file__}): {stale}"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    for folder in [p for p in (tmp_path / "pkg").rglob("*") if p.is_dir()] + [tmp_path / "pkg"]:
        (folder / "__init__.py").touch()
    return tmp_path


CLEAN = {
    "settings.py": "import os\n",
    "core/db.py": "from pkg import settings\n",
    "core/jobs.py": "from pkg.core import db\n",
    "numbers/models.py": "from pkg.core.db import x\n",
    "numbers/service.py": "from pkg.numbers import models\n",
    "hlr/client.py": "import httpx\n",
    "hlr/provider.py": "from pkg.numbers.service import find\nfrom pkg.hlr import client\n"
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.app import App\n",
    "simulators/hlr.py": "from pkg.simulators import _server\n",
    "simulators/_server.py": "import json\n",
    "migrations/versions/0001_core.py": "import pkg.core.db\n",
    "app.py": "from pkg.hlr import service\nfrom pkg.core import jobs\n",
    "cli.py": "def demo():\n    from pkg.simulators import hlr\n",
}


def test_a_clean_package_passes(tmp_path: Path) -> None:
    assert check(_package(tmp_path, CLEAN), "pkg", domains=("numbers", "hlr")) == []


@pytest.mark.parametrize(
    ("rule", "extra"),
    [
        ("core-knows-no-domain", {"core/metrics.py": "def render():\n    from pkg.hlr import service\n"}),
        ("core-knows-no-domain", {"core/queue.py": "from pkg import registry\n", "registry.py": ""}),
        ("no-simulators-in-product", {"hlr/tasks.py": "from pkg.simulators.hlr import run\n"}),
        ("simulators-stand-alone", {"simulators/ongage.py": "from pkg.hlr.client import parse\n"}),
        ("domain-uses-services", {"hlr/lookups.py": "from pkg.numbers.models import PhoneNumber\n"}),
        ("domain-uses-services", {"numbers/sync.py": "def f():\n    from pkg.hlr import client\n"}),
        ("layers", {"numbers/cli.py": "from pkg.cli import follow_job\n"}),
        ("layers", {"core/errors.py": "from pkg.numbers import service\n", "settings.py": "from pkg.core import db\n"}),
        ("migrations-are-frozen", {"migrations/versions/0002_x.py": "from pkg.hlr.service import seed\n"}),
        ("no-import-cycles", {"core/audit.py": "from pkg.core import security\n",
                              "core/security.py": "def f():\n    from pkg.core import audit\n"}),
    ],
)
def test_each_rule_fails_when_broken(tmp_path: Path, rule: str, extra: dict[str, str]) -> None:
    found = check(_package(tmp_path, {**CLEAN, **extra}), "pkg", domains=("numbers", "hlr"))
    assert rule in {v.rule for v in found}, found
    message = str(next(v for v in found if v.rule == rule))
    assert message.startswith(f"[{rule}]") and RULES[rule] in message


def test_the_cycle_message_shows_the_way_round(tmp_path: Path) -> None:
    files = {**CLEAN, "core/a.py": "from pkg.core import b\n", "core/b.py": "from pkg.core import c\n",
             "core/c.py": "def f():\n    import pkg.core.a\n"}
    (cycle,) = [v for v in check(_package(tmp_path, files), "pkg", domains=("numbers", "hlr"))
                if v.rule == "no-import-cycles"]
    assert cycle.imported == "pkg.core.a -> pkg.core.b -> pkg.core.c -> pkg.core.a"
