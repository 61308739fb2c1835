"""SMTP_URL and MAIL_FROM are read strictly, and a bad one never echoes its password; an address the API takes is
one address to the mailer."""

from __future__ import annotations

import re
import typing
from email.utils import parseaddr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.core.mail import Mailer, SmtpEndpoint, is_one_address, parse_smtp_url, sender_address
from controlplane.core.settings import Settings, SettingsError
from controlplane.core.web import Email


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("smtp://127.0.0.1:2525", SmtpEndpoint("127.0.0.1", 2525)),
        ("smtp://mail.example.com", SmtpEndpoint("mail.example.com", 25)),
        ("smtps://mail.example.com", SmtpEndpoint("mail.example.com", 465, implicit_tls=True)),
        (
            "smtp://user%40example.com:p%3Ass@mail.example.com?starttls=true",
            SmtpEndpoint("mail.example.com", 587, starttls=True, username="user@example.com", password="p:ss"),
        ),
        ("smtp://mail.example.com:2587/?starttls=false", SmtpEndpoint("mail.example.com", 2587)),
    ],
)
def test_an_smtp_url_names_its_server(url: str, endpoint: SmtpEndpoint) -> None:
    assert parse_smtp_url(url) == endpoint


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://mail.example.com/path",
        "smtp://mail.example.com?tls=1",
        "smtp://mail.example.com?starttls=maybe",
        "smtps://mail.example.com?starttls=true",
        "smtp://mail.example.com:notaport",
    ],
)
def test_a_bad_smtp_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ValueError):
        parse_smtp_url(url)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"SMTP_URL": url.replace("://", "://user:hunter2@", 1)})
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("mail_from", "address"),
    [("billing@example.com", "billing@example.com"), ("Control plane <no-reply@cp.example>", "no-reply@cp.example")],
)
def test_mail_from_is_an_address_with_a_domain(mail_from: str, address: str) -> None:
    assert sender_address(mail_from) == address
    assert Mailer("smtp://127.0.0.1:25", mail_from).domain == address.split("@")[1]


@pytest.mark.parametrize("mail_from", ["nobody", "Name <>", "a@localhost", "a@example.com\\nBcc: x@example.com"])
def test_a_bad_mail_from_is_refused(mail_from: str) -> None:
    with pytest.raises(SettingsError, match="MAIL_FROM"):
        Settings.from_env({"MAIL_FROM": mail_from.replace("\\n", "\n")})


def test_public_url_defaults_to_the_api_and_loses_its_trailing_slash() -> None:
    assert Settings.from_env({}).public_url == "http://127.0.0.1:8000"
    assert Settings.from_env({"CONTROLPLANE_URL": "http://127.0.0.1:9000"}).public_url == "http://127.0.0.1:9000"
    assert Settings.from_env({"PUBLIC_URL": "https://console.example.com/"}).public_url == "https://console.example.com"
    with pytest.raises(SettingsError, match="PUBLIC_URL"):
        Settings.from_env({"PUBLIC_URL": "console.example.com"})


_EMAIL_PATTERN = typing.get_args(Email)[1].pattern


@settings(max_examples=300, deadline=None)
@given(st.from_regex(_EMAIL_PATTERN, fullmatch=True))
def test_every_address_the_api_takes_is_one_address_to_the_mailer(address: str) -> None:
    # What the API stores (an `Email`) reads back as itself, never as a list, a name or a comment.
    assert parseaddr(address)[1] == address
    assert is_one_address(address)


@pytest.mark.parametrize(
    "text",
    ["me@evil.com,postmaster", "Me <me@evil.com>", '"a,b"@evil.com', "me@evil.com(x)", "g:a@b.com", "a@b.com;c@d.com"],
)
def test_what_would_be_several_addresses_or_a_name_is_neither_an_email_nor_one_address(text: str) -> None:
    assert re.fullmatch(_EMAIL_PATTERN, text) is None
    assert not is_one_address(text)
