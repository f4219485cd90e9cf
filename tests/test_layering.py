"""DESIGN.md's layering: imports flow one way, and the packet format does no I/O."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

ORDER = ["sphinx_packets", "directory", "mixnode", "mixclient"]
TOP = {"simulations", "trimix"}
PACKAGES = ORDER + sorted(TOP)
IO_MODULES = {"trio", "socket", "asyncio", "httpx", "h11", "hypercorn", "sqlite3", "selectors", "ssl"}


def _imports(package: str) -> set[str]:
    names: set[str] = set()
    for path in (REPO_ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _allowed(package: str) -> set[str]:
    if package in TOP:
        return set(ORDER) | ({package} if package == "simulations" else {package, "simulations"})
    return set(ORDER[: ORDER.index(package) + 1])


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    used = _imports(package) & set(PACKAGES)
    assert used <= _allowed(package), f"{package} imports {sorted(used - _allowed(package))}"


def test_nothing_imports_trimix() -> None:
    for package in PACKAGES:
        if package != "trimix":
            assert "trimix" not in _imports(package), f"{package} imports trimix"


def test_the_packet_format_does_no_io() -> None:
    assert not _imports("sphinx_packets") & IO_MODULES
