"""``manage.py setup_database_roles``: the application's own PostgreSQL role, which may add to
the audit trail and read it, add and change money rows but never delete them, and nothing else.

The append-only triggers hold against the application, not against whoever owns the
tables: an owner may disable them. Run the application as a role that owns nothing, and
even with the triggers off it cannot change or remove an entry (auditing/README.md,
"Database roles").
"""

import argparse
import os
import re
from dataclasses import dataclass

import psycopg2
from django.conf import settings
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from psycopg2 import sql
from psycopg2.extensions import encrypt_password

from auditing.enforcement import APPEND_ONLY_TABLES

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# What the application does to every other table, and must never do to the audit tables.
READ_WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")
APPEND_ONLY_GRANTED = ("SELECT", "INSERT")
APPEND_ONLY_REVOKED = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")
# The money tables (settings.MONEY_TABLES): rows are added and changed, never removed.
NO_DELETE_GRANTED = ("SELECT", "INSERT", "UPDATE")
NO_DELETE_REVOKED = ("DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")

EXIT_CODES = """exit codes:
  0  done (or, with --dry-run, the SQL printed)
  1  the database refused, or a table is missing (run migrate first); nothing was changed
  2  bad arguments, or a role that cannot be kept from changing the trail; nothing was changed
"""


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, keeping the exit-code table's line breaks."""


@dataclass(frozen=True)
class _Action:
    done: str  # the line printed once it has run
    statement: sql.Composable | None  # None: nothing to do
    password: str | None = None  # the only parameter, never printed


class Command(BaseCommand):
    help = (
        "Create or update the application's PostgreSQL role: it may connect, read and write "
        "every table of the schema, but only read and add to the append-only audit tables "
        f"({', '.join(APPEND_ONLY_TABLES)}), and never delete rows of the money tables "
        f"({', '.join(settings.MONEY_TABLES)}); it may not create anything in the schema. "
        "Run it as the role that owns the tables (the one that ran migrate), and again after "
        "each migrate: tables created since get their privileges then. Safe to run again."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        return super().create_parser(
            prog_name, subcommand, formatter_class=_HelpFormatter, epilog=EXIT_CODES, **kwargs
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--app-role",
            required=True,
            metavar="NAME",
            help="The application's role, created with LOGIN if missing (lowercase letters, "
            "digits and _; at most 63).",
        )
        parser.add_argument(
            "--password-env",
            metavar="VAR",
            help="The environment variable holding the role's password (never the command "
            "line, which `ps` shows every user). Without it a new role has no password and an "
            "existing one keeps its own.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the SQL; change nothing.")
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="The database alias (default: default)."
        )

    def handle(self, *args, **options) -> None:
        role = options["app_role"]
        if not ROLE_NAME.fullmatch(role):
            raise CommandError(
                f"--app-role {role!r} is not a plain role name: use lowercase letters, digits "
                "and _, starting with a letter or _ (at most 63).",
                returncode=2,
            )
        password = self._password(options["password_env"])
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            raise CommandError("Database roles are set up on PostgreSQL only.", returncode=2)
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                actions = self._plan(
                    cursor, role=role, password=password, env=options["password_env"]
                )
                if options["dry_run"]:
                    raw = connection.connection
                    for action in actions:
                        if action.statement is None:
                            continue
                        text = action.statement.as_string(raw)
                        if action.password is not None:
                            text = text.replace(
                                "%s", f"<the password in ${options['password_env']}>"
                            )
                        self.stdout.write(f"{text};")
                    self.stdout.write(self.style.WARNING("Dry run: nothing was changed."))
                    return
                raw = connection.connection
                with raw.cursor() as raw_cursor:
                    for action in actions:
                        if action.statement is None:
                            continue
                        # Hashed here (SCRAM, as the server is set to store it), so neither
                        # the server's statement log nor Django's query log sees the password.
                        params = (
                            None
                            if action.password is None
                            else [encrypt_password(action.password, role, raw)]
                        )
                        raw_cursor.execute(action.statement.as_string(raw), params)
                self._verify(cursor, role=role)
        except (DatabaseError, psycopg2.Error) as error:  # the raw cursor raises psycopg2's
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CommandError(
                f"The database refused ({reason}); nothing was changed.", returncode=1
            ) from error
        for action in actions:
            self.stdout.write(f"  {action.done}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Role {role} is set up: it may only read and add to "
                f"{', '.join(APPEND_ONLY_TABLES)}, and never delete rows of "
                f"{', '.join(settings.MONEY_TABLES)}. Run this again after each migrate."
            )
        )

    def _password(self, variable: str | None) -> str | None:
        if variable is None:
            return None
        password = os.environ.get(variable, "")
        if not password:
            raise CommandError(
                f"--password-env names {variable}, which is not set or empty.", returncode=2
            )
        return password

    def _plan(self, cursor, *, role: str, password: str | None, env: str | None) -> list[_Action]:
        """The statements to run, read from the catalogue first; refuses a role that no
        privilege could keep from changing the trail."""
        role_id = sql.Identifier(role)
        cursor.execute("SELECT current_user, current_database(), current_schema()")
        owner, database, schema = cursor.fetchone()
        if role == owner:
            raise CommandError(
                f"--app-role {role} is the role running this command, which owns the tables "
                "and may switch the triggers off: name a role of its own for the application.",
                returncode=2,
            )
        cursor.execute(
            "SELECT rolsuper OR rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
            [role],
        )
        found = cursor.fetchone()
        if found and found[0]:
            raise CommandError(
                f"Role {role} is a superuser or may create roles, and so can give itself any "
                "privilege: name a role of its own for the application.",
                returncode=2,
            )
        cursor.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition ORDER BY c.relname"
        )
        tables = dict(cursor.fetchall())
        guarded = (*APPEND_ONLY_TABLES, *settings.MONEY_TABLES)
        missing = [table for table in guarded if table not in tables]
        if missing:
            raise CommandError(
                f"Table {', '.join(missing)} does not exist in schema {schema}: run "
                "`manage.py migrate` first.",
                returncode=1,
            )
        if found:
            owners = sorted({tables[table] for table in guarded})
            cursor.execute(
                "SELECT owner FROM unnest(%s::text[]) AS owner "
                "WHERE pg_has_role(%s, owner, 'MEMBER')",
                [owners, role],
            )
            inherited = [row[0] for row in cursor.fetchall()]
            if inherited:
                raise CommandError(
                    f"Role {role} is a member of {', '.join(inherited)}, which owns the audit "
                    "tables, and so may switch their triggers off: name a role of its own.",
                    returncode=2,
                )

        # The owner need not manage roles (deploy/postgres/10-roles.sh creates both as the
        # superuser): then it grants, and leaves a role that may log in as it is.
        cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = %s", [owner])
        (manages_roles,) = cursor.fetchone()
        if not manages_roles and (not found or not found[1] or password is not None):
            what = "does not exist" if not found else "may not log in" if not found[1] else "exists"
            raise CommandError(
                f"Role {role} {what}, and {owner} may not create or alter roles: as a superuser, "
                f"create it (or set its password) with LOGIN, e.g. deploy/postgres/10-roles.sh, "
                'then run this again without --password-env (README.md, "Database roles").',
                returncode=1,
            )
        actions = [
            self._role_action(
                role_id,
                role,
                exists=bool(found),
                can_login=bool(found and found[1]),
                password=password,
                env=env,
            )
        ]
        actions.append(
            _Action(
                f"granted CONNECT on database {database}",
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(database), role_id
                ),
            )
        )
        actions.append(
            _Action(
                f"granted USAGE on schema {schema}",
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role_id),
            )
        )
        actions.append(
            _Action(
                f"revoked CREATE on schema {schema}",
                sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(
                    sql.Identifier(schema), role_id
                ),
            )
        )
        for table in tables:
            qualified = sql.Identifier(schema, table)
            if table in APPEND_ONLY_TABLES:
                privileges, revoked = APPEND_ONLY_GRANTED, APPEND_ONLY_REVOKED
            elif table in settings.MONEY_TABLES:
                privileges, revoked = NO_DELETE_GRANTED, NO_DELETE_REVOKED
            else:
                privileges, revoked = READ_WRITE, ()
            if revoked:
                # Also takes back what an earlier grant gave (DELETE, before the money
                # tables had a rule of their own).
                actions.append(
                    _Action(
                        f"revoked {', '.join(revoked)} on {table}",
                        sql.SQL("REVOKE {} ON TABLE {} FROM {}").format(
                            sql.SQL(", ").join(map(sql.SQL, revoked)), qualified, role_id
                        ),
                    )
                )
            actions.append(
                _Action(
                    f"granted {', '.join(privileges)} on {table}",
                    sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                        sql.SQL(", ").join(map(sql.SQL, privileges)), qualified, role_id
                    ),
                )
            )
        actions.append(
            _Action(
                f"granted USAGE, SELECT on every sequence of schema {schema}",
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                    sql.Identifier(schema), role_id
                ),
            )
        )
        return actions

    def _role_action(
        self,
        role_id: sql.Identifier,
        role: str,
        *,
        exists: bool,
        can_login: bool,
        password: str | None,
        env: str | None,
    ) -> _Action:
        with_password = sql.SQL(" PASSWORD %s") if password is not None else sql.SQL("")
        if not exists:
            how = f"password from ${env}" if password is not None else "no password"
            return _Action(
                f"created role {role} (LOGIN, {how})",
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE{}").format(
                    role_id, with_password
                ),
                password,
            )
        if can_login and password is None:
            return _Action(f"role {role} exists: LOGIN", None)
        how = f", password set from ${env}" if password is not None else ""
        return _Action(
            f"role {role} exists: LOGIN{how}",
            sql.SQL("ALTER ROLE {} LOGIN{}").format(role_id, with_password),
            password,
        )

    def _verify(self, cursor, *, role: str) -> None:
        """Privileges also come from PUBLIC and from the roles this one belongs to: check
        what the role may really do, before committing."""
        kept = []
        for tables, revoked in (
            (APPEND_ONLY_TABLES, APPEND_ONLY_REVOKED),
            (settings.MONEY_TABLES, NO_DELETE_REVOKED),
        ):
            cursor.execute(
                "SELECT t.name, p.privilege FROM unnest(%s::text[]) AS t(name) "
                "CROSS JOIN unnest(%s::text[]) AS p(privilege) "
                "WHERE has_table_privilege(%s, t.name, p.privilege) ORDER BY 1, 2",
                [list(tables), list(revoked), role],
            )
            kept += cursor.fetchall()
        cursor.execute(
            "SELECT current_schema(), 'CREATE' WHERE has_schema_privilege(%s, current_schema(), "
            "'CREATE')",
            [role],
        )
        kept += [(f"schema {schema}", privilege) for schema, privilege in cursor.fetchall()]
        if kept:
            held = "; ".join(f"{privilege} on {table}" for table, privilege in kept)
            raise CommandError(
                f"Role {role} would still hold {held}, through PUBLIC or a role it belongs to: "
                "revoke that grant, then run this again. Nothing was changed.",
                returncode=1,
            )
