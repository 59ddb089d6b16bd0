"""Issue 13 item 1: one function applies the precedence table; no other module writes a number's list state.

A source-shape proof over src/: every SQL `update`/`insert` on `phone_numbers` and every `PhoneNumber(...)`
built in code is listed here with why it may be there. A new writer fails this test; the list may only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "phoneops"
ALLOWED = {
    ("numbers/lists.py", "insert"): "apply_verdicts: the precedence table (docs/lists.md), the one writer",
    ("numbers/lists.py", "update"): "apply_verdicts: the precedence table (docs/lists.md), the one writer",
    ("numbers/imports.py", "update"): "undo of an import restores the recorded state before it, with an UNDO event",
    ("numbers/optouts.py", "insert"): "registers an opted-out number that was never seen: no list state",
}


def _is_numbers_table(node: ast.AST, aliases: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "PhoneNumber" or node.id in aliases
    if isinstance(node, ast.Attribute):  # PhoneNumber.__table__
        return _is_numbers_table(node.value, aliases)
    if isinstance(node, ast.Call) and node.args:  # core_table(PhoneNumber)
        return _is_numbers_table(node.args[0], aliases)
    return False


def writers() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and isinstance(node.value, ast.Call) and _is_numbers_table(node.value, set())
                   for target in node.targets if isinstance(target, ast.Name)}
        name = path.relative_to(SRC).as_posix()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            kind = node.func.id
            if kind in ("update", "insert") and node.args and _is_numbers_table(node.args[0], aliases):
                found.setdefault((name, kind), []).append(node.lineno)
            elif kind == "PhoneNumber":
                found.setdefault((name, "construct"), []).append(node.lineno)
    return found


def test_only_the_precedence_function_writes_list_state() -> None:
    found = writers()
    assert set(found) <= set(ALLOWED), {k: v for k, v in found.items() if k not in ALLOWED}
    assert ("numbers/lists.py", "update") in found  # the scan sees the real writer (it is not vacuous)
