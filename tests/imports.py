"""What importing a module loads, read from the source: footprint checks without running it."""

from __future__ import annotations

import ast
import importlib.util


def _top_level_imports(path: str) -> set[str]:
    """Modules a file imports when it is imported (not inside functions or TYPE_CHECKING)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(inner, ast.Import):
                found.update(alias.name for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                found.add(inner.module)
    return found


def import_closure(module: str) -> set[str]:
    """Every module importing C{module} loads, following pistatsd's own modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        for each in chain:
            if each in seen:
                continue
            seen.add(each)
            if each.split(".")[0] != "pistatsd":
                continue
            spec = importlib.util.find_spec(each)
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                todo.extend(_top_level_imports(spec.origin))
    return seen
