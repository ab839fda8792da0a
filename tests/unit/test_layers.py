"""The dependency direction of the packages: each imports only from the layers below it, and nothing below
the API imports the web framework (read from the source with ``ast``, so no module has to run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
#: Layer of each part of the package, lowest first: a module may import its own layer and those below.
LAYERS = {
    "engine": 0, "errors": 1, "config": 1, "domain": 2, "data": 3, "store": 4, "observability": 5,
    "services": 6, "api": 7, "app": 8, "cli": 8, "__main__": 9,
}
WEB = ("fastapi", "starlette", "uvicorn")


def _part(module: str) -> str:
    """``service.store.registry`` -> ``store``; ``service`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(SERVICE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.append(target)
            names += [f"{target}.{alias.name}" for alias in node.names]  # `from . import drift`
    return names


MODULES = sorted(p for p in SERVICE.rglob("*.py") if _part(".".join(p.relative_to(SERVICE.parent).parts)) in LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SERVICE.parent)))
def test_imports_point_down(path: Path) -> None:
    own = _part(".".join(path.relative_to(SERVICE.parent).with_suffix("").parts))
    upward = []
    for name in _imports(path):
        if name.startswith("service."):
            other = _part(name)
            if other in LAYERS and LAYERS[other] > LAYERS[own]:
                upward.append(name)
        elif name.split(".")[0] in WEB and LAYERS[own] < LAYERS["api"]:
            upward.append(name)
    assert not upward, f"{path.name} ({own}) imports upward: {upward}"


def test_the_client_stands_alone() -> None:
    assert not [n for n in _imports(SERVICE / "client.py") if n.startswith("service")]


def test_every_part_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in SERVICE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert parts - set(LAYERS) == {"__init__", "client"}
