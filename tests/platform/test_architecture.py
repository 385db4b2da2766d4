"""The import-linter contracts of pyproject.toml (run by scripts/check) name the modules they cover one by
one: a new service or top-level module must be added to them, or the rules of the house would not apply to
it."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import agent_lightning

CONTRACTS = {
    contract["name"]: contract
    for contract in tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
}
TOP_LEVEL = {f"agent_lightning.{m.name}" for m in pkgutil.iter_modules(agent_lightning.__path__)}
SERVICES = {
    f"agent_lightning.{m.name}"
    for m in pkgutil.iter_modules(agent_lightning.__path__)
    if m.ispkg and (Path(agent_lightning.__path__[0]) / m.name / "service.py").exists()
}


def contract(start: str) -> dict:
    return next(c for name, c in CONTRACTS.items() if name.startswith(start))


def test_every_service_is_under_the_service_contracts():
    assert len(SERVICES) >= 12
    assert set(contract("Only a service's api.py speaks HTTP")["source_modules"]) == SERVICES
    assert set(contract("Services meet only through")["modules"]) == SERVICES
    assert set(contract("Shared code (core) imports no service")["forbidden_modules"]) >= SERVICES


def test_only_the_cli_imports_the_composition_root_covers_every_other_module():
    sources = set(contract("Only the CLI imports the composition root")["source_modules"])
    assert sources == TOP_LEVEL - {"agent_lightning.cli", "agent_lightning.app"}
