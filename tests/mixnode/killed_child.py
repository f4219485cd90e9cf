"""Run a Python child that does some durable work, then SIGKILL it: the crash-safety tests."""

from __future__ import annotations

import select
import signal
import subprocess
import sys

from tests.conftest import REPO_ROOT

READY = b"ready\n"


def run_then_sigkill(script: str, *args: str, timeout: float = 60.0) -> None:
    """Start `python -c script args...`, wait (at most `timeout` s) until it prints ``ready``,
    then kill it with SIGKILL and reap it. The child gets no chance to flush or close."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        readable, _, _ = select.select([child.stdout], [], [], timeout)
        line = child.stdout.readline() if readable else b""
        if line != READY:
            child.kill()
            _, err = child.communicate(timeout=timeout)
            raise AssertionError(f"child did not get ready: {line!r} {err.decode()[-2000:]}")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=timeout) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=timeout)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
