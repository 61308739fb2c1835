"""What the sign-up and reset link limits count: one mailbox per email, one client per IPv6 /64."""

import pytest

from controlplane.console.signup_links import counted_email


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
