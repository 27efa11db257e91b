"""The tree stays easy to read: no long functions in the shipped code, and DESIGN.md's map names every package."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Everything that ships or trains; bench/ (one-off measurement scripts) and tests/ are exempt.
SHIPPED = ("vsarvo", "export", "training", "examples")
MAX_FUNCTION_LINES = 80


def long_functions(path: Path, limit: int) -> list[str]:
    """``name:line (n lines)`` for each function or method in ``path`` longer than ``limit`` lines."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(f"{node.name}:{node.lineno} ({length} lines)")
    return found


def test_long_functions_are_found(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "sample.py"
    sample.write_text(f"def short():\n    pass\n\n\ndef too_long():\n{body}\n")
    assert [entry.split(":")[0] for entry in long_functions(sample, MAX_FUNCTION_LINES)] == ["too_long"]


def test_no_shipped_function_is_longer_than_the_limit() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} {entry}"
        for folder in SHIPPED
        for path in sorted((ROOT / folder).rglob("*.py"))
        for entry in long_functions(path, MAX_FUNCTION_LINES)
    ]
    assert offenders == [], f"functions over {MAX_FUNCTION_LINES} lines: split them into their steps"


def test_design_map_names_every_package() -> None:
    design = (ROOT / "DESIGN.md").read_text()
    packages = sorted(
        path.parent.relative_to(ROOT).as_posix()
        for folder in ("vsarvo", "training")
        for path in (ROOT / folder).rglob("__init__.py")
    )
    missing = [pkg for pkg in packages if f"{pkg.split('/')[-1]}/" not in design]
    assert missing == [], f"DESIGN.md's package map does not name {missing}"
