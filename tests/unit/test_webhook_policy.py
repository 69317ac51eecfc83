"""Webhook URLs: what the SSRF policy lets through."""

import ipaddress

import pytest

from garrison.config.settings import WebhookSettings
from garrison.domain.errors import InvalidArgumentError
from garrison.services.webhooks import WebhookPolicy

STRICT = WebhookPolicy(WebhookSettings())


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "/relative/path",
        "http://user:secret@example.com/",
        "http://localhost:8080/",
        "http://metadata.google.internal/computeMetadata",
        "http://api.svc.cluster.local/",
        "http://example.com:99999/",
        "http://" + "a" * 5000 + ".com/",
    ],
)
def test_refused_shapes(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        STRICT.check_shape(url)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.5",
        "169.254.169.254",
        "169.254.10.10",
        "0.0.0.0",
        "fd00:ec2::254",
        "224.0.0.1",
    ],
)
def test_refused_addresses(address: str) -> None:
    with pytest.raises(InvalidArgumentError):
        STRICT.check_addresses([ipaddress.ip_address(address)])


def test_public_addresses_pass() -> None:
    STRICT.check_addresses([ipaddress.ip_address("93.184.216.34")])
    assert STRICT.check_shape("https://hooks.example.com/x?y=1") == ("hooks.example.com", 443)


def test_configuration_can_open_loopback_and_private_but_never_metadata() -> None:
    relaxed = WebhookPolicy(WebhookSettings(allow_loopback=True, allow_private=True))
    relaxed.check_shape("http://localhost:9000/hook")
    relaxed.check_addresses([ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")])
    with pytest.raises(InvalidArgumentError):
        relaxed.check_addresses([ipaddress.ip_address("169.254.169.254")])


def test_allow_lists_and_https() -> None:
    policy = WebhookPolicy(
        WebhookSettings(allowed_domains=["*.example.com"], allowed_ports=[443], require_https=True)
    )
    policy.check_shape("https://hooks.example.com/")
    for url in (
        "http://hooks.example.com/",
        "https://evil.com/",
        "https://hooks.example.com:8443/",
    ):
        with pytest.raises(InvalidArgumentError):
            policy.check_shape(url)


async def test_validate_resolves_names() -> None:
    with pytest.raises(InvalidArgumentError, match="loopback"):
        await STRICT.validate("http://127.0.0.1:9/hook")
