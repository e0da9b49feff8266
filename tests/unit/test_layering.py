"""The package's shape, read from its source with `ast`: which way its imports point, and
how big its modules and functions are.

Dependencies point one way (DESIGN.md §4): commands -> plugin, github -> report -> queue.
So `report/` never imports `github/`; `queue/` and `protocol/` (the queue's protocol)
import neither `github/` nor pytest; and only the CLI imports `commands/` (the commands
may share modules among themselves). No module is over 400 lines, no function over 40.

A known exception is listed below with who removes it; an exception that no longer
occurs fails the test too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ciqueue_gha

PACKAGE = Path(ciqueue_gha.__file__).resolve().parent
NAME = PACKAGE.name

#: Imports a part of the package may not make: part -> forbidden module prefixes.
FORBIDDEN = {
    "report": ("ciqueue_gha.github",),
    "queue": ("ciqueue_gha.github", "pytest", "_pytest"),
    "protocol": ("ciqueue_gha.github", "pytest", "_pytest"),
}

#: Known imports against the rules, as (importer, imported).
KNOWN_IMPORTS: set[tuple[str, str]] = set()

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40

#: Known modules and functions over the limits, as "path" or "path:qualified name"; each is
#: being split by another branch, and the lead empties this list after their merges.
KNOWN_OVERSIZE: set[str] = set()


@dataclass(frozen=True)
class Module:
    path: Path
    name: str  # dotted, e.g. ciqueue_gha.report.build
    tree: ast.Module
    lines: int

    @property
    def relative(self) -> str:
        return self.path.relative_to(PACKAGE).as_posix()

    @property
    def part(self) -> str:
        """The first component below the package: "report", "cli", "plugin"."""
        return self.name.split(".")[1] if "." in self.name else ""


def modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        found.append(Module(path, ".".join(parts), tree, len(text.splitlines())))
    return found


def imported(module: Module) -> Iterator[str]:
    """Every module `module` imports, anywhere in it (in functions too), as dotted names;
    ``from a import b`` yields both ``a`` and ``a.b`` (b may be a module)."""
    is_package = module.path.name == "__init__.py"
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def import_violations() -> set[tuple[str, str]]:
    violations = set()
    for module in modules():
        for name in set(imported(module)):
            forbidden = FORBIDDEN.get(module.part, ())
            if any(_within(name, prefix) for prefix in forbidden):
                violations.add((module.name, name))
            commands = f"{NAME}.commands"
            if _within(name, commands) and module.part not in ("cli", "commands"):
                violations.add((module.name, name))
    return violations


def test_imports_point_one_way() -> None:
    violations = import_violations()
    # `from .commands.worker import x` also names `...commands.worker.x`: keep the module.
    found = {
        (a, b) for a, b in violations if "." not in b or (a, b.rpartition(".")[0]) not in violations
    }
    against = sorted(found - KNOWN_IMPORTS)
    assert not against, f"imports against DESIGN.md §4's direction: {against}"
    fixed = sorted(KNOWN_IMPORTS - found)
    assert not fixed, f"fixed: remove these from KNOWN_IMPORTS: {fixed}"


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function, methods and nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, (node.end_lineno or node.lineno) - node.lineno + 1
            yield from _functions(node, name + ".")
        else:
            yield from _functions(node, prefix)


def oversize() -> set[str]:
    found = set()
    for module in modules():
        if module.lines > MAX_MODULE_LINES:
            found.add(module.relative)
        found |= {
            f"{module.relative}:{name}"
            for name, lines in _functions(module.tree)
            if lines > MAX_FUNCTION_LINES
        }
    return found


def test_modules_and_functions_stay_small() -> None:
    found = oversize()
    over = sorted(found - KNOWN_OVERSIZE)
    assert not over, f"over {MAX_MODULE_LINES} lines (module) or {MAX_FUNCTION_LINES}: {over}"
    fixed = sorted(KNOWN_OVERSIZE - found)
    assert not fixed, f"fixed: remove these from KNOWN_OVERSIZE: {fixed}"


def test_the_checks_see_what_they_look_for() -> None:
    """The readers find relative imports, imports inside functions, and nested functions."""
    source = "from ..github import env\ndef f():\n    import pytest\n    def g():\n        pass\n"
    module = Module(PACKAGE / "queue" / "x.py", f"{NAME}.queue.x", ast.parse(source), 5)
    assert {f"{NAME}.github", f"{NAME}.github.env", "pytest"} <= set(imported(module))
    assert dict(_functions(module.tree)) == {"f": 4, "f.g": 2}
    assert len(modules()) > 30 and all(module.name.startswith(NAME) for module in modules())
