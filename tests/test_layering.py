"""The package's layering, as pneumolib/__init__.py describes it, holds in the code."""

import ast
from pathlib import Path

import pneumolib

PACKAGE = Path(pneumolib.__file__).parent


def _module(path: Path) -> str:
    """Top-level module name of a file (a subpackage counts as one module)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported pneumolib module, line, at module level?) for every package-internal import in a file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    type_only = {
        id(n)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }  # annotations only: never executed
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("pneumolib")):
            name = (node.module or "").removeprefix("pneumolib").lstrip(".").split(".")[0]
            if node.level == 2 or (node.level == 1 and path.parent != PACKAGE):
                continue  # inside a subpackage: imports among its own modules
            names = [name] if name else [a.name for a in node.names]
            found += [(n, node.lineno, id(node) in top_level) for n in names]
    return found


def _files():
    return [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]


def test_every_module_is_listed():
    assert {_module(p) for p in _files()} == set(pneumolib.LAYERS)


def test_no_module_imports_one_above_it():
    rank = {m: i for i, m in enumerate(pneumolib.LAYERS)}
    upward = [
        f"{p.relative_to(PACKAGE)}:{line} imports {name}"
        for p in _files()
        for name, line, _ in _imports(p)
        if name in rank and rank[name] >= rank[_module(p)] and name != _module(p)
    ]
    assert upward == []


def test_no_private_name_is_imported_from_another_module():
    private = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                private += [
                    f"{path.relative_to(PACKAGE)}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")
                ]
    assert private == []


def test_package_imports_are_at_module_level():
    lazy = [f"{p.relative_to(PACKAGE)}:{line} {name}" for p in _files() for name, line, top in _imports(p) if not top]
    assert lazy == []


def test_no_module_is_longer_than_600_lines():
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600
    }
    assert long == {}, f"split these by concept: {long}"
