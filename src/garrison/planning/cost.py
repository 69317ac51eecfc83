"""Price a plan per month from a versioned price table.

Price tables are JSON data (`prices/<date>.json`, newest bundled one by default; users pass
their own with `--prices`). Each provider gives compute per vCPU-hour and GiB-hour, a
typical spot discount, egress, a managed PostgreSQL (vCPU, GiB, storage)
and a managed Redis (GiB). The formulas:

- compute = Σ_deployments replicas * (cpu_request * vcpu_hour + memory_GiB * gib_hour)
  * hours / node_allocatable  (pods are priced at their requests, at peak replica count);
- with spot: compute * (1 - spot_share * spot_discount);
- managed database = (cpu * vcpu_hour + memory_GiB * gib_hour) * hours, storage separately;
- network = egress GB per month * egress price; Redis = memory GiB * gib_hour * hours.
"""

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from garrison.planning.plan import GIB, Plan

# Part of a node's capacity left for pods after the kubelet, the OS and daemonsets.
NODE_ALLOCATABLE = 0.85
PROVIDERS = ("aws", "azure", "gcp")


class PriceTableError(ValueError):
    """A price table that cannot be read or lacks a needed price."""


@dataclass(frozen=True, slots=True)
class Prices:
    provider: str
    region: str
    as_of: str
    source: str
    currency: str
    hours_per_month: float
    vcpu_hour: float
    gib_hour: float
    spot_discount: float
    egress_gb: float
    db_vcpu_hour: float
    db_gib_hour: float
    db_storage_gib_month: float
    redis_gib_hour: float


def bundled_tables() -> list[str]:
    """Names of the price tables shipped with Garrison, oldest first."""
    folder = resources.files("garrison.planning").joinpath("prices")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))


def load_prices(provider: str, path: Path | None = None) -> Prices:
    """`provider`'s prices from `path`, or from the newest bundled table."""
    if provider not in PROVIDERS:
        raise PriceTableError(f"unknown provider {provider!r}; choose from {', '.join(PROVIDERS)}")
    try:
        if path is None:
            name = bundled_tables()[-1]
            text = (
                resources.files("garrison.planning").joinpath("prices").joinpath(name).read_text()
            )
        else:
            text = path.read_text()
        data: dict[str, Any] = json.loads(text)
    except OSError as exc:
        raise PriceTableError(f"cannot read price table {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"price table {path} is not JSON: {exc}") from exc
    try:
        p = data["providers"][provider]
        return Prices(
            provider=provider,
            region=str(p.get("region", "")),
            as_of=str(data["as_of"]),
            source=str(data.get("source", "")),
            currency=str(data.get("currency", "USD")),
            hours_per_month=float(data.get("hours_per_month", 730)),
            vcpu_hour=float(p["compute"]["vcpu_hour"]),
            gib_hour=float(p["compute"]["gib_hour"]),
            spot_discount=float(p["compute"].get("spot_discount", 0.0)),
            egress_gb=float(p["egress"]["gb"]),
            db_vcpu_hour=float(p["managed_database"]["vcpu_hour"]),
            db_gib_hour=float(p["managed_database"]["gib_hour"]),
            db_storage_gib_month=float(p["managed_database"]["storage_gib_month"]),
            redis_gib_hour=float(p["managed_redis"]["gib_hour"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PriceTableError(f"price table lacks {provider} price {exc}") from exc


@dataclass(frozen=True, slots=True)
class Cost:
    """Monthly cost lines, in the table's currency."""

    compute_on_demand: float
    compute_with_spot: float
    storage: float
    network: float
    database: float
    redis: float
    spot_share: float
    prices: Prices

    @property
    def total_on_demand(self) -> float:
        return self.compute_on_demand + self.storage + self.network + self.database + self.redis

    @property
    def total_with_spot(self) -> float:
        return self.compute_with_spot + self.storage + self.network + self.database + self.redis

    @property
    def spot_savings(self) -> float:
        return self.total_on_demand - self.total_with_spot


def price_plan(plan: Plan, prices: Prices, spot_share: float) -> Cost:
    """The plan's monthly cost (formulas in the module docstring)."""
    if not 0 <= spot_share <= 1:
        raise ValueError(f"--spot-share must be in [0, 1], got {spot_share}")
    hours = prices.hours_per_month
    compute = 0.0
    for d in (plan.api, plan.worker):
        per_hour = d.cpu_request * prices.vcpu_hour + d.memory_request / GIB * prices.gib_hour
        compute += d.replicas * per_hour * hours / NODE_ALLOCATABLE
    db = plan.database
    return Cost(
        compute_on_demand=compute,
        compute_with_spot=compute * (1 - spot_share * prices.spot_discount),
        storage=db.storage / GIB * prices.db_storage_gib_month,
        network=plan.traffic.egress_per_month / 1e9 * prices.egress_gb,
        database=(db.cpu * prices.db_vcpu_hour + db.memory / GIB * prices.db_gib_hour) * hours,
        redis=plan.redis.memory / GIB * prices.redis_gib_hour * hours,
        spot_share=spot_share,
        prices=prices,
    )
