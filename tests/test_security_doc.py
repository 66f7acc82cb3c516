"""SECURITY.md stays true: every requirement names tests, and every named test exists.

The requirement list is parsed from lines ``- **ID** rule`` each followed by
``  - tests: `path::name`, ...``. The README and the code cite requirement ids
("SECURITY.md O1-O7"); each id they cite must be defined there.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "SECURITY.md"
_REQUIREMENT = re.compile(r"^- \*\*([A-Z]\d{1,2})\*\* \S")
_TESTS = re.compile(r"^ {2}- tests: (.+)$")
_REF = re.compile(r"`([^`:]+)::([A-Za-z_][A-Za-z0-9_]*)`")
_CITED = re.compile(r"\b([A-Z])(\d{1,2})(?:-\1?(\d{1,2}))?\b")


def requirements() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for line in DOC.read_text().splitlines():
        if m := _REQUIREMENT.match(line):
            current = m.group(1)
            assert current not in found, f"{current} is defined twice"
            found[current] = []
        elif (m := _TESTS.match(line)) and current is not None:
            found[current].extend(_REF.findall(m.group(1)))
            current = None
    return found


@cache
def _functions(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )


def test_every_requirement_names_existing_tests() -> None:
    reqs = requirements()
    assert len(reqs) >= 30
    missing = []
    for rid, refs in reqs.items():
        assert refs, f"{rid} names no test"
        for path, name in refs:
            file = ROOT / path
            if not file.is_file() or not name.startswith("test") or name not in _functions(file):
                missing.append(f"{rid}: {path}::{name}")
    assert not missing, "SECURITY.md names tests that do not exist:\n" + "\n".join(missing)


def test_no_placeholder_is_left() -> None:
    assert "@" not in "".join(
        line for line in DOC.read_text().splitlines() if line.startswith("  - tests:")
    )


def _cited_ids(text: str) -> set[str]:
    ids: set[str] = set()
    for line in text.splitlines():
        if "SECURITY.md" not in line:
            continue
        for letter, first, last in _CITED.findall(line.split("SECURITY.md", 1)[1]):
            for n in range(int(first), int(last or first) + 1):
                ids.add(f"{letter}{n}")
    return ids


def test_ids_cited_by_readme_and_code_are_defined() -> None:
    cited = _cited_ids((ROOT / "README.md").read_text())
    for path in [*(ROOT / "service" / "oneauth").rglob("*.py"), *(ROOT / "packages").rglob("*.py")]:
        cited |= _cited_ids(path.read_text())
    assert {"O1", "O7", "S4", "B1", "A2"} <= cited
    assert not cited - set(requirements()), "cited but not in SECURITY.md"


def test_the_parser_sees_a_broken_reference() -> None:
    assert _REF.findall("`tests/x.py::test_y`, `a.py::b`") == [
        ("tests/x.py", "test_y"),
        ("a.py", "b"),
    ]
    assert "test_no_such_test" not in _functions(Path(__file__))
