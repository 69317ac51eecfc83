"""The Dockerfile: hadolint and checkov always; a real build and run with buildah/podman
when they are installed (no daemon needed), on a stand-in base image built from Debian."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, ROOT, check, run, tool

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
BASE = "docker.io/library/python:3.12-slim-bookworm"
# Container storage survives between runs so the stand-in base is built once per machine.
STORE = Path(
    os.environ.get("GARRISON_BUILDAH_STORE", Path(tempfile.gettempdir()) / "garrison-buildah")
)
STORAGE = (
    "--root",
    str(STORE / "root"),
    "--runroot",
    str(STORE / "run"),
    "--storage-driver",
    "vfs",
)


def test_hadolint() -> None:
    check(tool("hadolint"), str(DOCKERFILE))


def test_checkov_dockerfile() -> None:
    out = check(
        tool("checkov"),
        "-f",
        str(DOCKERFILE),
        "--framework",
        "dockerfile",
        "--skip-download",
        "--compact",
        "--quiet",
    )
    assert "Passed checks" in out


def test_linters_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    assert run(tool("hadolint"), str(bad)).returncode != 0
    assert (
        run(
            tool("checkov"),
            "-f",
            str(bad),
            "--framework",
            "dockerfile",
            "--skip-download",
            "--quiet",
        ).returncode
        != 0
    )


def test_image_shape() -> None:
    text = DOCKERFILE.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2, "multi-stage"
    final = text.split("\nFROM ")[-1]
    assert 'ENTRYPOINT ["garrison"]' in final and "HEALTHCHECK" in final and "USER 10001" in final
    assert "apt-get" not in final and "pip install" not in final, (
        "no build tools in the final stage"
    )


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("buildah", "podman", "mmdebstrap", "runc")),
    reason="buildah, podman, mmdebstrap or runc missing (apt-get install them to build)",
)
@pytest.mark.timeout(600)  # pip installs every dependency inside the build
def test_real_build_runs_as_non_root(tmp_path: Path) -> None:
    if run("podman", *STORAGE, "image", "exists", BASE).returncode != 0:
        tar = tmp_path / "base.tar"
        check(
            "mmdebstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "--format=tar",
            "bookworm",
            str(tar),
            "http://deb.debian.org/debian",
        )
        check("podman", *STORAGE, "import", "--change", 'CMD ["python3"]', str(tar), BASE)
    ca = "/etc/ssl/certs/ca-certificates.crt"  # this sandbox intercepts TLS: pip needs its CA
    check(
        "buildah",
        *STORAGE,
        "bud",
        "--isolation",
        "chroot",
        "--layers",
        "--format",
        "docker",
        "--pull=never",
        "-v",
        f"{ca}:{ca}:ro",
        "--ignorefile",
        str(DOCKERFILE.with_name("Dockerfile.dockerignore")),
        "-f",
        str(DOCKERFILE),
        "-t",
        "localhost/garrison:test",
        str(ROOT),
    )
    image = json.loads(check("podman", *STORAGE, "image", "inspect", "localhost/garrison:test"))[0]
    assert image["Config"]["User"] == "10001:10001"
    assert image["Config"]["Entrypoint"] == ["garrison"]
    assert "/health" in str(image.get("Healthcheck") or image["Config"].get("Healthcheck"))
    conf = tmp_path / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\nnetns = "none"\n'
    )
    env = {"CONTAINERS_CONF": str(conf)}
    result = run(
        "env",
        *(f"{k}={v}" for k, v in env.items()),
        "podman",
        *STORAGE,
        "--cgroup-manager",
        "cgroupfs",
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "localhost/garrison:test",
        "-c",
        "id -u && garrison version && test ! -w /opt/garrison",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "10001"
