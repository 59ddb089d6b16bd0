"""The shape of the source that no linter checks (issue 17): each rule reads `src/` and says where it breaks."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "phoneops"


@cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def rowcount_ignores(root: Path) -> list[str]:
    """`result.rowcount` silenced for mypy: `core.db.rowcount(result)` is the one typed way to read it."""
    pattern = re.compile(r"rowcount.*# type: ignore")
    return [f"{path.relative_to(root.parent)}:{number}" for path in sorted(root.rglob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]


def test_rowcount_is_read_through_core_db() -> None:
    assert not rowcount_ignores(SRC), "use phoneops.core.db.rowcount(result) instead of a type: ignore"


def test_the_rowcount_rule_fails_when_broken(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("n = session.execute(q).rowcount  # type: ignore[attr-defined]\n")
    assert rowcount_ignores(tmp_path / "pkg") == ["pkg/m.py:1"]


KIND_ARGUMENT = {"create_job": 2, "job_handler": 0}  # call -> position of the job kind


def bare_job_kinds(root: Path) -> list[str]:
    """A job kind written as a string where a job is created or handled: name it once as a constant, so the
    creating module and the handling one cannot drift apart."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(_parsed(path)):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            position = KIND_ARGUMENT.get(name)
            if position is None or len(node.args) <= position:
                continue
            argument = node.args[position]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {name}({argument.value!r})")
    return found


def test_job_kinds_are_named_constants() -> None:
    assert not bare_job_kinds(SRC), "name the job kind as a module constant and use it in both places"


def test_the_job_kind_rule_fails_when_broken(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        'KIND = "a.b"\njob = create_job(s, actor, KIND, {})\n'
        '@job_handler("x.y")\ndef handle(ctx):\n    return jobs.create_job(s, actor, "x.y", {})\n'
    )
    assert bare_job_kinds(tmp_path / "pkg") == ["pkg/m.py:3 job_handler('x.y')", "pkg/m.py:5 create_job('x.y')"]


BLOCK = 10  # lines


def repeated_blocks(root: Path, size: int = BLOCK) -> list[str]:
    """Places where `size` identical lines (stripped, none blank or a comment) appear twice in the source: the
    second copy should be a shared function. Import statements are left out: two modules may import alike."""
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        imports = {line for node in ast.walk(_parsed(path)) if isinstance(node, ast.Import | ast.ImportFrom)
                   for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
        lines = [("" if number in imports else line.strip()) for number, line in enumerate(text.splitlines(), 1)]
        for start in range(len(lines) - size + 1):
            block = lines[start:start + size]
            if all(line and not line.startswith("#") for line in block):
                places["\n".join(block)].append(f"{path.relative_to(root.parent)}:{start + 1}")
    found: list[str] = []
    seen: set[str] = set()
    for where in places.values():
        if len(where) > 1 and where[0] not in seen:
            seen.update(f"{w.rpartition(':')[0]}:{int(w.rpartition(':')[2]) + d}" for w in where for d in range(size))
            found.append(" = ".join(where))
    return found


def test_no_block_of_ten_lines_is_written_twice() -> None:
    assert not repeated_blocks(SRC), "share these lines (one function) instead of a copy"


def test_the_repeated_block_rule_fails_when_broken(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    body = "".join(f"    total += {n}\n" for n in range(BLOCK))
    (tmp_path / "pkg" / "a.py").write_text(f"import os\n\ndef a(total):\n{body}    return total\n")
    (tmp_path / "pkg" / "b.py").write_text(f"import os\n\ndef b(total):\n{body}    return total + 1\n")
    assert repeated_blocks(tmp_path / "pkg") == ["pkg/a.py:4 = pkg/b.py:4"]


LONG = 400  # lines
REASON = "# Over 400 lines: "


def long_without_reason(root: Path) -> list[str]:
    """A module over 400 lines says why on its first line (`# Over 400 lines: <reason>.`), or is split."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > LONG and not (lines[0].startswith(REASON) and len(lines[0]) > len(REASON) + 10):
            found.append(f"{path.relative_to(root.parent)} ({len(lines)} lines)")
    return found


def test_long_modules_say_why() -> None:
    assert not long_without_reason(SRC), f"split these modules or start them with '{REASON}<why>.'"


def test_the_long_module_rule_fails_when_broken(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text("x = 1\n" * (LONG + 1))
    (tmp_path / "pkg" / "said.py").write_text(f"{REASON}one protocol, kept whole.\n" + "x = 1\n" * LONG)
    (tmp_path / "pkg" / "short.py").write_text("x = 1\n" * LONG)
    assert long_without_reason(tmp_path / "pkg") == [f"pkg/long.py ({LONG + 1} lines)"]


def unlisted_modules(root: Path) -> list[str]:
    """Each package's `__init__` docstring lists its modules, one line each (`- name.py: what it holds`), so a
    newcomer reads a domain's map before its code."""
    found = []
    for init in sorted(root.glob("*/__init__.py")):
        listed = {line.strip()[2:].split(":")[0] for line in (ast.get_docstring(_parsed(init)) or "").splitlines()
                  if line.strip().startswith("- ")}
        found += [f"{path.relative_to(root.parent)}" for path in sorted(init.parent.glob("*.py"))
                  if path.name != "__init__.py" and path.name not in listed]
    return found


def test_each_package_lists_its_modules() -> None:
    assert not unlisted_modules(SRC), "add a line '- name.py: what it holds' to the package's __init__ docstring"


def test_the_module_list_rule_fails_when_broken(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "dom").mkdir(parents=True)
    (tmp_path / "pkg" / "dom" / "__init__.py").write_text('"""A domain.\n\n- listed.py: here\n"""\n')
    (tmp_path / "pkg" / "dom" / "listed.py").write_text("")
    (tmp_path / "pkg" / "dom" / "forgotten.py").write_text("")
    assert unlisted_modules(tmp_path / "pkg") == ["pkg/dom/forgotten.py"]
