"""Make a Prometheus config checkable by Debian's promtool, which is built without
Kubernetes (and Consul) service discovery: each such block becomes a placeholder
static_configs after its `role` is checked here. Relabelling, rule files and durations stay
for promtool to check. Usage: python prom_config_for_promtool.py IN OUT
"""

import sys
from pathlib import Path
from typing import Any

import yaml

ROLES = {"node", "pod", "service", "endpoints", "endpointslice", "ingress"}


def shim(config: dict[str, Any], base: Path) -> dict[str, Any]:
    for job in config.get("scrape_configs", []):
        for sd in job.pop("kubernetes_sd_configs", []):
            if sd.get("role") not in ROLES:
                raise SystemExit(
                    f"{job['job_name']}: unknown kubernetes_sd role {sd.get('role')!r}"
                )
        if job.pop("consul_sd_configs", None) is not None or "static_configs" not in job:
            job["static_configs"] = [{"targets": ["placeholder:80"]}]
    config["rule_files"] = [str(base / f) for f in config.get("rule_files", [])]
    return config


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    shimmed = shim(yaml.safe_load(source.read_text()), source.resolve().parent)
    target.write_text(yaml.safe_dump(shimmed, sort_keys=False))
