"""Start real `garrison serve` processes on free loopback ports."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parent.parent / "e2e" / "project" / "langgraph.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GarrisonProcess:
    """One `garrison serve` (or `garrison worker`) process; its output goes to `log_path`
    for post-mortems. A worker's `port` is its probe endpoint."""

    def __init__(
        self,
        data_dir: Path,
        *,
        config: Path | None = PROJECT,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        port: int | None = None,
        command: str = "serve",
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.command = command
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"{command}-{self.port}.log"
        self._env = {**os.environ, "GARRISON_WEBHOOK_ALLOW_LOOPBACK": "true", **(env or {})}
        self._args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> "GarrisonProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Without a config, run as `make run` does: discover the project (or the bundled
        # examples) and keep state in ./.garrison of the working directory (the data dir).
        where = ["--config", str(self.config)] if self.config is not None else []
        if self.command == "serve":
            if self.config is not None:
                where += ["--data-dir", str(self.data_dir)]
            where += ["--port", str(self.port), "--no-access-log"]
        else:
            where += ["--health-port", str(self.port)]
        command = [sys.executable, "-m", "garrison", self.command, *where, *self._args]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._env, cwd=self.data_dir
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"garrison exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"garrison did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: a process that stops answering but keeps its resources."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid
