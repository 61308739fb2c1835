import uuid

from controlplane.core.auth import api_keys


def test_generated_key_parses_back_and_matches_its_hash() -> None:
    tenant, key = uuid.uuid4(), uuid.uuid4()
    text, stored = api_keys.generate(tenant, key)
    parsed = api_keys.parse(text)
    assert parsed is not None
    assert (parsed.tenant_id, parsed.key_id) == (tenant, key)
    assert api_keys.secret_matches(parsed.secret, stored)
    assert not api_keys.secret_matches(parsed.secret[:-1] + "x", stored)
    assert parsed.secret.encode() not in stored


def test_malformed_keys_do_not_parse() -> None:
    text, _ = api_keys.generate(uuid.uuid4(), uuid.uuid4())
    for bad in ("", "cpk_", text[:-1], text + "x", text.replace("cpk_", "cpx_"), "cpk_" + "z" * 100):
        assert api_keys.parse(bad) is None


def test_two_keys_never_share_a_secret() -> None:
    tenant = uuid.uuid4()
    first, _ = api_keys.generate(tenant, uuid.uuid4())
    second, _ = api_keys.generate(tenant, uuid.uuid4())
    assert first.rsplit("_", 1)[1] != second.rsplit("_", 1)[1]
