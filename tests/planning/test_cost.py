"""Pricing a plan from the bundled (or a user's) price table."""

import json
from pathlib import Path

import pytest

from garrison.planning.cost import (
    NODE_ALLOCATABLE,
    PROVIDERS,
    PriceTableError,
    bundled_tables,
    load_prices,
    price_plan,
)
from garrison.planning.plan import GIB, Workload, make_plan
from garrison.planning.profile import Profile


def test_bundled_table_is_dated_and_sourced() -> None:
    assert bundled_tables()
    for provider in PROVIDERS:
        prices = load_prices(provider)
        assert prices.as_of and prices.source and prices.region
        assert 0 < prices.spot_discount < 1


def test_cost_lines_follow_the_formulas(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, Workload(), "test")
    prices = load_prices("aws")
    cost = price_plan(plan, prices, spot_share=0.6)
    hours = prices.hours_per_month
    compute = sum(
        d.replicas
        * (d.cpu_request * prices.vcpu_hour + d.memory_request / GIB * prices.gib_hour)
        * hours
        / NODE_ALLOCATABLE
        for d in (plan.api, plan.worker)
    )
    assert cost.compute_on_demand == pytest.approx(compute)
    assert cost.compute_with_spot == pytest.approx(compute * (1 - 0.6 * prices.spot_discount))
    assert cost.network == pytest.approx(plan.traffic.egress_per_month / 1e9 * prices.egress_gb)
    assert cost.storage == pytest.approx(plan.database.storage / GIB * prices.db_storage_gib_month)
    assert cost.spot_savings == pytest.approx(cost.compute_on_demand - cost.compute_with_spot)
    assert cost.total_with_spot < cost.total_on_demand


def test_no_spot_saves_nothing(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, Workload(), "test")
    cost = price_plan(plan, load_prices("gcp"), spot_share=0.0)
    assert cost.spot_savings == 0
    with pytest.raises(ValueError, match="spot-share"):
        price_plan(plan, load_prices("gcp"), spot_share=1.5)


def test_users_can_pass_their_own_table(tmp_path: Path) -> None:
    table = {
        "version": 1,
        "as_of": "2030-01-01",
        "currency": "EUR",
        "source": "my negotiated rates",
        "providers": {
            "aws": {
                "region": "eu-west-1",
                "compute": {"vcpu_hour": 1, "gib_hour": 0, "spot_discount": 0.5},
                "egress": {"gb": 0},
                "managed_database": {"vcpu_hour": 0, "gib_hour": 0, "storage_gib_month": 0},
                "managed_redis": {"gib_hour": 0},
            }
        },
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table))
    prices = load_prices("aws", path)
    assert (prices.currency, prices.region, prices.vcpu_hour) == ("EUR", "eu-west-1", 1)
    with pytest.raises(PriceTableError, match="azure"):
        load_prices("azure", path)


def test_bad_tables_and_providers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="unknown provider"):
        load_prices("ibm")
    with pytest.raises(PriceTableError, match="cannot read"):
        load_prices("aws", tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PriceTableError, match="not JSON"):
        load_prices("aws", tmp_path / "bad.json")
