"""The layout rules of DESIGN.md, checked on the source: one module owns each outside library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "flipkd"

# library -> the flipkd paths (package folders or single files) allowed to import it.
# bench/peer.py is the benchmark's peer: deliberately a plain sentence-transformers + peft
# user set up without flipkd (its docstring), so it talks to peft itself.
OWNERS = {
    "peft": ("student/", "bench/peer.py"),
    "accelerate": ("trainer/",),
    "fastapi": ("serve/",),
    "starlette": ("serve/",),
    "uvicorn": ("serve/",),
    "typer": ("cli/",),
}


def imported_libraries(source: str) -> set[str]:
    """Top-level names of every module a file imports at run time, in functions too;
    imports under ``if TYPE_CHECKING:`` are annotations only and do not count."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name.split(".")[0] for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level == 0 and node.module:
                found.add(node.module.split(".")[0])

    Visitor().visit(ast.parse(source))
    return found


def test_the_visitor_sees_lazy_imports_and_skips_type_only_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import fastapi\n"
        "else:\n    import json\n"
        "def f():\n    from peft import LoraConfig\n    import accelerate.utils\n"
        "from . import sibling\n"
    )
    assert imported_libraries(source) == {"typing", "json", "peft", "accelerate"}


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_one_module_owns_each_outside_library(library: str) -> None:
    users = sorted(
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if library in imported_libraries(path.read_text(encoding="utf-8"))
    )
    assert users, f"nothing imports {library}: the table is stale"
    strays = [u for u in users if not u.startswith(OWNERS[library])]
    assert not strays, f"{library} imported outside {OWNERS[library]}: {strays}"


MAX_MODULE_LINES = 400  # DESIGN.md: "typical module 100-300 lines, none over 400"


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        p.relative_to(SRC).as_posix(): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")
    }
    over = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them): {over}"
