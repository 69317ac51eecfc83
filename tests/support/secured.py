"""A Garrison deployment with API-key authentication, and the keys to call it with."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import PROJECT
from tests.support.topology import Deployment, deploy


@dataclass
class SecuredDeployment:
    deployment: Deployment
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # label -> key text

    @property
    def url(self) -> str:
        return self.deployment.url

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`garrison <args>` against this deployment's storage."""
        env = {
            **os.environ,
            **self.deployment.env,
            "GARRISON_DATA_DIR": str(self.data_dir),
        }
        return subprocess.run(
            [sys.executable, "-m", "garrison", *args, "--config", str(PROJECT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def create_key(self, label: str, tenant: str, role: str, *extra: str) -> str:
        done = self.cli("keys", "create", "--tenant", tenant, "--role", role, *extra)
        assert done.returncode == 0, done.stderr
        key = done.stdout.strip()
        self.keys[label] = key
        return key

    def headers(self, label: str) -> dict[str, str]:
        return {"x-api-key": self.keys[label]}


@contextmanager
def secured(
    topology: str, data_dir: Path, env: dict[str, str] | None = None
) -> Iterator[SecuredDeployment]:
    settings = {"GARRISON_AUTH_MODE": "api_key", "GARRISON_WORKER_CONCURRENCY": "4", **(env or {})}
    with deploy(topology, data_dir, env=settings) as deployment:
        yield SecuredDeployment(deployment, data_dir)
