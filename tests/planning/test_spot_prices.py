"""The boto3 adapter: paging and error messages, with botocore's Stubber (moto's server
does not page, see test_spot_cli.py for the end-to-end runs)."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError, NoCredentialsError  # type: ignore[import-untyped]
from botocore.stub import Stubber  # type: ignore[import-untyped]

from garrison.planning.spot_prices import (
    PRODUCT,
    _explain,
    fetch_instance_types,
    fetch_price_history,
)

END = datetime(2026, 1, 2, tzinfo=UTC)
START = END - timedelta(hours=24)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _price(t: str, zone: str, price: str, at: datetime) -> dict[str, Any]:
    return {
        "InstanceType": t,
        "AvailabilityZone": zone,
        "SpotPrice": price,
        "ProductDescription": PRODUCT,
        "Timestamp": at,
    }


def test_price_history_reads_every_page(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    params = {
        "InstanceTypes": ["m7i.large"],
        "ProductDescriptions": [PRODUCT],
        "StartTime": START,
        "EndTime": END,
    }
    stubber.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                _price("m7i.large", "us-east-1a", "0.0400", END - timedelta(hours=2)),
                _price("m7i.large", "us-east-1b", "0.0410", START - timedelta(hours=5)),
            ],
            "NextToken": "page-2",
        },
        params,
    )
    stubber.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [_price("m7i.large", "us-east-1a", "0.0380", START)]},
        {**params, "NextToken": "page-2"},
    )
    points = fetch_price_history(client, ["m7i.large"], START, END)
    assert sorted((p.zone, p.price) for p in points) == [
        ("us-east-1a", 0.038),
        ("us-east-1a", 0.04),
        ("us-east-1b", 0.041),
    ]
    assert all(p.at.tzinfo is not None for p in points)


def test_instance_types_read_every_page(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed

    def item(name: str, vcpus: int, mib: int, archs: list[str]) -> dict[str, Any]:
        return {
            "InstanceType": name,
            "VCpuInfo": {"DefaultVCpus": vcpus},
            "MemoryInfo": {"SizeInMiB": mib},
            "ProcessorInfo": {"SupportedArchitectures": archs},
        }

    names = ["c7i.xlarge", "m7g.large"]
    stubber.add_response(
        "describe_instance_types",
        {"InstanceTypes": [item("c7i.xlarge", 4, 8192, ["x86_64"])], "NextToken": "n"},
        {"InstanceTypes": names},
    )
    stubber.add_response(
        "describe_instance_types",
        {"InstanceTypes": [item("m7g.large", 2, 8192, ["arm64"])]},
        {"InstanceTypes": names, "NextToken": "n"},
    )
    types = fetch_instance_types(client, names)
    assert (types["c7i.xlarge"].vcpus, types["c7i.xlarge"].memory_gib) == (4, 8.0)
    assert types["c7i.xlarge"].architecture == "x86_64"
    assert types["m7g.large"].architecture == "arm64"


def _client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeSpotPriceHistory")


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (NoCredentialsError(), "no usable AWS credentials"),
        (_client_error("AuthFailure", "AWS was not able to validate"), "AWS refused"),
        (_client_error("UnauthorizedOperation", "not authorized"), "UnauthorizedOperation"),
        (_client_error("InvalidInstanceType", "[m7i.bogus]"), "unknown instance type in eu-x"),
        (_client_error("RequestLimitExceeded", "slow down"), "EC2 error from EC2 in eu-x"),
    ],
)
def test_aws_failures_become_messages(exc: Exception, message: str) -> None:
    assert message in str(_explain(exc, "eu-x", None))
