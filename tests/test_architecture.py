"""The package's layering, read from the source: lower layers never import higher ones, and
the simulator (``reelpick.world``) is a client of the decision contract that nothing but the
simulation harness imports; the service never loads it, not even transitively."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "reelpick"

#: Layer of every top-level package: a module may import its own layer or lower ones only.
LAYERS = {
    "data": 0, "metrics": 0, "errors": 0,
    "decision": 1,
    "models": 2, "ope": 2, "causal": 2,
    "policies": 3, "artwork": 3, "evaluation": 3, "testing": 3,
    "ranking": 4,
    "page": 5,
    "serve": 6,
    "world": 7,
    "distributed": 8, "loop": 8, "report": 8,
    "cli": 9,
}
#: The simulation harness: the only modules outside world/ that may import it.
WORLD_CLIENTS = ("loop/", "distributed/simulate.py", "cli/simulate.py", "cli/serve.py")


def _imports() -> list[tuple[str, str, int, str]]:
    """(file relative to the package, its top-level package, line, imported reelpick module)"""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        pkg = rel.split("/")[0] if "/" in rel else rel.removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == "reelpick":
                    names += [f"reelpick.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            out += [(rel, pkg, node.lineno, n) for n in names if n.startswith("reelpick.")]
    return out


def test_every_package_has_a_layer() -> None:
    pkgs = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    pkgs |= {p.stem for p in SRC.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert pkgs == set(LAYERS), f"give these packages a layer: {pkgs ^ set(LAYERS)}"


def test_lower_layers_never_import_higher_ones() -> None:
    bad = [f"{rel}:{line}: {pkg} (layer {LAYERS[pkg]}) imports {mod} (layer "
           f"{LAYERS[mod.split('.')[1]]})"
           for rel, pkg, line, mod in _imports()
           if pkg in LAYERS and mod.split(".")[1] in LAYERS
           and LAYERS[mod.split(".")[1]] > LAYERS[pkg]]
    assert not bad, "\n".join(bad)


def test_only_the_simulation_harness_imports_the_world() -> None:
    bad = [f"{rel}:{line}: imports {mod}" for rel, pkg, line, mod in _imports()
           if mod.split(".")[1] == "world" and pkg != "world"
           and not rel.startswith(WORLD_CLIENTS)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", ["reelpick.serve.app", "reelpick.serve.policy_provider",
                                    "reelpick.page", "reelpick.ope", "reelpick.policies"])
def test_module_does_not_load_the_simulator(module: str) -> None:
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.startswith('reelpick.world')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert res.stdout.strip() == "[]", f"{module} loads {res.stdout.strip()}"
