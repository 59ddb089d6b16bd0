"""The docs in the repo stay true: every setting documented, every CLI command the README shows exists with
the options it shows, every link between the repo's documents and every `docs/` path the code cites resolves,
and the code cites the repo's own docs, not documents outside it. Each check is also shown failing."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"shared/(providers|reference)|DESIGN\.md")


def doc_files(root: Path) -> list[Path]:
    return sorted([root / "README.md", *(root / "docs").rglob("*.md")])


# --- settings -------------------------------------------------------------------------------------


def undocumented_settings(names: set[str], env_example: str, docs: str) -> list[str]:
    """Settings missing from .env.example (as `NAME=`) or not named anywhere in the README and docs/."""
    in_env = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", env_example, re.M))
    missing = [f"{name}: not in .env.example" for name in sorted(names - in_env)]
    missing += [f"{name}: not in README.md or docs/" for name in sorted(names) if not re.search(rf"\b{name}\b", docs)]
    return missing


def test_every_setting_is_in_env_example_and_the_docs() -> None:
    from phoneops.settings import Settings

    names = {field.alias or name.upper() for name, field in Settings.model_fields.items()}
    docs = "\n".join(p.read_text() for p in doc_files(ROOT))
    assert not undocumented_settings(names, (ROOT / ".env.example").read_text(), docs)


def test_a_setting_missing_anywhere_is_named() -> None:
    problems = undocumented_settings({"A_B", "C_D", "E_F"}, "A_B=1\n# C_D=\nE_F=\n", "uses A_B and C_D_X")
    assert problems == ["C_D: not in .env.example", "C_D: not in README.md or docs/", "E_F: not in README.md or docs/"]


# --- CLI commands in the README --------------------------------------------------------------------


def cli_examples(markdown: str) -> list[str]:
    """Each `phoneops …` command line shown in code (fenced blocks and inline code)."""
    lines: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", markdown, re.S):
        lines += [line.strip() for line in block.splitlines() if line.strip().startswith("phoneops ")]
    without_blocks = re.sub(r"```.*?```", "", markdown, flags=re.S)
    lines += [span.strip() for span in re.findall(r"`([^`]+)`", without_blocks) if span.startswith("phoneops ")]
    return [" ".join(line.split("#", 1)[0].split()) for line in lines]


def cli_problem(root: Any, line: str) -> str | None:
    """Why `line` would not run as shown (an unknown command or option), or None. `root` is a Click command
    (Typer's own copy of Click: groups are recognised by their `commands`)."""
    words = shlex.split(line)[1:]
    command, path = root, ["phoneops"]
    while words and hasattr(command, "commands") and not words[0].startswith("-"):
        found = command.commands.get(words[0])
        if found is None:
            return f"`{line}`: `{' '.join(path)}` has no command `{words[0]}`"
        command, path = found, [*path, words.pop(0)]
    if hasattr(command, "commands") and words and not words[0].startswith("-"):
        return f"`{line}`: `{' '.join(path)}` needs a command"
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]} | {"--help"}
    for word in words:
        if word.startswith("-") and word.split("=", 1)[0] not in known:
            return f"`{line}`: `{' '.join(path)}` has no option `{word}`"
    return None


def phoneops_command() -> Any:
    """The root CLI with every domain's commands, built without touching the app object other tests use."""
    import typer

    from phoneops.cli import app
    from phoneops.registry import domain_modules

    root = typer.main.get_command(app)
    for module in domain_modules("cli"):
        root.add_command(typer.main.get_command(module.app), module.NAME)
    return root


def test_every_cli_command_in_the_readme_exists() -> None:
    examples = cli_examples((ROOT / "README.md").read_text())
    assert len(examples) > 20  # the parser found the README's CLI section
    root = phoneops_command()
    problems = [p for line in examples if (p := cli_problem(root, line))]
    assert not problems, "\n".join(problems)


def test_a_wrong_cli_example_is_named() -> None:
    root = phoneops_command()
    text = "```sh\nphoneops numbers lookup X   # fine\nphoneops numbers frobnicate X\n```\nRun `phoneops serve --colour`."
    examples = cli_examples(text)
    assert examples == ["phoneops numbers lookup X", "phoneops numbers frobnicate X", "phoneops serve --colour"]
    assert [cli_problem(root, line) for line in examples] == [
        None,
        "`phoneops numbers frobnicate X`: `phoneops numbers` has no command `frobnicate`",
        "`phoneops serve --colour`: `phoneops serve` has no option `--colour`",
    ]


# --- links ---------------------------------------------------------------------------------------------


def broken_links(root: Path, files: list[Path]) -> list[str]:
    """Relative Markdown links (`[text](path)` / `(path#anchor)`) whose file does not exist."""
    broken = []
    for path in files:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address, mail address or an anchor in the same page
            if not (path.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{path.relative_to(root)}: {target}")
    return broken


def test_every_link_between_the_docs_resolves() -> None:
    assert not broken_links(ROOT, doc_files(ROOT))


def cited_docs(root: Path) -> list[tuple[str, str]]:
    """(file, cited path) for every `docs/….md` the code and tests name (this file's examples aside)."""
    cites = []
    for path in sorted([*(root / "src").rglob("*.py"), *(root / "tests").rglob("*.py")]):
        if path.name == Path(__file__).name:
            continue
        for cited in re.findall(r"\bdocs/[A-Za-z0-9_./-]+\.md", path.read_text()):
            cites.append((str(path.relative_to(root)), cited))
    return cites


def test_every_docs_path_the_code_cites_exists() -> None:
    cites = cited_docs(ROOT)
    assert any(cited == "docs/architecture.md" for _, cited in cites)
    missing = [f"{where}: {cited}" for where, cited in cites if not (ROOT / cited).exists()]
    assert not missing, missing


def test_the_code_cites_no_document_outside_the_repo() -> None:
    outside = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "src").rglob("*.py"))
               for n, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not outside, f"cite the repo's docs/ instead: {outside}"


def test_a_broken_link_is_named(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("[ok](b.md#x) [gone](missing.md) [web](https://x.org) [here](#top)")
    (tmp_path / "docs" / "b.md").write_text("[up](../README.md)")
    (tmp_path / "README.md").write_text("[docs](docs/a.md) [old](docs/old.md)")
    assert broken_links(tmp_path, doc_files(tmp_path)) == ["README.md: docs/old.md", "docs/a.md: missing.md"]


@pytest.mark.parametrize("line", ["# see shared/providers/hlr_lookup.md", "(DESIGN.md, jobs)", "shared/reference/x.md"])
def test_an_outside_citation_is_caught(line: str) -> None:
    assert OUTSIDE.search(line)
