"""Fetch EC2 spot price history and instance sizes with boto3 (the `spot` extra).

A thin adapter: every AWS failure becomes a `SpotDataError` whose message the CLI prints
as is; the arithmetic lives in `spot.py`.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from garrison.planning.spot import InstanceType, PricePoint

PRODUCT = "Linux/UNIX"
# AWS keeps 90 days of spot price history.
MAX_HOURS = 90 * 24
INSTALL_HINT = "pip install 'garrison[spot]'"


class SpotDataError(RuntimeError):
    """Spot data cannot be fetched; the message says why, for people."""


class SpotUnavailableError(SpotDataError):
    """boto3 is not installed."""


@dataclass(frozen=True, slots=True)
class SpotData:
    region: str
    start: datetime
    end: datetime
    types: dict[str, InstanceType]
    points: list[PricePoint]


def ec2_client(region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 EC2 client for `region` (credentials from the usual AWS chain)."""
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError as exc:
        raise SpotUnavailableError(f"`garrison plan spot` needs boto3: {INSTALL_HINT}") from exc
    session = boto3.session.Session()
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("ec2", partition_name=partition)
    }
    if region not in known:
        # botocore ships the region list; a region newer than it needs a newer boto3.
        raise SpotDataError(
            f"unknown AWS region {region!r} (e.g. us-east-1, eu-west-1); "
            "if it is new, upgrade boto3"
        )
    config = Config(
        connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
    )
    return session.client("ec2", region_name=region, endpoint_url=endpoint_url, config=config)


def _pages(client: Any, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
    yield from client.get_paginator(operation).paginate(**params)


def fetch_instance_types(client: Any, names: Sequence[str]) -> dict[str, InstanceType]:
    """vCPUs, memory and architecture of each named type."""
    types: dict[str, InstanceType] = {}
    for page in _pages(client, "describe_instance_types", InstanceTypes=list(names)):
        for item in page["InstanceTypes"]:
            archs = item.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
            types[item["InstanceType"]] = InstanceType(
                name=item["InstanceType"],
                vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
                memory_gib=int(item["MemoryInfo"]["SizeInMiB"]) / 1024,
                # x86_64 types also list i386; arm64 ones list only arm64.
                architecture="arm64" if "arm64" in archs else "x86_64",
            )
    return types


def fetch_price_history(
    client: Any, names: Sequence[str], start: datetime, end: datetime
) -> list[PricePoint]:
    """Linux/UNIX spot prices of the named types in every zone, [start, end], all pages.

    AWS also returns the price in effect at `start`, whose timestamp may be older.
    """
    points = []
    pages = _pages(
        client,
        "describe_spot_price_history",
        InstanceTypes=list(names),
        ProductDescriptions=[PRODUCT],
        StartTime=start,
        EndTime=end,
    )
    for page in pages:
        for item in page["SpotPriceHistory"]:
            at: datetime = item["Timestamp"]
            points.append(
                PricePoint(
                    instance_type=item["InstanceType"],
                    zone=item["AvailabilityZone"],
                    price=float(item["SpotPrice"]),
                    at=at if at.tzinfo else at.replace(tzinfo=UTC),
                )
            )
    return points


def _explain(exc: Exception, region: str, endpoint_url: str | None) -> SpotDataError:
    from botocore.exceptions import (  # type: ignore[import-untyped]
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = endpoint_url or f"EC2 in {region}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return SpotDataError(
            f"no usable AWS credentials ({exc}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY; the identity needs ec2:DescribeSpotPriceHistory and "
            "ec2:DescribeInstanceTypes"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", str(exc))
        if code == "InvalidInstanceType":
            return SpotDataError(f"unknown instance type in {region}: {message}")
        if code in {"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId"}:
            return SpotDataError(f"AWS refused the request ({code}): {message}")
        return SpotDataError(f"EC2 error from {where} ({code}): {message}")
    if isinstance(exc, EndpointConnectionError):
        return SpotDataError(f"cannot reach {where}: {exc}")
    return SpotDataError(f"request to {where} failed: {exc}")


def fetch(
    region: str,
    names: Sequence[str],
    hours: float,
    endpoint_url: str | None = None,
    now: datetime | None = None,
) -> SpotData:
    """Instance sizes and the last `hours` of spot prices for `names` in `region`."""
    if not 0 < hours <= MAX_HOURS:
        raise SpotDataError(f"--hours must be in (0, {MAX_HOURS}] (AWS keeps 90 days)")
    if not names:
        raise SpotDataError("--instance-types is empty")
    client = ec2_client(region, endpoint_url)
    from botocore.exceptions import BotoCoreError, ClientError

    end = now or datetime.now(UTC)
    start = end - timedelta(hours=hours)
    try:
        types = fetch_instance_types(client, names)
        points = fetch_price_history(client, names, start, end)
    except (BotoCoreError, ClientError) as exc:
        raise _explain(exc, region, endpoint_url) from exc
    return SpotData(region=region, start=start, end=end, types=types, points=points)
