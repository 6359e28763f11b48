"""protocol/ and firmware/ stay pure: no clock, I/O, global randomness, BLE stacks or sim."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN = {"sim", "asyncio", "time", "random", "numpy.random", "bumble", "bleak", "socket"}
FORBIDDEN_CALLS = {"datetime.now", "datetime.utcnow", "datetime.today", "date.today"}


def imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # from numpy import random
                yield node.lineno, f"{node.module}.{alias.name}"


def violations(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for line, module in imported_modules(tree):
        if any(module == name or module.startswith(name + ".") for name in FORBIDDEN):
            found.append(f"{path}:{line}: imports {module}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            dotted = f"{node.value.id}.{node.attr}"
            if dotted in FORBIDDEN_CALLS or dotted.startswith("random."):
                found.append(f"{path}:{node.lineno}: uses {dotted}")
    return found


@pytest.mark.parametrize("package", ["protocol", "firmware"])
def test_pure_packages_import_nothing_impure(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    problems = [problem for path in files for problem in violations(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "from asyncio import sleep",
        "import numpy.random",
        "from numpy import random",
        "from sim.clock import Clock",
        "import bumble.device",
        "from bleak import BleakClient",
        "x = datetime.now()",
        "import random",
    ],
)
def test_the_check_catches(tmp_path, source):
    path = tmp_path / "probe.py"
    path.write_text(source + "\n")
    assert violations(path)
