"""The package's layers (docs/architecture.md section 3): every module imports only from its own
layer or the layers below, lazy imports inside functions included, and no two sub-packages import
each other through any chain."""

from __future__ import annotations

import ast
from pathlib import Path

import innout

PACKAGE = Path(innout.__file__).parent

#: Lowest first. A name is a sub-package (python/innout/<name>/) or a module (<name>.py).
LAYERS = (
    ("ops", "_C"),
    (
        "atomic",
        "provenance",
        "profiling",
        "info",
        "metrics",
        "media",
        "plot",
        "lpips",
        "distributed",
    ),
    ("render",),
    ("eg3d",),
    ("scene",),
    ("synth",),
    ("tiny",),
    ("invert",),
    ("preprocess",),
    ("edit",),
    ("bench", "demo"),
    ("cli", "__main__"),
)
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def _unit_of(module: str) -> str | None:
    """innout.a.b -> "a" (None outside innout or for the package itself)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "innout" and len(parts) > 1 else None


def _imports(source: Path, package: list[str]) -> set[str]:
    """Every innout unit `source` imports, at module level or inside functions."""
    units = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # "from innout import ops" imports the unit ops.
            modules = [f"{module}.{a.name}" for a in node.names] if module == "innout" else [module]
        else:
            continue
        units.update(unit for unit in map(_unit_of, modules) if unit is not None)
    return units


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for source in PACKAGE.rglob("*.py"):
        relative = source.relative_to(PACKAGE).with_suffix("").parts
        if relative == ("__init__",):
            continue  # the package face re-exports from every layer
        unit = relative[0]
        package = ["innout", *relative[:-1]]
        graph.setdefault(unit, set()).update(_imports(source, package) - {unit})
    return graph


def test_every_unit_of_the_package_has_a_layer():
    assert set(import_graph()) - set(LAYER_OF) == set()


def test_every_import_goes_to_the_same_layer_or_below():
    upward = sorted(
        f"{unit} -> {other}"
        for unit, others in import_graph().items()
        for other in others
        if LAYER_OF[other] > LAYER_OF[unit]
    )
    assert upward == []


def test_no_two_units_import_each_other_through_any_chain():
    graph = import_graph()

    def reachable(start: str) -> set[str]:
        seen, stack = set(), list(graph.get(start, ()))
        while stack:
            unit = stack.pop()
            if unit not in seen:
                seen.add(unit)
                stack.extend(graph.get(unit, ()))
        return seen

    cycles = sorted(unit for unit in graph if unit in reachable(unit))
    assert cycles == []
