"""Settings come from the environment; production refuses to start without its secrets, and
refuses audit keys anyone could know (project/key_rules.py)."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project import key_rules

PROJECT_DIR = Path(__file__).resolve().parents[1]
CHECK = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "CRITICAL"]
# Every variable these tests set, removed from the inherited environment first.
OWN_VARIABLES = {
    "DJANGO_ENV",
    "SECRET_KEY",
    "SITE_URL",
    "AUDIT_CHAIN_KEY",
    "AUDIT_CHAIN_KEY_ID",
    "AUDIT_CHAIN_RETIRED_KEYS",
    "AUDIT_SIGNING_KEY",
    "AUDIT_PUBLIC_KEY",
    "AUDIT_RETIRED_PUBLIC_KEYS",
    "AUDIT_CHECKPOINT_SINKS",
    "AUDITOR_EMAILS",
    "AUDIT_CLOCK_SKEW_SECONDS",
    "SMTP_PASSWORD_KEYS",
}
# A production Ed25519 seed for the tests, and its public key.
SIGNING_KEY = base64.b64encode(bytes(range(1, 33))).decode()
PUBLIC_KEY = key_rules.public_key_derive(SIGNING_KEY)
OTHER_PUBLIC_KEY = key_rules.public_key_derive(base64.b64encode(bytes(range(2, 34))).decode())
PRODUCTION = {
    "DJANGO_ENV": "production",
    "ALLOWED_HOSTS": "example.com",
    "SECRET_KEY": "s" * 50,
    "AUDIT_CHAIN_KEY": "k" * 50,
    "AUDIT_SIGNING_KEY": SIGNING_KEY,
    "AUDIT_CHECKPOINT_SINKS": "file:///var/lib/cash-office/checkpoints",
    "SITE_URL": "https://cash.example.com",
    "SMTP_PASSWORD_KEYS": "Zm9yLXRoZS10ZXN0cy1vbmx5LW5vdC1hLXJlYWwta2U=",
}


def _run(env_overrides: dict[str, str], *, command: list[str] = CHECK):
    env = {key: value for key, value in os.environ.items() if key not in OWN_VARIABLES}
    env.update(env_overrides)
    return subprocess.run(  # noqa: S603 - fixed argv
        command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _production(**overrides: str | None) -> subprocess.CompletedProcess:
    """``check --deploy`` in production with good settings, changed by ``overrides``
    (``None`` leaves a variable out)."""
    env = {**PRODUCTION, **overrides}
    return _run({key: value for key, value in env.items() if value is not None})


def _settings_in_production(**overrides: str) -> dict:
    """The audit settings production derives, printed as JSON by a fresh interpreter."""
    return _settings_in({**PRODUCTION, **overrides})


def _settings_in(env: dict[str, str]) -> dict:
    script = (
        "import json; from django.conf import settings as s; print(json.dumps({name: "
        "getattr(s, name) for name in ('AUDIT_CHAIN_KEY_ID', 'AUDIT_CHAIN_KEYS', "
        "'AUDIT_PUBLIC_KEY', 'AUDIT_TRUSTED_PUBLIC_KEYS', 'AUDIT_CHECKPOINT_SINKS', "
        "'AUDITOR_EMAILS', 'AUDIT_CLOCK_SKEW_SECONDS', 'SITE_URL')}))"
    )
    result = _run(
        env,
        command=[sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    "missing",
    ["SECRET_KEY", "AUDIT_CHAIN_KEY", "AUDIT_SIGNING_KEY", "SITE_URL", "SMTP_PASSWORD_KEYS"],
)
def test_production_without_a_secret_stops_with_a_clear_message(missing):
    result = _production(**{missing: None})

    _refused(result, f"Set the {missing} environment variable")


def test_production_starts_when_every_secret_is_set():
    result = _production()

    assert result.returncode == 0, result.stderr


def test_check_deploy_away_from_the_database_warns_and_does_not_crash():
    result = _production(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")

    assert result.returncode == 0, result.stderr
    assert "auditing.W002" in result.stderr
    assert "Could not check that the audit trail is append-only" in result.stderr


def test_an_unknown_environment_name_is_refused():
    result = _run({"DJANGO_ENV": "staging"})
    assert result.returncode != 0
    assert "DJANGO_ENV must be dev, test or production" in result.stderr


def test_production_refuses_a_database_other_than_postgresql():
    result = _production(DATABASE_URL="sqlite:////tmp/not-for-production.sqlite3")

    _refused(result, "needs a PostgreSQL DATABASE_URL")


def test_the_demo_seed_refuses_production(settings):
    from django.core.management import CommandError, call_command

    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError, match="refuses DJANGO_ENV=production"):
        call_command("seed_demo")


# --- The chain key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "AUDIT_CHAIN_KEY is empty"),
        ("x", "AUDIT_CHAIN_KEY is too short: 1 byte in UTF-8, where production needs at least 32"),
        ("k" * 31, "AUDIT_CHAIN_KEY is too short: 31 bytes in UTF-8"),
        (key_rules.DEV_CHAIN_KEY, "AUDIT_CHAIN_KEY is a key published in the repository"),
        (key_rules.EXAMPLE_CHAIN_KEY, "AUDIT_CHAIN_KEY is a key published in the repository"),
    ],
    ids=["empty", "x", "31-bytes", "dev-default", "env-example"],
)
def test_production_refuses_a_weak_or_published_chain_key(key, message):
    _refused(_production(AUDIT_CHAIN_KEY=key), message)


@pytest.mark.parametrize("key", ["k" * 32, "é" * 16], ids=["32-ascii", "16-two-byte-letters"])
def test_production_accepts_a_chain_key_of_32_bytes(key):
    result = _production(AUDIT_CHAIN_KEY=key)

    assert result.returncode == 0, result.stderr


def test_dev_and_tests_keep_the_development_chain_key(settings):
    assert settings.AUDIT_CHAIN_KEY == key_rules.DEV_CHAIN_KEY
    assert settings.AUDIT_CHAIN_KEY_ID == "1"
    assert settings.AUDIT_CHAIN_KEYS == {"1": key_rules.DEV_CHAIN_KEY}


@pytest.mark.parametrize("key_id", ["", "a b", "x" * 33, "1/2", "clé"])
def test_a_bad_key_id_is_refused(key_id):
    with pytest.raises(ImproperlyConfigured, match="AUDIT_CHAIN_KEY_ID must be 1 to 32 letters"):
        key_rules.key_id_check(key_id)


def test_a_bad_key_id_is_refused_at_start_up():
    _refused(_production(AUDIT_CHAIN_KEY_ID="key 2"), "AUDIT_CHAIN_KEY_ID must be 1 to 32")


# --- Retired chain keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("retired", "message"),
    [
        ("{1: 'x'}", "AUDIT_CHAIN_RETIRED_KEYS is not valid JSON"),
        ('["old-key"]', "AUDIT_CHAIN_RETIRED_KEYS must be a JSON object"),
        ('{"1": 12345}', "the key of id '1' must be a string, not 12345"),
        ('{"old key": "' + "o" * 40 + '"}', "Each key id in AUDIT_CHAIN_RETIRED_KEYS must be"),
        ('{"2": "' + "o" * 40 + '"}', "holds id '2', which is AUDIT_CHAIN_KEY_ID"),
        ('{"1": "short"}', "AUDIT_CHAIN_RETIRED_KEYS['1'] is too short: 5 bytes"),
        ('{"1": "dev-only-audit-chain-key"}', "['1'] is a key published in the repository"),
    ],
    ids=["bad-json", "not-an-object", "not-a-string", "bad-id", "current-id", "weak", "dev"],
)
def test_production_refuses_bad_retired_keys(retired, message):
    result = _production(AUDIT_CHAIN_KEY_ID="2", AUDIT_CHAIN_RETIRED_KEYS=retired)

    _refused(result, message)


def test_a_key_pasted_as_a_retired_id_is_not_repeated_in_the_error():
    secret = "s3cret " * 6
    with pytest.raises(ImproperlyConfigured) as refused:
        key_rules.retired_chain_keys_parse(
            json.dumps({secret: "x"}), current_id="1", production=False
        )

    assert secret not in str(refused.value)


def test_outside_production_retired_keys_need_a_valid_shape_but_no_strength():
    keys = key_rules.retired_chain_keys_parse('{"0": "old"}', current_id="1", production=False)

    assert keys == {"0": "old"}
    with pytest.raises(ImproperlyConfigured, match="not valid JSON"):
        key_rules.retired_chain_keys_parse("{", current_id="1", production=False)


def test_production_verifies_with_every_key_by_its_id():
    old = "o" * 40
    derived = _settings_in_production(
        AUDIT_CHAIN_KEY_ID="2024-06", AUDIT_CHAIN_RETIRED_KEYS=json.dumps({"1": old})
    )

    assert derived["AUDIT_CHAIN_KEY_ID"] == "2024-06"
    assert derived["AUDIT_CHAIN_KEYS"] == {"1": old, "2024-06": "k" * 50}


# --- The checkpoint signing key ---------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"AUDIT_SIGNING_KEY": ""}, "AUDIT_SIGNING_KEY is empty"),
        (
            {"AUDIT_SIGNING_KEY": key_rules.DEV_SIGNING_KEY},
            "AUDIT_SIGNING_KEY is the development key published in the repository",
        ),
        (
            {"AUDIT_SIGNING_KEY": "not base64!"},
            "AUDIT_SIGNING_KEY must be the base64 of exactly 32 bytes.",
        ),
        (
            {"AUDIT_SIGNING_KEY": base64.b64encode(b"k" * 31).decode()},
            "AUDIT_SIGNING_KEY must be the base64 of exactly 32 bytes, not of 31.",
        ),
        (
            {"AUDIT_PUBLIC_KEY": OTHER_PUBLIC_KEY},
            "AUDIT_PUBLIC_KEY is not the public key of AUDIT_SIGNING_KEY",
        ),
        (
            {"AUDIT_PUBLIC_KEY": "AAAA"},
            "AUDIT_PUBLIC_KEY must be the base64 of exactly 32 bytes, not of 3.",
        ),
        (
            {"AUDIT_RETIRED_PUBLIC_KEYS": f"{OTHER_PUBLIC_KEY},AAAA"},
            "Each key in AUDIT_RETIRED_PUBLIC_KEYS must be the base64 of exactly 32 bytes",
        ),
    ],
    ids=[
        "empty",
        "dev-seed",
        "bad-base64",
        "31-bytes",
        "other-public-key",
        "short-public-key",
        "short-retired-public-key",
    ],
)
def test_production_refuses_a_bad_signing_key(overrides, message):
    _refused(_production(**overrides), message)


def test_the_public_key_is_derived_and_retired_ones_stay_trusted():
    derived = _settings_in_production(AUDIT_RETIRED_PUBLIC_KEYS=OTHER_PUBLIC_KEY)

    assert derived["AUDIT_PUBLIC_KEY"] == PUBLIC_KEY
    assert derived["AUDIT_TRUSTED_PUBLIC_KEYS"] == [PUBLIC_KEY, OTHER_PUBLIC_KEY]


def test_a_public_key_set_explicitly_must_match_and_then_is_accepted():
    result = _production(AUDIT_PUBLIC_KEY=PUBLIC_KEY)

    assert result.returncode == 0, result.stderr


def test_dev_and_tests_sign_with_the_published_development_key(settings):
    assert settings.AUDIT_SIGNING_KEY == key_rules.DEV_SIGNING_KEY
    assert settings.AUDIT_PUBLIC_KEY == key_rules.DEV_PUBLIC_KEY
    assert settings.AUDIT_TRUSTED_PUBLIC_KEYS == [key_rules.DEV_PUBLIC_KEY]
    assert key_rules.public_key_derive(key_rules.DEV_SIGNING_KEY) == key_rules.DEV_PUBLIC_KEY


# --- Checkpoint sinks, auditors, clock skew and the site's address ----------------------


def test_production_refuses_to_keep_checkpoints_only_in_the_database():
    for sinks in (None, ""):
        result = _production(AUDIT_CHECKPOINT_SINKS=sinks)

        _refused(result, "Set AUDIT_CHECKPOINT_SINKS in production: signed checkpoints must")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("var/checkpoints", "is neither file:///absolute/dir nor s3://bucket/prefix"),
        ("https://example.com/checkpoints", "is neither file:///absolute/dir nor s3://"),
        ("file://var/checkpoints", "must name an absolute directory"),
        ("file:checkpoints", "must name an absolute directory"),
        ("s3:///prefix", "names no bucket"),
    ],
)
def test_a_checkpoint_sink_must_be_an_absolute_directory_or_a_bucket(url, message):
    with pytest.raises(ImproperlyConfigured, match="AUDIT_CHECKPOINT_SINKS: ") as refused:
        key_rules.checkpoint_sinks_check([url], production=False)

    assert message in str(refused.value)


def test_production_reads_its_sinks_auditors_skew_and_site_address():
    derived = _settings_in_production(
        AUDIT_CHECKPOINT_SINKS="file:///srv/checkpoints,s3://audit-bucket/cash-office",
        AUDITOR_EMAILS="a@example.com,b@example.com",
        AUDIT_CLOCK_SKEW_SECONDS="60",
        SITE_URL="https://cash.example.com/",
    )

    assert derived["AUDIT_CHECKPOINT_SINKS"] == [
        "file:///srv/checkpoints",
        "s3://audit-bucket/cash-office",
    ]
    assert derived["AUDITOR_EMAILS"] == ["a@example.com", "b@example.com"]
    assert derived["AUDIT_CLOCK_SKEW_SECONDS"] == 60
    assert derived["SITE_URL"] == "https://cash.example.com"


def test_a_bad_sink_stops_start_up():
    _refused(_production(AUDIT_CHECKPOINT_SINKS="/srv/checkpoints"), "AUDIT_CHECKPOINT_SINKS: ")


def test_dev_writes_checkpoints_under_var_and_links_to_this_machine():
    derived = _settings_in({"DJANGO_ENV": "dev"})

    assert derived["AUDIT_CHECKPOINT_SINKS"] == [f"file://{PROJECT_DIR / 'var' / 'checkpoints'}"]
    assert derived["AUDITOR_EMAILS"] == []
    assert derived["AUDIT_CLOCK_SKEW_SECONDS"] == 300
    assert derived["SITE_URL"] == "http://127.0.0.1:8000"


@pytest.mark.parametrize("url", ["cash.example.com", "ftp://cash.example.com", "https://"])
def test_the_site_url_must_be_an_http_address(url):
    with pytest.raises(ImproperlyConfigured, match="SITE_URL must be the site's address"):
        key_rules.site_url_clean(url)


def test_a_negative_clock_skew_is_refused():
    _refused(_production(AUDIT_CLOCK_SKEW_SECONDS="-1"), "AUDIT_CLOCK_SKEW_SECONDS must be zero")
