"""protocol/ and firmware/ stay pure: no clock, I/O, global randomness, BLE stacks or sim; in
sim/, each layer imports only the layers below it."""

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


# sim/: which layer may import which (shared/design/architecture.md, "Module map"). The clock
# knows nothing above it; links move bytes between a core and a BLE stack and know nothing of the
# session that uses them; the session engine knows no link (it gets one) and nothing of the
# command line or the hardware runner.
DRIVERS = ("sim.simulation", "sim.world", "sim.ble_world", "sim.cli", "sim.hil", "sim.hil_commands")
SIM_RULES = {
    "sim.clock": ("sim.links", "sim.session", *DRIVERS),
    "sim.links": ("sim.session", *DRIVERS),
    "sim.session": ("sim.links", *DRIVERS),
}


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_violations(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    name = module_name(path, root)
    found = []
    for layer, forbidden in SIM_RULES.items():
        if name != layer and not name.startswith(layer + "."):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, module in imported_modules(tree):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path}:{line}: {layer} imports {module}")
    return found


def test_sim_layers_import_only_downwards():
    files = sorted((ROOT / "sim").rglob("*.py"))
    problems = [problem for path in files for problem in layer_violations(path)]
    assert not problems, "\n".join(problems)


def test_the_layer_check_catches(tmp_path):
    links = tmp_path / "sim" / "links"
    links.mkdir(parents=True)
    probe = links / "probe.py"
    probe.write_text("from sim.session.config import SimulationConfig\n")
    assert layer_violations(probe, tmp_path)
    probe.write_text("from sim.links.core_timer import CoreTimer\n")
    assert not layer_violations(probe, tmp_path)


def import_graph(root: pathlib.Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (at run time or for type checking)."""
    paths = {module_name(path, root): path for p in packages for path in (root / p).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or round a loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles():
    graph = import_graph(ROOT, ("protocol", "firmware", "sim"))
    assert len(graph) > 100
    assert cycles(graph) == []


def test_the_cycle_check_catches(tmp_path):
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "a.py").write_text("from sim import b\n")
    (tmp_path / "sim" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sim.a import A\n"
    )
    (tmp_path / "sim" / "c.py").write_text("import sim.a\n")
    assert cycles(import_graph(tmp_path, ("sim",))) == [["sim.a", "sim.b"]]
