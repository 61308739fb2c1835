"""Plugin events delivered through the tenant webhook outbox to each tenant's endpoint: signed, at least once,
retried, never crossed; and where an endpoint may point."""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from httpx import AsyncClient

from controlplane.core import metrics
from controlplane.core.tenant_vault import TenantVault
from tenants import service, webhook_endpoints, webhook_secrets
from tenants.service._webhook_delivery import BACKOFF_SECONDS
from tests.api._helpers import assert_problem
from tests.api._webhooks import Receiver, make_due, outbox_rows, receivers, tenant_with_endpoint, webhook_outbox_events
from tests.api.plugins._support import install, plugin, publisher, tenant_with_admin
from tests.factories import Factory

__all__ = ["receivers"]  # the fixture, shared


async def test_events_reach_their_own_tenant_signed_once_each(
    client: AsyncClient, factory: Factory, tenant_vault: TenantVault, receivers: list[Receiver], report: Any
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    (tenant_a, admin_a, secret_a), (tenant_b, admin_b, secret_b) = [
        await tenant_with_endpoint(client, factory, staff, receiver.url) for receiver in receivers
    ]
    # No endpoint: its events are not queued (none waits for an endpoint set later).
    quiet, quiet_admin = await tenant_with_admin(factory, staff, endpoint=False)
    for tenant, admin in ((tenant_a, admin_a), (tenant_b, admin_b), (quiet, quiet_admin)):
        await install(client, admin.headers, tenant["id"], made["slug"])

    first = await service.deliver_webhooks(tenant_vault, production=False)
    again = await service.deliver_webhooks(tenant_vault, production=False)
    per_tenant = len(await webhook_outbox_events(uuid.UUID(tenant_a["id"])))
    assert per_tenant >= 1
    assert (first.delivered, first.retrying, again.claimed) == (2 * per_tenant, 0, 0)

    now = int(time.time())
    for receiver, tenant, secret, other in (
        (receivers[0], tenant_a, secret_a, secret_b),
        (receivers[1], tenant_b, secret_b, secret_a),
    ):
        assert len(receiver.received) == per_tenant
        for headers, body in receiver.received:
            assert webhook_secrets.verify(headers["Webhook-Signature"], body, secret, now=now)
            assert not webhook_secrets.verify(headers["Webhook-Signature"], body, other, now=now)
            event = json.loads(body)
            assert (event["data"]["tenant_id"], event["id"]) == (tenant["id"], headers["Webhook-Id"])
        assert "plugin.installed" in {event["type"] for event in receiver.events()}
    assert await webhook_outbox_events(uuid.UUID(quiet["id"])) == []
    report(
        f"webhook delivery: 2 tenants, {per_tenant} events each, every endpoint got only its own tenant's, signed "
        "with its own secret; a tenant without an endpoint queued nothing"
    )


async def test_a_failing_endpoint_is_retried_with_back_off_then_given_up(
    client: AsyncClient,
    factory: Factory,
    tenant_vault: TenantVault,
    receivers: list[Receiver],
    stack_env: dict[str, str],
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    receiver = receivers[0]
    tenant, admin, secret = await tenant_with_endpoint(client, factory, staff, receiver.url)
    await install(client, admin.headers, tenant["id"], made["slug"])

    receiver.status = 500
    await service.deliver_webhooks(tenant_vault, production=False)
    rows = await outbox_rows(stack_env, tenant["id"])
    assert {(row["attempts"], row["last_error"], row["waiting"], row["delivered_at"]) for row in rows} == {
        (1, "http_5xx", True, None)
    }
    assert (await service.deliver_webhooks(tenant_vault, production=False)).claimed == 0  # not due yet

    receiver.status = 302
    await make_due(stack_env, tenant["id"])
    await service.deliver_webhooks(tenant_vault, production=False)  # a redirect is not followed
    assert {(row["attempts"], row["last_error"]) for row in await outbox_rows(stack_env, tenant["id"])} == {
        (2, "http_3xx")
    }

    # After a rotation, deliveries carry both signatures: the receiver still holding the old secret verifies.
    receiver.status = 200
    await client.post(f"/v1/tenants/{tenant['id']}/webhook-secret/rotations", headers=admin.headers)
    await make_due(stack_env, tenant["id"])
    assert (await service.deliver_webhooks(tenant_vault, production=False)).delivered == len(rows)
    for headers, body in receiver.received[-len(rows) :]:
        assert headers["Webhook-Signature"].count("v1=") == 2
        assert webhook_secrets.verify(headers["Webhook-Signature"], body, secret, now=int(time.time()))
    # Each event was sent three times under one id: receivers deduplicate on it.
    assert len(receiver.received) == 3 * len(rows)
    assert len({headers["Webhook-Id"] for headers, _body in receiver.received}) == len(rows)

    # Events that never get through: given up after the last back-off, kept and visible.
    await client.delete(f"/v1/tenants/{tenant['id']}/plugins/{made['slug']}", headers=admin.headers)
    receiver.status = 503
    await make_due(stack_env, tenant["id"], attempts=len(BACKOFF_SECONDS))
    given_up_before = metrics.WEBHOOK_DELIVERIES_TOTAL.labels(outcome="failed")._value.get()
    outcome = await service.deliver_webhooks(tenant_vault, production=False)
    assert outcome.claimed == outcome.failed >= 1
    assert metrics.WEBHOOK_DELIVERIES_TOTAL.labels(outcome="failed")._value.get() - given_up_before == outcome.failed
    given_up = [row for row in await outbox_rows(stack_env, tenant["id"]) if row["failed_at"] is not None]
    assert len(given_up) == outcome.failed and {row["last_error"] for row in given_up} == {"http_5xx"}
    assert (await service.deliver_webhooks(tenant_vault, production=False)).claimed == 0

    # The tenant admin sees where each delivery stands, newest first.
    listed = await client.get(f"/v1/tenants/{tenant['id']}/webhook-events", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["status"] for item in items] == ["failed"] * outcome.failed + ["delivered"] * len(rows)
    assert items[0]["last_error"] == "http_5xx" and items[-1]["attempts"] == 3
    assert int(items[0]["id"]) > int(items[-1]["id"])


async def test_endpoints_are_checked_and_removable(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant, admin = await tenant_with_admin(factory, staff, endpoint=False)
    member = await factory.member(tenant["id"], "tenant_member")
    url = f"/v1/tenants/{tenant['id']}/webhook-endpoint"
    assert_problem(await client.get(url, headers=admin.headers), 404, "webhook_endpoint_not_set")
    assert_problem(
        await client.put(url, json={"url": "ftp://x.example"}, headers=admin.headers), 400, "validation_error"
    )
    assert_problem(
        await client.put(url, json={"url": "https://user:pw@x.example/h"}, headers=admin.headers),
        422,
        "invalid_webhook_endpoint",
    )
    assert_problem(
        await client.put(url, json={"url": "https://x.example/h"}, headers=member.headers), 403, "forbidden_for_role"
    )
    assert (await client.put(url, json={"url": "https://x.example/h"}, headers=admin.headers)).status_code == 200
    assert (await client.get(url, headers=admin.headers)).json()["url"] == "https://x.example/h"
    for _ in range(2):
        assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert_problem(await client.get(url, headers=admin.headers), 404, "webhook_endpoint_not_set")


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "https://localhost/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://192.168.0.10/x",
        "https://100.64.0.1/x",  # carrier-grade NAT: cloud metadata and pod ranges
        "https://100.127.255.254/x",
        "https://[::ffff:127.0.0.1]/x",  # IPv4-mapped IPv6
        "https://[::ffff:169.254.169.254]/x",
        "https://0.0.0.0/x",
        "https://[fd00::1]/x",
        "https://198.18.0.1/x",
        "https://192.0.2.1/x",
        # IPv6 addresses that carry an internal IPv4 address inside: NAT64 (well-known and local-use prefixes),
        # 6to4, Teredo and the deprecated IPv4-compatible form.
        "https://[64:ff9b::a00:1]/x",
        "https://[64:ff9b:1::a9fe:a9fe]/x",
        "https://[2002:a00:1::]/x",
        "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/x",
        "https://[::a00:1]/x",
    ],
)
def test_production_refuses_plain_http_and_internal_addresses(url: str) -> None:
    with pytest.raises(webhook_endpoints.InvalidWebhookEndpoint):
        webhook_endpoints.check(url, production=True)
    assert webhook_endpoints.check(url, production=False) == url


class _Resolver:
    """A DNS server for one test: each lookup answers the next of `answers` (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, _port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


@pytest.mark.parametrize(
    "addresses", [["100.64.0.7"], ["93.184.216.34", "10.0.0.5"], ["::ffff:127.0.0.1"], ["2606:4700::1", "fe80::1"]]
)
def test_in_production_a_name_resolving_to_any_internal_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, addresses: list[str]
) -> None:
    resolver = _Resolver(addresses)
    monkeypatch.setattr(webhook_endpoints, "_getaddrinfo", resolver)
    with pytest.raises(webhook_endpoints.InvalidWebhookEndpoint):
        webhook_endpoints.check("https://hooks.example.test/x", production=True)
    sent = webhook_endpoints.post("https://hooks.example.test/x", b"{}", {}, production=True)
    assert sent == webhook_endpoints.Sent(False, "unreachable")


def test_a_delivery_connects_to_the_address_it_checked_not_a_second_lookup(
    monkeypatch: pytest.MonkeyPatch, receivers: list[Receiver]
) -> None:
    receiver = receivers[0]
    port = receiver.server.server_address[1]
    # The first lookup answers the receiver; any later one (a rebinding) answers an address that goes nowhere.
    resolver = _Resolver(["127.0.0.1"], ["192.0.2.1"])
    monkeypatch.setattr(webhook_endpoints, "_getaddrinfo", resolver)
    sent = webhook_endpoints.post(
        f"http://hooks.example.test:{port}/hooks?x=1", b'{"a":1}', {"Webhook-Id": "1"}, production=False
    )
    assert sent == webhook_endpoints.Sent(True, None)
    assert resolver.lookups == ["hooks.example.test"]
    ((headers, body),) = receiver.received
    assert (headers["Host"], headers["Webhook-Id"], body) == (f"hooks.example.test:{port}", "1", b'{"a":1}')


def test_a_failed_delivery_records_only_a_coarse_reason(
    monkeypatch: pytest.MonkeyPatch, receivers: list[Receiver]
) -> None:
    receiver = receivers[0]
    port = receiver.server.server_address[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    monkeypatch.setattr(webhook_endpoints, "TIMEOUT_SECONDS", 0.5)
    try:
        refused = webhook_endpoints.post(f"http://127.0.0.1:{closed.getsockname()[1]}/", b"", {}, production=False)
        timed_out = webhook_endpoints.post(f"http://127.0.0.1:{silent.getsockname()[1]}/", b"", {}, production=False)
    finally:
        closed.close()
        silent.close()
    tls = webhook_endpoints.post(f"https://127.0.0.1:{port}/hooks", b"", {}, production=False)  # it speaks http
    unknown = webhook_endpoints.post("http://no-such-host.invalid/", b"", {}, production=False)
    receiver.status = 404
    missing = webhook_endpoints.post(receiver.url, b"", {}, production=False)
    assert [sent.error for sent in (refused, timed_out, tls, unknown, missing)] == [
        "unreachable",
        "timeout",
        "tls",
        "unreachable",
        "http_4xx",
    ]


def _certificate_for(name: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for `name`, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_a_pinned_https_delivery_verifies_the_certificate_for_the_name(
    monkeypatch: pytest.MonkeyPatch, receivers: list[Receiver], tmp_path: Path
) -> None:
    receiver = receivers[0]
    cert_file, key_file = _certificate_for("hooks.example.test", tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    receiver.server.socket = server_context.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_address[1]

    def trusting() -> ssl.SSLContext:  # trusts the receiver's certificate, checks names as ever
        context = ssl.create_default_context(cafile=str(cert_file))
        return context

    monkeypatch.setattr(webhook_endpoints, "_tls_context", trusting)
    monkeypatch.setattr(webhook_endpoints, "_getaddrinfo", _Resolver(["127.0.0.1"]))
    # Connected to 127.0.0.1, yet the certificate is checked for the name (so SNI and Host carry the name).
    sent = webhook_endpoints.post(f"https://hooks.example.test:{port}/hooks", b"{}", {}, production=False)
    assert sent == webhook_endpoints.Sent(True, None)
    assert receiver.received[0][0]["Host"] == f"hooks.example.test:{port}"
    # Another name on the same address: its certificate does not match, nothing is sent.
    wrong = webhook_endpoints.post(f"https://other.example.test:{port}/hooks", b"{}", {}, production=False)
    assert wrong == webhook_endpoints.Sent(False, "tls")
    assert len(receiver.received) == 1
