"""What the sign-up and reset link limits count: one mailbox per email, one client per IPv6 /64."""

import pytest

from controlplane.console.signup_links import counted_address, counted_email


@pytest.mark.parametrize(
    ("typed", "counted"),
    [
        ("jo@example.com", "jo@example.com"),
        ("Jo.Doe+News@Example.COM", "jo.doe@example.com"),
        ("jo+a+b@example.com", "jo@example.com"),
        ("jo+@example.com", "jo@example.com"),
        ("+only@example.com", "+only@example.com"),
        (" JO@example.com ", "jo@example.com"),
        ('"a+b"@example.com', '"a@example.com'),
    ],
)
def test_an_email_is_counted_lowercased_and_without_its_tag(typed: str, counted: str) -> None:
    assert counted_email(typed) == counted


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2::a", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::a", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unknown", "unknown"),
        ("x" * 500, "x" * 64),
    ],
)
def test_a_client_is_counted_as_its_ipv4_address_or_its_ipv6_64(address: str, counted: str) -> None:
    assert counted_address(address) == counted
