"""The deployment files: docker-compose.yml (parsed, no Docker engine here), .env.example,
the Procfile, scripts/run_flower.sh and the database's init script, deploy/postgres/10-roles.sh
(run for real against the local PostgreSQL under throwaway names)."""

import base64
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg2
import pytest
import yaml
from psycopg2 import errors

from project import key_rules
from tests import database_roles

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ["migrate", "web", "worker", "beat", "flower"]
LONG_RUNNING = ["web", "worker", "beat", "flower"]
# django-celery-beat's DatabaseScheduler with a heartbeat; the same in settings, compose, Procfile.
DATABASE_SCHEDULER = "tasks.scheduler:HeartbeatDatabaseScheduler"
# ${VAR}, ${VAR:-default}, ${VAR:?error} and $VAR; "$$" is compose's escaped dollar.
VARIABLE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: env[m.group(1) or m.group(2)], value).replace("$$", "$")


def command_words(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def command_text(service: dict) -> str:
    return " ".join(command_words(service))


def test_db_is_postgres_15_on_a_named_volume_with_a_healthcheck(compose, services):
    db = services["db"]
    assert db["image"].startswith("postgres:15")
    data_mounts = [v for v in db["volumes"] if v.split(":")[1] == "/var/lib/postgresql/data"]
    assert len(data_mounts) == 1
    volume = data_mounts[0].split(":")[0]
    assert volume in compose["volumes"]  # named, not a bind mount of a host folder
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_redis_is_redis_7_with_a_healthcheck(services):
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_migrate_runs_once_migrating_then_syncing_schedules(services):
    migrate = services["migrate"]
    text = command_text(migrate)
    assert re.search(r"manage\.py migrate\b.*&&.*manage\.py sync_schedules\b", text), text
    assert migrate["restart"] == "no"  # a string: unquoted, YAML would read a boolean
    assert migrate["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_web_serves_the_admin_with_gunicorn(services):
    assert command_words(services["web"])[0] == "gunicorn"
    assert "project.wsgi" in command_words(services["web"])


def test_workers_can_be_scaled(services):
    worker = services["worker"]
    assert "worker" in command_words(worker)
    assert "container_name" not in worker
    assert worker.get("deploy", {}).get("replicas", 2) != 1


def test_exactly_one_beat_runs_the_database_scheduler_and_cannot_be_scaled(services):
    running_beat = [
        name
        for name, service in services.items()
        if {"beat", "-B", "--beat"} & set(command_words(service))
    ]
    assert running_beat == ["beat"]
    beat = services["beat"]
    words = command_words(beat)
    assert words[words.index("--scheduler") + 1] == DATABASE_SCHEDULER
    assert "container_name" in beat or beat.get("deploy", {}).get("replicas") == 1


def test_beat_runs_the_settings_scheduler_a_database_scheduler_with_a_heartbeat():
    from django.conf import settings
    from django_celery_beat.schedulers import DatabaseScheduler

    from tasks.scheduler import HeartbeatDatabaseScheduler

    assert settings.CELERY_BEAT_SCHEDULER == DATABASE_SCHEDULER
    assert issubclass(HeartbeatDatabaseScheduler, DatabaseScheduler)


def healthcheck_text(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(word) for word in test)


def test_web_is_healthy_while_its_process_answers_health(services):
    """Liveness, not readiness: a database outage must not get web restarted."""
    text = healthcheck_text(services["web"])
    assert "http://127.0.0.1:8000/health/'" in text
    assert "/health/ready/" not in text
    # The probe's host must pass ALLOWED_HOSTS, or Django answers 400.
    assert "127.0.0.1" in env_example()["ALLOWED_HOSTS"].split(",")


def test_beat_is_healthy_while_its_heartbeat_is_fresh(services):
    beat = services["beat"]
    assert command_words({"command": beat["healthcheck"]["test"]})[1:] == [
        "python",
        "manage.py",
        "watchdog",
        "--beat-only",
    ]
    # The heartbeat is written every 30 s: a check every minute, and time to start.
    assert beat["healthcheck"]["start_period"]


def test_workers_keep_their_ping_healthcheck(services):
    assert "inspect ping" in healthcheck_text(services["worker"])


def test_flower_listens_on_5555_and_compose_refuses_to_start_without_credentials(services):
    flower = services["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]  # this machine only
    assert re.fullmatch(
        r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}", flower["environment"]["FLOWER_BASIC_AUTH"]
    )
    assert command_words(flower)[-1] == "scripts/run_flower.sh"
    # Inside its container on every interface, so that the port published on the host's
    # loopback reaches it; nothing else publishes it.
    assert flower["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"  # noqa: S104
    assert re.search(r"^COPY scripts\b", (ROOT / "Dockerfile").read_text(), re.MULTILINE)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_wait_for_migrate_and_healthy_db_and_redis(services, name):
    depends_on = services[name]["depends_on"]
    assert depends_on["migrate"] == {"condition": "service_completed_successfully"}
    assert depends_on["db"] == {"condition": "service_healthy"}
    assert depends_on["redis"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_run_in_production_against_the_compose_db_and_redis(services, name):
    environment = services[name]["environment"]
    assert environment["DJANGO_ENV"] == "production"
    assert "@db:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert services[name]["env_file"] == ".env"


def test_env_example_defines_every_variable_the_compose_file_uses():
    text = (ROOT / "docker-compose.yml").read_text()
    used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(text)}
    example = env_example()

    assert {"POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"} <= used
    missing = {name for name in used if not example.get(name)}
    assert not missing


# What an operator fills in after copying .env.example: production refuses the audit keys'
# and the SMTP password key's placeholders, which are published in the repository.
FILLED_IN = {
    "AUDIT_CHAIN_KEY": "k" * 48,
    "AUDIT_SIGNING_KEY": base64.b64encode(bytes(range(1, 33))).decode(),
    "SMTP_PASSWORD_KEYS": base64.urlsafe_b64encode(bytes(range(2, 34))).decode(),
}


def container_check(services, name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``manage.py check`` with what the service's container gets: .env (here ``env``) plus
    the compose environment."""
    container_env = {
        **env,
        **{
            key: interpolate(str(value), env)
            for key, value in services[name]["environment"].items()
        },
    }
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **container_env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["web", "flower"])
def test_the_app_containers_settings_load_from_env_example_with_its_keys_filled_in(services, name):
    result = container_check(services, name, {**env_example(), **FILLED_IN})

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("placeholder", sorted(FILLED_IN))
def test_an_env_example_copied_without_filling_in_the_audit_keys_is_refused(services, placeholder):
    filled_in = {key: value for key, value in FILLED_IN.items() if key != placeholder}
    result = container_check(services, "web", {**env_example(), **filled_in})

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {placeholder} " in result.stderr


def test_the_example_chain_key_is_the_one_production_refuses():
    assert env_example()["AUDIT_CHAIN_KEY"] == key_rules.EXAMPLE_CHAIN_KEY


def test_compose_refuses_to_start_without_the_audit_keys_and_keeps_checkpoints_on_disk(services):
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        for variable in ("AUDIT_CHAIN_KEY", "AUDIT_SIGNING_KEY", "SITE_URL", "SMTP_PASSWORD_KEYS"):
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", environment[variable]), name
        assert environment["AUDIT_CHECKPOINT_SINKS"].startswith("file:///"), name


def test_checkpoints_live_on_a_volume_of_their_own_that_the_database_never_mounts(
    compose, services
):
    folder = "/var/lib/cash-office/checkpoints"
    assert "checkpoints" in compose["volumes"]
    for name in APP_SERVICES:
        assert f"checkpoints:{folder}" in services[name]["volumes"], name
        assert services[name]["environment"]["AUDIT_CHECKPOINT_SINKS"] == f"file://{folder}"
    assert not any(v.startswith("checkpoints:") for v in services["db"].get("volumes", []))


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_procfile_runs_web_worker_one_beat_and_flower():
    entries = procfile()
    assert set(entries) == {"web", "worker", "beat", "flower"}
    assert "gunicorn" in entries["web"]
    assert " worker " in entries["worker"]
    runs_beat = [
        name for name, command in entries.items() if re.search(r" (beat|-B|--beat)\b", command)
    ]
    assert runs_beat == ["beat"]
    assert f"--scheduler {DATABASE_SCHEDULER}" in entries["beat"]
    assert "scripts/run_flower.sh" in entries["flower"]


def run_flower(
    tmp_path: Path, auth: str | None, **environment: str
) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the script with a stand-in ``celery`` first on PATH that records its arguments,
    then the FLOWER_BASIC_AUTH it was given, on the last line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ran = tmp_path / "celery-arguments"
    celery = bin_dir / "celery"
    celery.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" "env:$FLOWER_BASIC_AUTH" > "{ran}"\n')
    celery.chmod(celery.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth
    env.update(environment)
    result = subprocess.run(  # noqa: S603
        ["/bin/sh", "scripts/run_flower.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result, ran


@pytest.mark.parametrize("auth", [None, "", "nocolon", ":password", "user:"])
def test_flower_refuses_to_start_without_user_and_password(tmp_path, auth):
    result, ran = run_flower(tmp_path, auth)

    assert result.returncode == 2
    # One line that says what to set, not a shell error.
    assert "FLOWER_BASIC_AUTH=user:password" in result.stderr
    assert not ran.exists()


def test_flower_gets_the_credentials_from_its_environment_never_its_command_line(tmp_path):
    result, ran = run_flower(tmp_path, "ops:s3cret")

    assert result.returncode == 0, result.stderr
    *arguments, environment = ran.read_text().splitlines()
    assert arguments[:3] == ["-A", "project", "flower"]
    assert "--port=5555" in arguments
    # `ps` shows every user a command line: no password there. Flower reads the variable.
    assert not [word for word in arguments if "basic-auth" in word or "s3cret" in word]
    assert environment == "env:ops:s3cret"


def test_flower_listens_on_this_machine_only_unless_told_otherwise(tmp_path):
    (tmp_path / "default").mkdir()
    _, ran = run_flower(tmp_path / "default", "ops:s3cret")
    assert "--address=127.0.0.1" in ran.read_text().splitlines()

    (tmp_path / "compose").mkdir()
    _, ran = run_flower(tmp_path / "compose", "ops:s3cret", FLOWER_ADDRESS="0.0.0.0")  # noqa: S104
    assert "--address=0.0.0.0" in ran.read_text().splitlines()


def test_the_image_copies_every_first_party_app():
    """An app missing from the image would pass every test here and fail at start-up."""
    from django.conf import settings

    dockerfile = (ROOT / "Dockerfile").read_text()
    first_party = [app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()]
    assert first_party == ["backoffice", "auditing", "mailing", "payments", "reporting", "tasks"]
    for app in [*first_party, "project"]:
        assert re.search(rf"^COPY {app} \./{app}$", dockerfile, re.MULTILINE), app


def test_the_image_collects_its_static_files_without_secrets(tmp_path):
    """The build's collectstatic runs with the environment the Dockerfile gives it and no
    other (no key is set at build time), with the storage production serves from."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"&& ((?:\w+=\S+ )+)python manage\.py collectstatic", dockerfile)
    assert match, "the Dockerfile collects static files in its RUN step"
    build_env = dict(pair.split("=", 1) for pair in match.group(1).split())
    result = subprocess.run(  # noqa: S603 - our own manage.py, fixed arguments
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--dry-run"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **build_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "static files copied" in result.stdout


# --- Database roles (README.md, "Database roles") ----------------------------------------

INIT_SCRIPT = ROOT / "deploy" / "postgres" / "10-roles.sh"
INIT_MOUNT = "./deploy/postgres/10-roles.sh:/docker-entrypoint-initdb.d/10-roles.sh:ro"
OWNER, APP = "cash_office_owner", "cash_office_app"


def database_url(services, name: str) -> urllib.parse.SplitResult:
    """The service's DATABASE_URL, with .env.example's values filled in."""
    url = interpolate(services[name]["environment"]["DATABASE_URL"], env_example())
    return urllib.parse.urlsplit(url)


def test_the_app_services_connect_as_the_app_role_and_migrate_as_the_owner(services):
    db = services["db"]["environment"]
    superuser = db["POSTGRES_USER"]
    assert superuser == "postgres"
    assert (db["CASH_OFFICE_OWNER"], db["CASH_OFFICE_APP_ROLE"]) == (OWNER, APP)
    for name in LONG_RUNNING:
        assert database_url(services, name).username == APP, name
    assert database_url(services, "migrate").username == OWNER
    for name in APP_SERVICES:
        url = database_url(services, name)
        assert url.username != superuser, name
        assert url.path == f"/{db['CASH_OFFICE_DB']}", name
    # Each role's password is its own variable, required by compose.
    for name, variable in (
        ("web", "CASH_OFFICE_APP_PASSWORD"),
        ("migrate", "CASH_OFFICE_OWNER_PASSWORD"),
    ):
        assert re.search(
            rf"^postgres://\w+:\$\{{{variable}:\?[^}}]+\}}@db:5432/",
            services[name]["environment"]["DATABASE_URL"],
        ), name
    for variable in ("POSTGRES_PASSWORD", "CASH_OFFICE_OWNER_PASSWORD", "CASH_OFFICE_APP_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", db[variable]), variable


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_the_superusers_and_the_owners_passwords_never_reach_an_app_container(services, name):
    """env_file gives every container all of .env; the service's environment blanks them."""
    example = {
        **env_example(),
        "POSTGRES_PASSWORD": "superuser-secret",
        "CASH_OFFICE_OWNER_PASSWORD": "owner-secret",
        "CASH_OFFICE_APP_PASSWORD": "app-secret",
    }
    container = {
        **example,
        **{
            key: interpolate(str(value), example)
            for key, value in services[name]["environment"].items()
        },
    }
    assert container["POSTGRES_PASSWORD"] == ""
    assert container["CASH_OFFICE_OWNER_PASSWORD"] == ""
    for secret in (example["POSTGRES_PASSWORD"], example["CASH_OFFICE_OWNER_PASSWORD"]):
        assert not [key for key, value in container.items() if secret in value], secret
    assert ":app-secret@db:5432/" in container["DATABASE_URL"]


def test_migrate_grants_the_app_role_after_every_migrate_with_no_password_on_its_command_line(
    services,
):
    text = command_text(services["migrate"])
    assert re.search(
        rf"manage\.py migrate\b.*&& python manage\.py setup_database_roles --app-role {APP} "
        r"&&.*manage\.py sync_schedules\b",
        text,
    ), text
    assert "PASSWORD" not in text.upper() and "$" not in text


def test_the_init_script_is_mounted_executable_and_creates_roles_that_are_not_superusers(
    services,
):
    db = services["db"]
    assert INIT_MOUNT in db["volumes"]
    assert os.access(INIT_SCRIPT, os.X_OK)  # the image runs it, rather than sourcing it
    text = INIT_SCRIPT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert text.count("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS") == 2
    # The passwords come from the environment inside psql, never from its command line.
    assert "\\getenv owner_password CASH_OFFICE_OWNER_PASSWORD" in text
    assert "PASSWORD" not in text.split("<<'SQL'")[0].split("\npsql ", 1)[1]
    # No POSTGRES_DB: the image would create the database before the script, owned by the
    # superuser.
    assert "POSTGRES_DB" not in db["environment"]
    assert "-h 127.0.0.1" in healthcheck_text(db)


def run_init_script(names: database_roles.Names, **passwords: str) -> subprocess.CompletedProcess:
    """The script as the image runs it: as the superuser, with the db service's variables."""
    server = database_roles.server()
    return subprocess.run(  # noqa: S603 - our own script
        ["/bin/sh", str(INIT_SCRIPT)],
        env={
            "PATH": os.environ["PATH"],
            "PGHOST": server["host"],
            "PGPORT": str(server["port"]),
            "POSTGRES_USER": server["user"],
            "CASH_OFFICE_DB": names.database,
            "CASH_OFFICE_OWNER": names.owner,
            "CASH_OFFICE_APP_ROLE": names.app,
            **passwords,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_init_scripts_roles_behave_as_promised():
    names = database_roles.unique_names("compose")
    with database_roles.dropped_afterwards(names):
        first = run_init_script(
            names, CASH_OFFICE_OWNER_PASSWORD="owner-pw", CASH_OFFICE_APP_PASSWORD="app-pw"
        )
        assert first.returncode == 0, first.stderr

        roles = database_roles.query(
            "postgres",
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, "
            "rolbypassrls, left(rolpassword, 14) FROM pg_authid WHERE rolname IN (%s, %s) "
            "ORDER BY rolname = %s",
            [names.owner, names.app, names.app],
        )
        assert roles == [
            (names.owner, True, False, False, False, False, False, "SCRAM-SHA-256$"),
            (names.app, True, False, False, False, False, False, "SCRAM-SHA-256$"),
        ]
        assert database_roles.query(
            "postgres",
            "SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') "
            "FROM pg_database WHERE datname = %s",
            [names.database],
        ) == [(names.owner, False)]

        # The owner creates what migrate creates; the application's role creates nothing.
        database_roles.query(
            names.database, "CREATE TABLE made_by_owner (id int)", user=names.owner
        )
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for schema"):
            database_roles.query(names.database, "CREATE TABLE sneaky (id int)", user=names.app)
        with pytest.raises(errors.InsufficientPrivilege, match="must be owner of table"):
            database_roles.query(
                names.database, "ALTER TABLE made_by_owner DISABLE TRIGGER ALL", user=names.app
            )
        # A table the superuser made before (a volume older than the roles) is handed to the
        # owner when the script runs again; running again changes nothing else.
        database_roles.query(
            names.database,
            "CREATE TABLE made_by_superuser (id bigint GENERATED BY DEFAULT AS IDENTITY)",
        )
        again = run_init_script(names)
        assert again.returncode == 0, again.stderr
        assert database_roles.query(
            names.database,
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace",
        ) == [(names.owner,)]
        assert not database_roles.query(
            "postgres",
            "SELECT 1 FROM pg_authid WHERE rolname = %s AND rolpassword IS NULL",
            [names.owner],
        )  # kept: no password given this time


@pytest.mark.parametrize(
    ("owner", "message"),
    [("Owner", "is not a plain name"), ("x; drop role postgres", "is not a plain name")],
)
def test_the_init_script_refuses_a_name_that_is_not_plain(owner, message):
    names = database_roles.unique_names("compose")
    result = run_init_script(database_roles.Names(names.database, owner, names.app))

    assert result.returncode == 2
    assert message in result.stderr
    assert not database_roles.query(
        "postgres", "SELECT 1 FROM pg_roles WHERE rolname = %s", [names.app]
    )


def test_the_init_script_refuses_the_app_role_as_owner():
    names = database_roles.unique_names("compose")
    result = run_init_script(database_roles.Names(names.database, names.app, names.app))

    assert result.returncode == 2
    assert "must be three roles" in result.stderr


def test_a_role_the_init_script_made_can_log_in_only_to_its_database():
    names = database_roles.unique_names("compose")
    with database_roles.dropped_afterwards(names):
        assert run_init_script(names).returncode == 0
        other = database_roles.unique_names("compose")
        with database_roles.dropped_afterwards(other):
            assert run_init_script(other).returncode == 0
            with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                database_roles.connect(other.database, user=names.app)


# --- The README's "Database roles", run as written (under throwaway names) --------------

README = ROOT / "README.md"


def readme_block(after: str, language: str) -> str:
    """The first ```language block after the line containing ``after``."""
    text = README.read_text()
    start = text.index(f"```{language}\n", text.index(after)) + len(f"```{language}\n")
    return text[start : text.index("```", start)]


def renamed(text: str, names: database_roles.Names) -> str:
    return (
        text.replace("cash_office_owner", names.owner)
        .replace("cash_office_app", names.app)
        .replace("cash_office", names.database)
    )


def manage(*arguments: str, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def url(names: database_roles.Names, user: str) -> str:
    server = database_roles.server()
    return f"postgres://{user}@{server['host']}:{server['port']}/{names.database}"


def assert_the_app_role_is_powerless(names: database_roles.Names) -> None:
    assert database_roles.query(
        names.database,
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace UNION "
        "SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc "
        "WHERE pronamespace = 'public'::regnamespace",
    ) == [(names.owner,)]
    for statement, message in (
        ("ALTER TABLE auditing_auditentry DISABLE TRIGGER ALL", "must be owner"),
        ("DELETE FROM auditing_auditentry", "permission denied"),
        ("DELETE FROM payments_commission", "permission denied"),
    ):
        with pytest.raises(errors.InsufficientPrivilege, match=message):
            database_roles.query(names.database, statement, user=names.app)
    database_roles.query(names.database, "SELECT count(*) FROM auditing_auditentry", user=names.app)


def test_the_readmes_commands_for_a_managed_postgresql_whose_administrator_is_no_superuser():
    names = database_roles.unique_names("manual")
    admin = names.database.replace("_db_", "_admin_")
    statements = "\n".join(
        line
        for line in renamed(readme_block("**By hand", "sql"), names).splitlines()
        if not line.startswith("\\password")  # interactive; trust authentication here
    )
    commands = [
        line.split("python ", 1)[1].split()
        for line in readme_block("Then, with the owner's URL", "sh").splitlines()
        if line.startswith("python manage.py")
    ]
    assert [command[1] for command in commands] == [
        "migrate",
        "setup_database_roles",
        "sync_schedules",
    ]
    database_roles.query("postgres", f'CREATE ROLE "{admin}" LOGIN CREATEROLE CREATEDB')
    try:
        with database_roles.dropped_afterwards(names):
            server = database_roles.server()
            psql = shutil.which("psql") or "psql"
            created = subprocess.run(  # noqa: S603 - psql, the README's SQL
                [
                    psql,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "--no-psqlrc",
                    "-h",
                    server["host"],
                    "-p",
                    str(server["port"]),
                    "-U",
                    admin,
                    "-d",
                    "postgres",
                ],
                input=statements,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert created.returncode == 0, created.stderr
            for command in commands:
                run = manage(
                    *renamed(" ".join(command[1:]), names).split(),
                    database_url=url(names, names.owner),
                )
                assert run.returncode == 0, run.stdout + run.stderr

            assert_the_app_role_is_powerless(names)
            check = manage("check", "--deploy", database_url=url(names, names.app))
            assert "auditing.W003" not in check.stdout + check.stderr
    finally:
        database_roles.query("postgres", f'DROP OWNED BY "{admin}"')
        database_roles.query("postgres", f'DROP ROLE "{admin}"')


def test_upgrading_a_volume_whose_tables_the_superuser_owns_hands_them_to_the_owner():
    """An older compose volume: the application was the superuser and migrated as it. The
    README runs the init script once as that superuser, then compose's migrate as the owner."""
    assert (
        "docker compose exec -e POSTGRES_USER=cash_office db "
        "/docker-entrypoint-initdb.d/10-roles.sh" in README.read_text()
    )
    names = database_roles.unique_names("upgrade")
    superuser = database_roles.server()["user"]
    with database_roles.dropped_afterwards(names):
        database_roles.query("postgres", f'CREATE DATABASE "{names.database}"')
        old = manage("migrate", "--no-input", "-v0", database_url=url(names, superuser))
        assert old.returncode == 0, old.stderr

        upgraded = run_init_script(names)
        assert upgraded.returncode == 0, upgraded.stderr
        for arguments in (
            ("migrate", "--no-input"),
            ("setup_database_roles", "--app-role", names.app),
        ):
            run = manage(*arguments, database_url=url(names, names.owner))
            assert run.returncode == 0, run.stdout + run.stderr

        assert_the_app_role_is_powerless(names)
        assert database_roles.query(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            [names.database],
        ) == [(names.owner,)]
