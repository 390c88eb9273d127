"""SSRF: which webhook URLs and resolved addresses are refused, in production and locally."""

from __future__ import annotations

import ipaddress

import pytest
from alerting_fakes import fake_resolver
from drift_monitor.adapters.url_safety import (
    UnsafeURLError,
    UrlPolicy,
    check_address,
    resolve_target,
    validate_webhook_url,
)
from drift_monitor.domain.errors import ValidationError

PROD = UrlPolicy(allow_loopback=False)
LOCAL = UrlPolicy(allow_loopback=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.slack.com/services/x", "https"),
        ("ftp://hooks.slack.com/x", "https"),
        ("file:///etc/passwd", "https"),
        ("https://user:secret@hooks.slack.com/x", "credentials"),
        ("https://user@hooks.slack.com/x", "credentials"),
        ("https://169.254.169.254/computeMetadata/v1/", "metadata"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("https://METADATA.google.internal./x", "metadata"),
        ("https://metadata/computeMetadata/v1/", "metadata"),
        ("https://10.0.0.5/hook", "private"),
        ("https://172.16.3.4/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://[fd12::1]/hook", "private"),
        ("https://169.254.10.10/hook", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[::1]/hook", "loopback"),
        ("https://127.0.0.1/hook", "loopback"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://[::]/hook", "unspecified"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://[::ffff:169.254.169.254]/", "metadata"),
        ("https://100.64.0.1/hook", "shared"),
        ("https:///nohost", "host"),
        ("https://hooks.slack.com/x#frag", "fragment"),
        ("https://hooks.slack.com:99999/x", "valid URL"),
        ("https://hooks.slack.com/x y", "whitespace"),
        ("", "non-empty"),
    ],
)
def test_production_refuses_unsafe_urls_without_any_lookup(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError) as info:
        validate_webhook_url(url, PROD)
    assert reason in info.value.message
    assert info.value.field == "alert_webhook"
    assert info.value.status == 422
    assert isinstance(info.value, ValidationError)


def test_a_public_https_url_is_accepted_unchanged() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXX?a=1"
    assert validate_webhook_url(url, PROD) == url


def test_non_string_url_is_refused() -> None:
    with pytest.raises(UnsafeURLError):
        validate_webhook_url(12, PROD)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://localhost:9000/hook", "http://[::1]:9000/x"]
)
def test_local_mode_allows_http_to_loopback(url: str) -> None:
    assert validate_webhook_url(url, LOCAL) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/x",  # http to a non-loopback host stays refused locally
        "https://10.1.2.3/x",  # private stays refused locally
        "https://169.254.169.254/",
        "https://metadata.google.internal/",
    ],
)
def test_local_mode_still_refuses_internal_destinations(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        validate_webhook_url(url, LOCAL)


def test_policy_from_environment() -> None:
    assert UrlPolicy.for_environment("production").allow_loopback is False
    assert UrlPolicy.for_environment("test").allow_loopback is True
    assert UrlPolicy.for_environment("local").allow_loopback is True


def test_resolution_checks_every_address_not_just_the_first() -> None:
    resolver = fake_resolver({"evil.example.com": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(UnsafeURLError, match=r"10\.0\.0\.7"):
        resolve_target("https://evil.example.com/hook", PROD, resolver=resolver)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "metadata"),
        ("10.9.8.7", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.10", "private"),
        ("fc00::5", "private"),
        ("fe80::abcd", "link-local"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("239.1.1.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("192.0.2.1", "non-public"),  # TEST-NET-1 documentation range
    ],
)
def test_a_name_resolving_to_an_internal_address_is_refused(address: str, reason: str) -> None:
    resolver = fake_resolver({"rebind.example.com": [address]})
    with pytest.raises(UnsafeURLError, match=reason):
        resolve_target("https://rebind.example.com/hook", PROD, resolver=resolver)


def test_decimal_ip_host_is_resolved_then_refused() -> None:
    # 2852039166 == 169.254.169.254: the OS resolver turns it into the metadata address.
    with pytest.raises(UnsafeURLError, match="metadata"):
        resolve_target("https://2852039166/", PROD)


def test_resolved_target_pins_the_checked_address() -> None:
    resolver = fake_resolver({"hooks.slack.com": ["3.120.1.1"]})
    target = resolve_target("https://hooks.slack.com/services/a?b=c", PROD, resolver=resolver)
    assert (target.scheme, target.host, target.port, target.ip) == (
        "https",
        "hooks.slack.com",
        443,
        "3.120.1.1",
    )
    assert target.path == "/services/a?b=c"
    assert target.endpoint == "https://hooks.slack.com:443"


def test_local_http_to_a_name_that_resolves_off_loopback_is_refused() -> None:
    resolver = fake_resolver({"localhost": ["93.184.216.34"]})
    with pytest.raises(UnsafeURLError, match="loopback"):
        resolve_target("http://localhost:8000/x", LOCAL, resolver=resolver)


def test_unresolvable_host_is_an_os_error_not_a_validation_error() -> None:
    with pytest.raises(OSError):
        resolve_target("https://nowhere.invalid/x", PROD, resolver=fake_resolver({}))


def test_check_address_unwraps_nat64() -> None:
    with pytest.raises(UnsafeURLError, match="private"):
        check_address(ipaddress.ip_address("64:ff9b::a00:1"), PROD)  # 10.0.0.1
    check_address(ipaddress.ip_address("8.8.8.8"), PROD)


# Numeric host forms that inet_aton (and so resolvers and HTTP clients) read as IPv4 addresses,
# and loopback or single-label names: refused when the configuration is saved, not at send time.
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://localhost/hook", "local"),
        ("https://localhost./hook", "local"),
        ("https://api.localhost/hook", "local"),
        ("https://0x7f000001/hook", "loopback"),
        ("https://2130706433/hook", "loopback"),
        ("https://127.1/hook", "loopback"),
        ("https://127.0.1/hook", "loopback"),
        ("https://017700000001/hook", "loopback"),
        ("https://0x7f.0.0.1/hook", "loopback"),
        ("https://0177.0.0.01/hook", "loopback"),
        ("https://0/hook", "unspecified"),
        ("https://0xa9fea9fe/", "metadata"),
        ("https://10.1/hook", "private"),
        ("https://intranet/hook", "single-label"),
    ],
)
def test_production_refuses_numeric_and_local_host_forms_at_configuration(
    url: str, reason: str
) -> None:
    with pytest.raises(UnsafeURLError) as info:
        validate_webhook_url(url, PROD)
    assert reason in info.value.message


@pytest.mark.parametrize(
    "host", ["0x7f000001", "2130706433", "127.1", "017700000001", "0177.0.0.1", "0x7f.1"]
)
def test_numeric_forms_parse_as_inet_aton_does(host: str) -> None:
    import socket

    from drift_monitor.adapters.url_safety import _literal_ip

    assert _literal_ip(host) == ipaddress.IPv4Address(socket.inet_aton(host))


@pytest.mark.parametrize(
    "host", ["256.1.1.1", "1.2.3.4.5", "0x", "08.1.1.1", "1..2", "4294967296", "example.com"]
)
def test_non_numeric_or_overflowing_hosts_are_not_addresses(host: str) -> None:
    from drift_monitor.adapters.url_safety import _inet_aton

    assert _inet_aton(host) is None


def test_local_mode_accepts_numeric_loopback_but_not_unspecified() -> None:
    assert validate_webhook_url("http://2130706433:9000/x", LOCAL)
    with pytest.raises(UnsafeURLError, match="unspecified"):
        validate_webhook_url("https://0/x", LOCAL)
