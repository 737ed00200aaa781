"""Settings come from the environment; production refuses to start without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
CHECK = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "CRITICAL"]


def _run(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "AUDIT_CHAIN_KEY", "DJANGO_ENV"}
    }
    env.update(env_overrides)
    return subprocess.run(  # noqa: S603 - fixed argv
        CHECK, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "AUDIT_CHAIN_KEY"])
def test_production_without_a_secret_stops_with_a_clear_message(missing):
    present = {"SECRET_KEY": "s" * 50, "AUDIT_CHAIN_KEY": "k" * 50}
    del present[missing]
    result = _run({"DJANGO_ENV": "production", "ALLOWED_HOSTS": "example.com", **present})
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


def test_production_starts_when_both_secrets_are_set():
    result = _run(
        {
            "DJANGO_ENV": "production",
            "ALLOWED_HOSTS": "example.com",
            "SECRET_KEY": "s" * 50,
            "AUDIT_CHAIN_KEY": "k" * 50,
        }
    )
    assert result.returncode == 0, result.stderr


def test_an_unknown_environment_name_is_refused():
    result = _run({"DJANGO_ENV": "staging"})
    assert result.returncode != 0
    assert "DJANGO_ENV must be dev, test or production" in result.stderr


def test_production_refuses_a_database_other_than_postgresql():
    result = _run(
        {
            "DJANGO_ENV": "production",
            "ALLOWED_HOSTS": "example.com",
            "SECRET_KEY": "s" * 50,
            "AUDIT_CHAIN_KEY": "k" * 50,
            "DATABASE_URL": "sqlite:////tmp/not-for-production.sqlite3",
        }
    )
    assert result.returncode != 0
    assert "needs a PostgreSQL DATABASE_URL" in result.stderr


def test_the_demo_seed_refuses_production(settings):
    from django.core.management import CommandError, call_command

    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError, match="refuses DJANGO_ENV=production"):
        call_command("seed_demo")
