"""The shape of the source that no linter checks (issue 17): each rule reads `src/` and says where it breaks."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "phoneops"


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


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
