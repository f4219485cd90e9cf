"""Where the vector tests look for the published vectors, and what happens when they are absent:
skipped with a reason on a developer's clone, a failure under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_VECTORS_DIR, REPO_ROOT, VECTORS_ENV, require_vectors

VECTOR_TESTS = "tests/sphinx_packets/test_sphinx_vectors.py"


def test_the_default_is_beside_the_repository() -> None:
    assert DEFAULT_VECTORS_DIR == REPO_ROOT.parent / "shared" / "vectors"


def test_the_environment_variable_points_elsewhere(tmp_path: Path) -> None:
    assert require_vectors({VECTORS_ENV: str(tmp_path)}) == tmp_path.resolve()


def test_absent_vectors_skip_with_a_reason_naming_the_place_and_the_variable(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_vectors({VECTORS_ENV: str(missing)})
    assert str(missing) in str(skipped.value)
    assert VECTORS_ENV in str(skipped.value)


def test_absent_vectors_fail_under_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_vectors({VECTORS_ENV: str(tmp_path / "nowhere"), "CI": "true"})


def _run_vector_tests(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", VECTOR_TESTS],
        cwd=REPO_ROOT,
        env=environ,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_clone_without_vectors_runs_clean_and_ci_fails(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ[VECTORS_ENV] = str(tmp_path / "nowhere")
    done = _run_vector_tests(environ)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" in done.stdout and "error" not in done.stdout.lower()
    done = _run_vector_tests({**environ, "CI": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CI is set, so missing vectors are a failure" in done.stdout
