"""The package as a whole: what no module of cnncli may do.

An AST scan of every module for pickle-like imports, eval/exec, unsafe YAML loading and NumPy's
``allow_pickle``: the README promises that nothing loaded from a file runs code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cnncli

PACKAGE = Path(cnncli.__file__).parent

UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "shelve",
}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
UNSAFE_ATTRIBUTES = {
    "yaml": {
        "load",
        "load_all",
        "unsafe_load",
        "unsafe_load_all",
        "full_load",
        "full_load_all",
        "Loader",
        "UnsafeLoader",
    },
    "importlib": {"import_module"},
}


def unsafe_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every pickle-like import, eval/exec, unsafe YAML load and allow_pickle."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, f"imports {a.name}")
                for a in node.names
                if a.name.split(".")[0] in UNSAFE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in UNSAFE_MODULES:
                found.append((node.lineno, f"imports {module}"))
            found += [
                (node.lineno, f"imports {module}.{a.name}")
                for a in node.names
                if a.name in UNSAFE_ATTRIBUTES.get(module, ())
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in UNSAFE_ATTRIBUTES.get(node.value.id, ()):
                found.append((node.lineno, f"uses {node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in UNSAFE_BUILTINS:
                found.append((node.lineno, f"calls {node.func.id}"))
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append((node.lineno, "passes allow_pickle"))
    return sorted(found)


def test_the_scan_finds_what_it_looks_for():
    sample = (
        "import pickle\nfrom joblib import dump\nimport yaml\nyaml.load(s)\neval('1')\n"
        "np.load(f, allow_pickle=True)\n"
    )
    assert [what for _, what in unsafe_uses(ast.parse(sample))] == [
        "imports pickle",
        "imports joblib",
        "uses yaml.load",
        "calls eval",
        "passes allow_pickle",
    ]


def test_package_uses_no_pickle_joblib_or_code_loading():
    """No module imports a pickle-like library, evals code, loads YAML unsafely or lets NumPy unpickle."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, what in unsafe_uses(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert found == []


# ---------------------------------------------------------------------------------------------
# Imports point down (ARCHITECTURE.md)

#: Lowest first; a part may import only itself and the parts before it.
LAYERS = (
    "errors",
    "runtime",
    "config",
    "data",
    "runs",
    "starter",
    "model",
    "serve",
    "report",
    "train",
    "tune",
    "cli",
)
#: Top-level modules that belong with a layer: the version (cnncli/__init__.py) sits under all.
ALIASES = {"render": "cli", "__main__": "cli", "": "errors"}


def part_of(module: str) -> str:
    """``cnncli.data.cells`` → ``data``; ``cnncli.render`` → ``cli``; ``cnncli`` → ``errors``."""
    name = module.split(".")[1] if "." in module else ""
    return ALIASES.get(name, name)


def cnncli_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every cnncli import in a file, lazy ones inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "cnncli"
        ):
            if node.module == "cnncli":  # `from cnncli import render` names modules
                found += [
                    (node.lineno, f"cnncli.{alias.name}")
                    for alias in node.names
                    if alias.name != "__version__" and not alias.name.isupper()
                ]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("cnncli.")]
    return found


def test_imports_point_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source = part_of(module)
        for line, target in cnncli_imports(path):
            if LAYERS.index(part_of(target)) > LAYERS.index(source):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {source} → {target}")
    assert upward == []


def test_the_import_rule_sees_an_upward_import(tmp_path):
    module = tmp_path / "x.py"
    module.write_text("def f():\n    from cnncli.train.run import train_run\n")
    assert cnncli_imports(module) == [(2, "cnncli.train.run")]
    assert LAYERS.index(part_of("cnncli.train.run")) > LAYERS.index(part_of("cnncli.data.cells"))
