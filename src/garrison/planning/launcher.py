"""Start and stop `garrison serve` and `garrison worker` processes for the benchmark."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

_START_ATTEMPTS = 3  # the free port can be taken between probing and binding


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `garrison serve` (or, with command="worker", `garrison worker`) on a free
    loopback port; a worker's port is its health endpoint. Output goes to `log_path`."""

    def __init__(
        self,
        config: Path,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        profile_to: Path | None = None,
        *,
        command: str = "serve",
        args: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.profile_to = profile_to
        self.command = command
        self.args = args
        self.log_path = data_dir / f"{command}.log"
        self.port = 0
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("server not started")
        return self._process.pid

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = free_port()
            # Run the module with this interpreter: `python -m garrison` is the server
            # process itself (uvicorn without workers does not fork), so its pid is the
            # one whose CPU we read. cProfile, when asked for, wraps it in the same process
            # and writes its stats when the server exits on SIGTERM.
            profiler = ["-m", "cProfile", "-o", str(self.profile_to)] if self.profile_to else []
            if self.command == "serve":
                where = ["--port", str(self.port), "--data-dir", str(self.data_dir)]
                where.append("--no-access-log")
            else:
                where = ["--health-port", str(self.port)]
            command = [
                sys.executable,
                *profiler,
                "-m",
                "garrison",
                self.command,
                "--config",
                str(self.config),
                *where,
                *self.args,
            ]
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=self._env
                )
            if self._wait_ready(timeout):
                return self
            if attempt == _START_ATTEMPTS or "address already in use" not in self.log():
                break
        raise RuntimeError(f"garrison did not start:\n{self.log()[-4000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                return False
            try:
                # /ready: a worker's health endpoint has no /ok, and an API process on
                # PostgreSQL is only useful once its storage answers.
                if httpx.get(f"{self.url}/ready", timeout=1.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
