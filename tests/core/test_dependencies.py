"""constraints.txt pins what a fresh install gets (`make`, the Dockerfile, CI): every dependency of
pyproject.toml (runtime, dev and bench) is pinned once, inside the range pyproject.toml allows, and the
environment running this suite is the pinned one, so what CI tested is what installs get."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", line)
        assert match, f"constraints.txt line {number} is not an exact pin: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in found, f"{name} is pinned twice"
        found[name] = match.group(2)
    return found


def requirements(*extras: str) -> list[Requirement]:
    """pyproject.toml's runtime dependencies, and those of the given extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    return [Requirement(text) for text in [*project["dependencies"], *(t for e in extras for t in optional[e])]]


def test_every_dependency_is_pinned_inside_its_range() -> None:
    pinned = pins()
    assert "polars" in pinned and "pytest" in pinned  # the file is the real one
    for requirement in requirements("dev", "bench"):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not pinned in constraints.txt (make lock)"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside pyproject.toml's {requirement}")


def test_the_suite_runs_on_the_pinned_versions() -> None:
    pinned = pins()
    for name in (canonicalize_name(requirement.name) for requirement in requirements()):
        installed = metadata.version(name)
        assert installed == pinned[name], (
            f"{name} {installed} is installed but constraints.txt pins {pinned[name]}: reinstall with "
            "`make` (or run `make lock` and the suite to move the pin)")
