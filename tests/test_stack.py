"""`make stack` without Docker: scripts/supervisord.conf runs the Procfile's four processes
and restarts the one that exits; Flower takes its credentials from the environment. The
database is set up as the owner (STACK_OWNER_DATABASE_URL) and the processes run as the
application's role (STACK_DATABASE_URL), with the names read from the URLs."""

import base64
import configparser
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from psycopg2 import errors

from tests import database_roles
from tests.integration.parts import client_app, database_url, private_redis, wait_until
from tests.smtp_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "scripts" / "supervisord.conf"
HERE = "%(here)s/.."
BIN = Path(sys.executable).parent  # this venv's supervisord, celery and Flower


def supervisor_config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(CONF.read_text())
    return parser


def programs() -> dict[str, configparser.SectionProxy]:
    config = supervisor_config()
    return {
        section.removeprefix("program:"): config[section]
        for section in config.sections()
        if section.startswith("program:")
    }


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def split_environment(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading NAME=value words (the Procfile's way to set a variable) and the argv."""
    environment = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        environment[name] = value
    return environment, words


def program_environment(program: configparser.SectionProxy) -> dict[str, str]:
    return {
        name: value.strip('"')
        for name, value in re.findall(r'(\w+)=("[^"]*"|[^,]*)', program.get("environment", ""))
    }


def environment_references(command: str) -> str:
    """``${NAME:-default}`` (the Procfile's shell) and ``%(ENV_NAME)s`` (supervisord) both
    as ``<NAME>``: the same variable read from the environment."""
    command = re.sub(r"\$\{(\w+):-[^}]*\}", r"<\1>", command)
    return re.sub(r"%\(ENV_(\w+)\)s", r"<\1>", command)


def test_the_stack_runs_the_procfiles_four_processes_with_the_same_commands():
    entries = procfile()
    assert set(programs()) == set(entries) == {"web", "worker", "beat", "flower"}
    for name, program in programs().items():
        expected_env, expected = split_environment(
            shlex.split(environment_references(entries[name]))
        )
        argv = shlex.split(environment_references(program["command"].replace(f"{HERE}/", "")))
        assert argv == expected, name
        assert program["directory"] == HERE, name
        environment = program_environment(program)
        for variable, value in expected_env.items():
            if variable == "PATH":  # the venv first, then the machine's
                assert environment["PATH"] == f"{HERE}/.venv/bin:%(ENV_PATH)s", name
            else:
                assert environment[variable] == value, name


@pytest.mark.parametrize("name", ["web", "worker", "beat", "flower"])
def test_each_process_is_restarted_when_it_exits_and_stopped_with_its_children(name):
    program = programs()[name]
    assert program["autorestart"] == "true"
    assert int(program["startretries"]) >= 3
    assert program["stopasgroup"] == program["killasgroup"] == "true"
    # Its output on the terminal that ran `make stack`, as honcho did.
    assert program["stdout_logfile"] == "/dev/stdout"
    assert program["stdout_logfile_maxbytes"] == "0"
    assert program["redirect_stderr"] == "true"


def test_supervisord_runs_in_the_foreground_and_beat_exactly_once():
    config = supervisor_config()
    assert config["supervisord"]["nodaemon"] == "true"
    assert programs()["beat"].get("numprocs", "1") == "1"
    commands = " ".join(program["command"] for program in programs().values())
    assert "basic-auth" not in commands and "FLOWER_BASIC_AUTH" not in commands


def worker_only_config(folder: Path, name: str = "worker") -> Path:
    """The real [program:<name>], run by a supervisord of the test's own: its files in
    ``folder``, the program's output in folder/<name>.log."""
    worker = dict(programs()[name])
    worker = {key: value.replace(HERE, str(ROOT)) for key, value in worker.items()}
    worker["stdout_logfile"] = str(folder / f"{name}.log")
    lines = [
        "[supervisord]",
        "nodaemon=true",
        f"directory={ROOT}",
        f"logfile={folder / 'supervisord.log'}",
        f"pidfile={folder / 'supervisord.pid'}",
        f"childlogdir={folder}",
        "[unix_http_server]",
        f"file={folder / 'supervisord.sock'}",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory=supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{folder / 'supervisord.sock'}",
        f"[program:{name}]",
        *(f"{key}={value}" for key, value in worker.items()),
    ]
    path = folder / "supervisord.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def worker_pid(config: Path) -> int:
    run = subprocess.run(  # noqa: S603 - fixed argv
        [str(BIN / "supervisorctl"), "-c", str(config), "pid", "worker"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return int(run.stdout.strip()) if run.stdout.strip().isdigit() else 0


def test_supervisord_brings_a_killed_worker_back(tmp_path):
    config = worker_only_config(tmp_path)
    killed = []
    with private_redis() as broker:
        supervisord = subprocess.Popen(  # noqa: S603 - fixed argv
            [str(BIN / "supervisord"), "-c", str(config)],
            env={
                **os.environ,
                "DJANGO_ENV": "test",
                "DATABASE_URL": database_url(name="stack-worker"),
                "REDIS_URL": broker.url,
                "WATCHDOG_INTERVAL_SECONDS": "0",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = client_app(broker.url)
        try:
            wait_until(lambda: client.control.ping(timeout=1), what="the worker to answer")
            first = wait_until(lambda: worker_pid(config), what="the worker's pid")

            os.kill(first, signal.SIGKILL)
            killed.append(first)
            second = wait_until(
                lambda: worker_pid(config) not in (0, first) and worker_pid(config),
                what="a new worker",
            )
            wait_until(lambda: client.control.ping(timeout=1), what="the new worker to answer")
            still_supervising = supervisord.poll() is None
        finally:
            client.close()
            supervisord.terminate()  # stops the worker too (a warm shutdown, it is idle)
            try:
                supervisord.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(supervisord.pid, signal.SIGKILL)
                supervisord.wait(timeout=10)
            for pid in killed:  # the killed worker's pool processes, in its process group
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)

    assert still_supervising
    assert second != first
    log = (tmp_path / "supervisord.log").read_text()
    assert "exited: worker (terminated by SIGKILL" in log, log


def test_flower_asks_for_the_credentials_it_reads_from_its_environment():
    port = free_port()
    with private_redis() as broker:
        flower = subprocess.Popen(  # noqa: S603 - fixed argv
            ["/bin/sh", "scripts/run_flower.sh"],
            cwd=ROOT,
            env={
                "PATH": f"{BIN}:/usr/bin:/bin",
                "DJANGO_ENV": "test",
                "REDIS_URL": broker.url,
                "FLOWER_ADDRESS": "127.0.0.1",
                "FLOWER_PORT": str(port),
                "FLOWER_BASIC_AUTH": "ops:s3cret",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: http_status(port, None), what="Flower to answer")
            without, wrong, right = (
                http_status(port, auth) for auth in (None, "ops:nope", "ops:s3cret")
            )
            command_line = Path(f"/proc/{flower.pid}/cmdline").read_bytes()  # what ps shows
        finally:
            flower.kill()
            flower.wait(timeout=10)

    assert (without, wrong, right) == (401, 401, 200)
    assert b"flower" in command_line
    assert b"s3cret" not in command_line


def http_status(port: int, auth: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/")  # noqa: S310 - local
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - local
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


# --- The stack's two database roles ---------------------------------------------------------

MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
OWNER_STEPS = ("migrate", "setup_database_roles", "sync_schedules", "collectstatic")


def make(*arguments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`make` in the project, as a person runs it: not as a part of the make running the tests."""
    env = {key: value for key, value in os.environ.items() if key not in MAKE_VARIABLES}
    return subprocess.run(  # noqa: S603 - fixed argv
        ["make", "--no-print-directory", *arguments],  # noqa: S607 - make from PATH
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def makefile_defaults() -> dict[str, str]:
    text = (ROOT / "Makefile").read_text()
    return dict(re.findall(r"^(STACK_[A-Z_]+) \?= (\S+)$", text, re.MULTILINE))


def test_the_default_urls_name_one_database_and_two_roles_neither_the_superuser():
    defaults = makefile_defaults()
    owner = urllib.parse.urlsplit(defaults["STACK_OWNER_DATABASE_URL"])
    app = urllib.parse.urlsplit(defaults["STACK_DATABASE_URL"])

    assert owner.path == app.path == "/cash_office_stack"
    assert (owner.hostname, owner.port) == (app.hostname, app.port)
    assert len({owner.username, app.username, defaults["STACK_SUPERUSER"]}) == 3
    # The Makefile honours its URLs: the database's name is nowhere else.
    assert (ROOT / "Makefile").read_text().count("cash_office_stack") == 2


def test_make_stack_sets_up_the_database_as_the_owner_and_runs_the_processes_as_the_app_role():
    owner = "postgres://some_owner@127.0.0.1:5432/some_db"
    app = "postgres://some_app@127.0.0.1:5432/some_db"

    dry = make(
        "-n",
        "stack",
        "FLOWER_BASIC_AUTH=ops:pw",
        f"STACK_OWNER_DATABASE_URL={owner}",
        f"STACK_DATABASE_URL={app}",
    )

    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    steps = [
        next(i for i, line in enumerate(lines) if f"manage.py {step}" in line)
        for step in OWNER_STEPS
    ]
    assert steps == sorted(steps)  # the grants after migrate, the schedules after the grants
    # The URLs reach each command through the environment, never on a command line (`ps`,
    # make's echo): they may hold a password.
    for index in steps:
        assert lines[index].startswith('DATABASE_URL="$STACK_OWNER_DATABASE_URL" '), lines[index]
    roles = next(i for i, line in enumerate(lines) if "scripts/stack_database.py" in line)
    assert roles < steps[0]
    [supervisord] = [line for line in lines if "supervisord -c scripts/supervisord.conf" in line]
    assert supervisord.startswith('DATABASE_URL="$STACK_DATABASE_URL" ')
    assert lines.index(supervisord) > steps[-1]
    assert "some_db" not in "".join(lines)


# --- The stack's ports ---------------------------------------------------------------------


def test_the_ports_are_makefile_variables_the_processes_read_from_their_environment():
    defaults = makefile_defaults()
    assert (defaults["STACK_WEB_PORT"], defaults["STACK_FLOWER_PORT"]) == ("8000", "5555")

    dry = make(
        "-n",
        "stack",
        "FLOWER_BASIC_AUTH=ops:pw",
        "STACK_WEB_PORT=8123",
        "STACK_FLOWER_PORT=5666",
    )

    assert dry.returncode == 0, dry.stderr
    [supervisord] = [line for line in dry.stdout.splitlines() if "supervisord -c" in line]
    assert " WEB_PORT=8123 " in supervisord and " FLOWER_PORT=5666 " in supervisord
    # Written nowhere else: supervisord reads both from its environment, and the Procfile
    # (honcho) falls back on the Makefile's defaults.
    assert "8000" not in CONF.read_text() and "5555" not in CONF.read_text()
    assert "--bind 127.0.0.1:%(ENV_WEB_PORT)s" in programs()["web"]["command"]
    assert "--bind 127.0.0.1:${WEB_PORT:-8000}" in procfile()["web"]
    assert '--port="${FLOWER_PORT:-5555}"' in (ROOT / "scripts" / "run_flower.sh").read_text()


def test_supervisords_web_program_listens_on_the_port_its_environment_names(tmp_path):
    config = worker_only_config(tmp_path, "web")
    port = free_port()
    supervisord = subprocess.Popen(  # noqa: S603 - fixed argv
        [str(BIN / "supervisord"), "-c", str(config)],
        env={
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": database_url(name="stack-web"),
            "WEB_PORT": str(port),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Any HTTP answer will do: gunicorn took the port it was given.
        answered = wait_until(lambda: http_status(port, None), what="gunicorn on WEB_PORT")
    finally:
        supervisord.terminate()
        try:
            supervisord.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(supervisord.pid, signal.SIGKILL)
            supervisord.wait(timeout=10)

    assert answered >= 200
    assert f"Listening at: http://127.0.0.1:{port}" in (tmp_path / "web.log").read_text()


def stack_database(*arguments: str, owner: str, app: str, superuser: str = "postgres"):
    return subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "scripts/stack_database.py", *arguments],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "STACK_OWNER_DATABASE_URL": owner,
            "STACK_DATABASE_URL": app,
            "STACK_SUPERUSER": superuser,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("owner", "app", "message"),
    [
        (
            "postgres://o@127.0.0.1/one",
            "postgres://a@127.0.0.1/two",
            "the same server and database",
        ),
        ("postgres://o@127.0.0.1/db", "postgres://o@127.0.0.1/db", "must be three roles"),
        ("postgres://o@127.0.0.1/db", "postgres://postgres@127.0.0.1/db", "must be three roles"),
        (
            "postgres://127.0.0.1/db",
            "postgres://a@127.0.0.1/db",
            "STACK_OWNER_DATABASE_URL must be",
        ),
        ("postgres://o:pw@127.0.0.1/", "postgres://a@127.0.0.1/db", "names no database"),
    ],
    ids=["two-databases", "one-role", "app-is-superuser", "no-user", "no-database"],
)
def test_stack_database_refuses_urls_that_do_not_fit_and_exits_2(owner, app, message):
    result = stack_database("--app-role", owner=owner, app=app)

    assert result.returncode == 2
    assert message in result.stderr
    assert "pw" not in result.stderr
    assert result.stdout == ""


def test_stack_database_names_the_app_role_from_its_url():
    result = stack_database(
        "--app-role",
        owner="postgres://o@127.0.0.1/db",
        app="postgres://the_app:pw@127.0.0.1:5432/db",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "the_app\n"


def test_make_stack_database_gives_the_app_role_nothing_it_could_tamper_with():
    """The real `make stack-database`, twice (it is safe to run again), under throwaway
    names; then what the application's role may and may not do there."""
    names = database_roles.unique_names("stack")
    server = database_roles.server()
    base = f"{server['host']}:{server['port']}/{names.database}"
    owner_url, app_url = f"postgres://{names.owner}@{base}", f"postgres://{names.app}@{base}"
    with database_roles.dropped_afterwards(names):
        for _ in range(2):
            run = make(
                "stack-database",
                f"STACK_OWNER_DATABASE_URL={owner_url}",
                f"STACK_DATABASE_URL={app_url}",
                f"STACK_SUPERUSER={server['user']}",
                f"STACK_REDIS_URL={os.environ.get('REDIS_URL', 'redis://127.0.0.1:6379/15')}",
            )
            assert run.returncode == 0, run.stdout + run.stderr
        assert f"Role {names.app} is set up" in run.stdout

        assert database_roles.query(
            names.database,
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace",
        ) == [(names.owner,)]
        assert database_roles.query(
            "postgres",
            "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname IN (%s, %s)",
            [names.owner, names.app],
        ) == [(False, False), (False, False)]
        app = database_roles.connect(names.database, user=names.app)
        try:
            with app.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM django_celery_beat_periodictask")
                assert cursor.fetchone()[0] >= 5  # the schedules, synced as the owner
            for statement, message in (
                ("ALTER TABLE auditing_auditentry DISABLE TRIGGER ALL", "must be owner"),
                ("DELETE FROM auditing_auditentry", "permission denied"),
                ("DELETE FROM payments_cashtransaction", "permission denied"),
                ("CREATE TABLE sneaky (id int)", "permission denied for schema public"),
            ):
                with pytest.raises(errors.InsufficientPrivilege, match=message), app.cursor() as c:
                    c.execute(statement)
        finally:
            app.close()

        # check --deploy: quiet about the role for the application, warns for the owner.
        for url, warned in ((app_url, False), (owner_url, True)):
            check = subprocess.run(  # noqa: S603 - our own manage.py
                [sys.executable, "manage.py", "check", "--deploy"],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": url},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert ("auditing.W003" in check.stdout + check.stderr) is warned, check.stderr
