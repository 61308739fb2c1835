"""The embedded dev stack starts real services, keeps their data across down/up, and leaves nothing running."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import hvac
import psutil
import pytest
import redis
import stripe
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from controlplane.core.mail import Mailer
from controlplane.devstack import DevStack, DevStackError
from controlplane.devstack.mail_store import MailStore
from controlplane.devstack.processes import ProcessRecord, is_running, spawn
from controlplane.devstack.redis_service import RedisService
from controlplane.devstack.state import StackState

ENV_KEYS = [
    "DATABASE_URL",
    "DATABASE_OWNER_URL",
    "REDIS_URL",
    "BAO_ADDR",
    "BAO_TOKEN",
    "STRIPE_API_BASE",
    "SMTP_URL",
    "MAIL_FROM",
    "CONTROLPLANE_URL",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = DevStack(tmp_path_factory.mktemp("devstack"), api_port=8123)
    try:
        stack.up(configured={})
        yield stack
    finally:
        stack.down()


def recorded_processes(stack: DevStack) -> dict[str, ProcessRecord]:
    return StackState.load(stack.state_file).processes


def bao(env: dict[str, str]) -> hvac.Client:
    return hvac.Client(url=env["BAO_ADDR"], token=env["BAO_TOKEN"])


def stripe_client(env: dict[str, str]) -> stripe.StripeClient:
    api_key = bao(env).secrets.kv.v2.read_secret_version(
        path="platform/stripe", mount_point="secret", raise_on_deleted_version=True
    )
    return stripe.StripeClient(api_key["data"]["data"]["api_key"], base_addresses={"api": env["STRIPE_API_BASE"]})


def _mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Dev <dev@controlplane.localhost>"
    message["To"] = "ada@example.com"
    message["Subject"] = subject
    message.set_content("hello")
    return message


def test_env_names_every_service(stack: DevStack) -> None:
    env = stack.env()
    assert list(env) == ENV_KEYS
    assert env["CONTROLPLANE_URL"] == "http://127.0.0.1:8123"
    assert set(recorded_processes(stack)) == {"postgres", "redis", "openbao", "stripe", "mail"}


async def test_app_role_is_neither_superuser_nor_bypassrls(stack: DevStack) -> None:
    connection = await asyncpg.connect(stack.env()["DATABASE_URL"])
    try:
        row = await connection.fetchrow("select rolsuper, rolbypassrls from pg_roles where rolname = current_user")
        assert tuple(row) == (False, False)
        # It owns nothing and cannot create tables: the schema comes from migrations, run as the owner.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("create table intruder (id int)")
    finally:
        await connection.close()


async def test_owner_role_owns_the_database_and_schema_without_privileges(stack: DevStack) -> None:
    connection = await asyncpg.connect(stack.env()["DATABASE_OWNER_URL"])
    try:
        row = await connection.fetchrow(
            """select r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole,
                      pg_get_userbyid(d.datdba) as database_owner,
                      pg_get_userbyid(n.nspowner) as schema_owner
                 from pg_roles r, pg_database d, pg_namespace n
                where r.rolname = current_user and d.datname = current_database() and n.nspname = 'public'"""
        )
        assert tuple(row) == (
            "controlplane_owner",
            False,
            False,
            False,
            "controlplane_owner",
            "controlplane_owner",
        )
    finally:
        await connection.close()


async def test_the_dev_stack_keeps_its_data_durable_and_the_test_suites_does_not(
    stack: DevStack, stack_env: dict[str, str]
) -> None:
    """`make run`'s PostgreSQL syncs to disk; the test suite's throwaway one (`durable=False`) does not."""
    for env, expected in ((stack.env(), "on"), (stack_env, "off")):
        connection = await asyncpg.connect(env["DATABASE_URL"])
        try:
            assert await connection.fetchval("show fsync") == expected
            assert await connection.fetchval("show synchronous_commit") == expected
        finally:
            await connection.close()


def test_redis_answers(stack: DevStack) -> None:
    client = redis.Redis.from_url(stack.env()["REDIS_URL"])
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_openbao_is_unsealed_with_platform_secrets(stack: DevStack) -> None:
    client = bao(stack.env())
    assert client.sys.is_sealed() is False
    assert {"secret/", "transit/"} <= set(client.sys.list_mounted_secrets_engines()["data"])

    jwt = client.secrets.kv.v2.read_secret_version(
        path="platform/jwt", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    keys = json.loads(jwt["keys"])
    assert isinstance(load_pem_private_key(keys[jwt["active_kid"]].encode(), password=None), Ed25519PrivateKey)

    stripe_secrets = client.secrets.kv.v2.read_secret_version(
        path="platform/stripe", mount_point="secret", raise_on_deleted_version=True
    )
    assert stripe_secrets["data"]["data"]["api_key"].startswith("sk_test_")
    assert stripe_secrets["data"]["data"]["webhook_secret"].startswith("whsec_")


def test_stripe_double_creates_customers(stack: DevStack) -> None:
    customer = stripe_client(stack.env()).v1.customers.create(params={"email": "ada@example.com"})
    assert customer.id.startswith("cus_")
    assert customer.email == "ada@example.com"


def test_every_service_listens_on_loopback_only(stack: DevStack) -> None:
    for name, record in recorded_processes(stack).items():
        process = psutil.Process(record.pid)
        addresses = {
            connection.laddr.ip
            for member in [process, *process.children(recursive=True)]
            for connection in member.net_connections(kind="inet")
            if connection.status == psutil.CONN_LISTEN
        }
        assert addresses == {"127.0.0.1"}, name


def test_up_again_reuses_the_running_services(stack: DevStack) -> None:
    env, pids = stack.env(), recorded_processes(stack)
    assert stack.up(configured={}) == env
    assert recorded_processes(stack) == pids


async def test_down_stops_everything_and_up_keeps_the_data(stack: DevStack) -> None:
    env = stack.env()
    owner = await asyncpg.connect(env["DATABASE_OWNER_URL"])
    try:
        await owner.execute("create table survivors (name text primary key)")
        await owner.execute("insert into survivors values ('ada')")
    finally:
        await owner.close()
    jwt_before = bao(env).secrets.kv.v2.read_secret_version(
        path="platform/jwt", mount_point="secret", raise_on_deleted_version=True
    )["data"]
    customer = stripe_client(env).v1.customers.create(params={"email": "grace@example.com"})
    Mailer(env["SMTP_URL"], env["MAIL_FROM"]).send(_mail("kept across restarts"), "ada@example.com")
    redis_client = redis.Redis.from_url(env["REDIS_URL"])
    redis_client.set("survivor", "yes")
    redis_client.close()
    before = recorded_processes(stack)

    stack.down()
    assert not any(is_running(record) for record in before.values())
    assert not any(psutil.pid_exists(record.pid) and is_running(record) for record in before.values())
    with pytest.raises(DevStackError):
        stack.env()
    stack.down()  # idempotent

    env_after = stack.up(configured={})
    assert env_after == env  # same ports and passwords, so the same URLs
    owner = await asyncpg.connect(env_after["DATABASE_OWNER_URL"])
    try:
        assert await owner.fetchval("select name from survivors") == "ada"
        await owner.execute("drop table survivors")
    finally:
        await owner.close()
    jwt_after = bao(env_after).secrets.kv.v2.read_secret_version(
        path="platform/jwt", mount_point="secret", raise_on_deleted_version=True
    )["data"]
    assert jwt_after == jwt_before
    assert stripe_client(env_after).v1.customers.retrieve(customer.id).email == "grace@example.com"
    Mailer(env_after["SMTP_URL"], env_after["MAIL_FROM"]).send(_mail("after the restart"), "ada@example.com")
    subjects = [mail.subject for mail in MailStore(stack.root / "mail").summaries()]
    assert subjects[-2:] == ["kept across restarts", "after the restart"]
    redis_client = redis.Redis.from_url(env_after["REDIS_URL"])
    assert redis_client.get("survivor") == b"yes"
    redis_client.close()


# Everything but Redis configured elsewhere; an empty value counts as unset, so Redis is started.
ALL_BUT_REDIS = {
    "DATABASE_URL": "postgresql://app:secret@db.example:5432/controlplane",
    "DATABASE_OWNER_URL": "postgresql://owner:secret@db.example:5432/controlplane",
    "BAO_ADDR": "https://bao.example",
    "BAO_TOKEN": "s.configured",
    "STRIPE_API_BASE": "https://api.stripe.example",
    "SMTP_URL": "smtps://mailer:secret@smtp.example",
    "MAIL_FROM": "billing@controlplane.example",
    "CONTROLPLANE_URL": "https://controlplane.example",
    "REDIS_URL": "",
}


def test_configured_services_are_passed_through_not_started(tmp_path: Path) -> None:
    configured = ALL_BUT_REDIS
    stack = DevStack(tmp_path)
    try:
        env = stack.up(configured)
        assert list(env) == ENV_KEYS
        assert {key: env[key] for key in configured if configured[key]} == {
            key: value for key, value in configured.items() if value
        }
        assert env["REDIS_URL"].startswith("redis://127.0.0.1:")
        assert set(recorded_processes(stack)) == {"redis"}
        assert not (tmp_path / "postgres").exists()
        assert not (tmp_path / "openbao").exists()
        assert not (tmp_path / "mail").exists()
    finally:
        stack.down()
    assert recorded_processes(stack) == {}


def test_configured_url_without_its_companion_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DevStackError, match="DATABASE_OWNER_URL"):
        DevStack(tmp_path).up({"DATABASE_URL": "postgresql://app:secret@db.example/controlplane"})


def test_a_service_failing_to_start_raises_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_start(self: RedisService, ports: Mapping[str, int]) -> ProcessRecord:
        return spawn([sys.executable, "-c", "print('FATAL: bad directive'); raise SystemExit(1)"], self.log)

    monkeypatch.setattr(RedisService, "start", broken_start)
    stack = DevStack(tmp_path)
    try:
        with pytest.raises(DevStackError, match=r"(?s)redis exited during start-up.*FATAL: bad directive"):
            stack.up(ALL_BUT_REDIS)
    finally:
        stack.down()
