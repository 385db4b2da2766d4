"""`alp up` as a real process on a data dir, with the real local model and embeddings (no test doubles)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support import free_port

ALP = str(Path(sys.executable).with_name("alp"))
"""The console script a README install puts beside the interpreter."""


class AlpUp:
    """Starts `alp up` on `data_dir`; `stop()` ends it with SIGTERM (or SIGKILL) and returns its exit code."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = env
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.log = data_dir.with_name(data_dir.name + ".log")

    def start(self, timeout: float = 90) -> str:
        port = free_port()
        environ = {**os.environ, "HF_HUB_OFFLINE": "1", "ALP_LOG_LEVEL": "WARNING", **self.env}
        environ.pop("ALP_DATABASE_URL", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [ALP, "up", "--port", str(port), "--data-dir", str(self.data_dir)],
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"alp up did not start:\n{self.tail()}")

    def assert_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        assert code is None, f"alp up exited with {code} ({_signal_name(code)}):\n{self.tail()}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 40) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


def _signal_name(code: int | None) -> str:
    if code is not None and code < 0:
        return signal.Signals(-code).name
    return "exit"


def alp_cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """The `alp` command as a separate process."""
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **env}
    return subprocess.run([ALP, *args], env=environ, capture_output=True, text=True, timeout=timeout)
