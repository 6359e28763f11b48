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
DRIVERS = ("sim.world", "sim.ble_world", "sim.cli", "sim.hil", "sim.hil_commands")
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
