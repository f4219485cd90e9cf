"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS_ENV = "TRIMIX_VECTORS"
DEFAULT_VECTORS_DIR = REPO_ROOT.parent / "shared" / "vectors"


def find_vectors_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the published test vectors are expected: `$TRIMIX_VECTORS` when it is set
    (relative paths from the current directory), else `../shared/vectors` beside the repo."""
    configured = environ.get(VECTORS_ENV)
    return Path(configured).resolve() if configured else DEFAULT_VECTORS_DIR


VECTORS_DIR = find_vectors_dir()


def require_vectors(environ: Mapping[str, str] = os.environ) -> Path:
    """The vectors directory; when it is absent, skip the test (fail it when `CI` is set)."""
    where = find_vectors_dir(environ)
    if where.is_dir():
        return where
    reason = (
        f"published test vectors not found at {where}: put the shared vectors there "
        f"(../shared/vectors beside the repository) or set {VECTORS_ENV} to their directory"
    )
    if environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so missing vectors are a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The published test vectors (`require_vectors`)."""
    return require_vectors()


@pytest.fixture(scope="session")
def apps_testnet(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real testnet (λ_P 20/s, 10 s epochs) for the modules that test what apps use
    (the WebSocket daemon, the commands, the demo, the examples): starting one takes half a
    minute, so they share it. Each test uses clients of its own."""
    from tests.mixclient.testnet_fixture import running_testnet
    from trimix.demo import DEMO_RATES
    from trimix.testnet import plan_testnet

    plan = plan_testnet(
        tmp_path_factory.mktemp("apps-testnet"), epoch_seconds=10.0, client_rates=DEMO_RATES
    )
    with running_testnet(plan) as processes:
        yield plan, processes
