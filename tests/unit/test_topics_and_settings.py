from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.db import Migration, advisory_key
from shared.identity import TokenVerifier, new_signing_key
from shared.identity import main as identity_main
from shared.settings import ServiceSettings
from shared.topics import ALL_TOPICS, SERVICES, dead_letter_topic, topic_named


def test_topic_names_are_unique_and_every_service_has_a_dead_letter_topic() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    for service in SERVICES:
        assert topic_named(f"{service}.dlq.v1") == dead_letter_topic(service)


def test_every_topic_is_owned_by_a_known_service() -> None:
    for topic in ALL_TOPICS:
        assert topic.owner in SERVICES
        assert set(topic.producing_services) <= set(SERVICES)


def test_settings_default_to_the_local_stack_role_of_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = ServiceSettings(service_name="deals")
    assert settings.database_url == "postgresql://deals_svc:deals_svc@127.0.0.1:5432/pollinate"
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "deals")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.security_protocol == "SASL_PLAINTEXT"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    mp = monkeypatch
    mp.setenv("DATABASE_URL", "postgresql://x@db/p")
    mp.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = ServiceSettings(service_name="deals")
    assert settings.database_url == "postgresql://x@db/p"
    mp.setenv("KAFKA_SASL_USERNAME", "deals")
    mp.setenv("KAFKA_SASL_PASSWORD", "pw")
    assert settings.kafka.bootstrap_servers == "kafka:9092"


def test_advisory_keys_are_stable_signed_64_bit() -> None:
    key = advisory_key("deals", "outbox-relay")
    assert key == advisory_key("deals", "outbox-relay")
    assert key != advisory_key("attribution", "outbox-relay")
    assert -(2**63) <= key < 2**63


def test_comment_only_migrations_are_placeholders() -> None:
    assert not Migration("x", "0001", "-- nothing yet\n\n").has_statements
    assert Migration("x", "0001", "-- a table\nCREATE TABLE t (id int);").has_statements


def test_outside_development_mode_only_real_secrets_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TOKEN_VERIFICATION_KEYS",
        "TOKEN_SIGNING_KEY",
        "DATABASE_URL",
        "MIGRATION_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    private, key_set = new_signing_key("k1")
    [public] = key_set["keys"]
    keys = json.dumps(key_set)
    database = "postgresql://deals_svc:s3cret-from-a-vault@db:5432/pollinate"
    settings = ServiceSettings(
        service_name="deals", database_url=database, token_verification_keys=keys
    )
    assert settings.production_problems() == []
    local = ServiceSettings(service_name="deals", token_verification_keys=keys)
    assert local.production_problems() == ["DATABASE_URL (the service's runtime role and password)"]
    keyless = ServiceSettings(service_name="deals", database_url=database)
    assert keyless.production_problems() == [
        "TOKEN_VERIFICATION_KEYS (the platform's public JWK set: empty)"
    ]
    # Found in review: each of these passed, and the service refused every token.
    _, other = new_signing_key("k2")
    for unusable, problem in (
        (json.dumps(public), 'not a JWK set ({"keys": [...]})'),
        (json.dumps({"keys": [private]}), "key k1 is a private key: publish the public half only"),
        (json.dumps({"keys": [public | {"x": "abc"}]}), "key k1 is no EdDSA public key"),
        (json.dumps({"keys": [{k: v for k, v in public.items() if k != "kid"}]}), "no public key"),
        ("{keys", "not JSON"),
        (
            json.dumps({"keys": [public, other["keys"][0] | {"kid": "k1"}]}),
            "two keys share the kid 'k1'",
        ),
    ):
        wrong = ServiceSettings(
            service_name="deals", database_url=database, token_verification_keys=unusable
        )
        [said] = wrong.production_problems()
        assert said.startswith(f"TOKEN_VERIFICATION_KEYS (the platform's public JWK set: {problem}")
    # The instance that issues tokens must publish its signing key's public half.
    issuing = ServiceSettings(
        service_name="onboarding",
        database_url=database,
        token_verification_keys=json.dumps(other),
        token_signing_key=json.dumps(private),
    )
    assert "the signing key's kid 'k1' is not in it" in issuing.production_problems()[0]
    issuing = issuing.model_copy(update={"token_verification_keys": keys})
    assert issuing.production_problems() == []
    assert ServiceSettings(service_name="deals").production_problems(migrating=True) == [
        "MIGRATION_DATABASE_URL (the schema owner's role and password)"
    ]
    owner = "postgresql://deals_owner:another-secret@db/pollinate"
    migrating = ServiceSettings(service_name="deals", migration_database_url=owner)
    assert migrating.production_problems(migrating=True) == []


def test_development_mode_accepts_the_local_defaults_and_nothing_else_does() -> None:
    ServiceSettings(service_name="deals", development_mode=True).refuse_local_defaults()
    with pytest.raises(SystemExit, match="deals: refusing to start with local development"):
        ServiceSettings(service_name="deals", development_mode=False).refuse_local_defaults()


def test_the_relay_poll_must_stay_under_the_leaders_idle_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A standby tries the lead at each poll, and a leader idle for 60 s loses its session:
    a poll of more than 30 s is refused at start, not met as a leader losing its lead."""
    monkeypatch.setenv("RELAY_FALLBACK_POLL_SECONDS", "45")
    with pytest.raises(ValidationError, match="relay_fallback_poll_seconds"):
        ServiceSettings(service_name="deals")
    monkeypatch.setenv("RELAY_FALLBACK_POLL_SECONDS", "30")
    assert ServiceSettings(service_name="deals").relay_fallback_poll_seconds == 30


def test_a_verifier_refuses_a_key_set_with_two_keys_of_one_kid() -> None:
    _, first = new_signing_key("k1")
    _, second = new_signing_key("k1")
    with pytest.raises(ValueError, match="two keys with one kid"):
        TokenVerifier("deals", {"keys": first["keys"] + second["keys"]})


def test_new_keys_get_kids_of_their_own_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    kids = set()
    for _ in range(2):
        identity_main(["keys"])
        kids.add(json.loads(capsys.readouterr().out)["signing_key"]["kid"])
    assert len(kids) == 2
