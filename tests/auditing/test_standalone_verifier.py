"""cash-audit-verify (auditing/verifier.py): it imports no Django, reads the documented
dumps exactly, never crashes on a bad line or option, and agrees with the application's
verification on every tamper case, read from the database and from real psql exports."""

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from auditing import verifier
from auditing.chain import (
    ROW_COLUMNS,
    Checkpoint,
    StoredRow,
    ViolationKind,
    checkpoint_sign,
)
from auditing.checkpoints import DirectorySink
from auditing.models import AuditEntry, VerificationFinding
from auditing.selectors import CHECKPOINT_ACKNOWLEDGED, ChainHead
from auditing.services import audit_entry_append, checkpoint_sign_and_store
from tasks.operations.verify_audit_trail import (
    audit_trail_verify,
    options_parse,
)
from tasks.results import Trigger
from tests.auditing import memory_chain
from tests.auditing.tampering import delete_entries, renumber_from, set_column, swap_entries
from tests.factories import UserFactory

REPOSITORY = Path(__file__).resolve().parents[2]
VERIFIER = Path(sys.executable).with_name("cash-audit-verify")
HMAC_KINDS = {ViolationKind.CONTENT_MISMATCH.value, ViolationKind.UNKNOWN_KEY.value}

# The export commands of auditing/README.md, run here exactly as written (a test below
# checks that the README still shows them).
CSV_EXPORT = (
    'PGTZ=UTC PGCLIENTENCODING=UTF8 psql -X "$DATABASE_URL" -c "\\copy (SELECT sequence, '
    "CAST(timestamp AS text) AS timestamp, action, actor_id, actor_name, subject_type, "
    "subject_id, CAST(data AS text) AS data, previous_hash, current_hash, key_id "
    "FROM auditing_auditentry ORDER BY sequence) TO 'trail.csv' WITH (FORMAT csv, HEADER)\""
)
JSONL_EXPORT = (
    'PGTZ=UTC PGCLIENTENCODING=UTF8 psql -X -At -v FETCH_COUNT=10000 "$DATABASE_URL" -c '
    "\"SELECT json_build_object('sequence', sequence, 'timestamp', CAST(timestamp AS text), "
    "'action', action, 'actor_id', actor_id, 'actor_name', actor_name, "
    "'subject_type', subject_type, 'subject_id', subject_id, 'data', CAST(data AS text), "
    "'previous_hash', previous_hash, 'current_hash', current_hash, 'key_id', key_id) "
    'FROM auditing_auditentry ORDER BY sequence" > trail.jsonl'
)

Findings = list[tuple[str, int | None]]


# Running the verifier ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def outcome(self) -> dict:
        return json.loads(self.stdout)

    @property
    def findings(self) -> Findings:
        return [(finding["kind"], finding["sequence"]) for finding in self.outcome["findings"]]


def _environment(**extra: str) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if name != "AUDIT_CHAIN_KEYS_JSON"
    }
    return environment | extra


def verifier_run(*arguments: str, environment: dict[str, str] | None = None) -> Run:
    """The installed console script, in a process of its own."""
    assert VERIFIER.exists(), "run `make install` so that .venv/bin/cash-audit-verify exists"
    completed = subprocess.run(  # noqa: S603 - our own script, arguments from the test
        [str(VERIFIER), *arguments],
        capture_output=True,
        text=True,
        env=environment or _environment(),
        timeout=120,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def verifier_main(capsys, *arguments: str) -> Run:
    """The same command in this process: quicker, for the checks that need no database."""
    exit_code = verifier.main(list(arguments))
    captured = capsys.readouterr()
    return Run(exit_code, captured.out, captured.err)


def _one_error_line(run: Run, expected_exit: int, *fragments: str) -> None:
    assert run.exit_code == expected_exit, run
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr
    assert len(lines) == 1 or lines[0].startswith("usage:"), run.stderr
    for fragment in fragments:
        assert fragment in run.stderr


# Dumps written as PostgreSQL writes them, for the tests without a database --------------------


def copy_csv_field(value: str | int | None) -> str:
    """One field as COPY ... (FORMAT csv) writes it: NULL as nothing, and quoted when empty
    or holding a comma, a quote or a line break."""
    if value is None:
        return ""
    text = str(value)
    if text == "" or any(character in text for character in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_dump(rows: list[StoredRow], path: Path) -> Path:
    lines = [",".join(ROW_COLUMNS)]
    for row in rows:
        lines.append(",".join(copy_csv_field(getattr(row, name)) for name in ROW_COLUMNS))
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def jsonl_dump(rows: list[StoredRow], path: Path) -> Path:
    lines = [json.dumps(dataclasses.asdict(row), ensure_ascii=False) for row in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


@pytest.fixture
def memory_keys_file(tmp_path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(memory_chain.KEYS))
    return path


# No Django -----------------------------------------------------------------------------------


def test_the_verifier_imports_no_django_even_while_it_verifies(tmp_path, memory_keys_file):
    rows = memory_chain.chain_build(3)
    dump = jsonl_dump(rows, tmp_path / "trail.jsonl")
    folder = tmp_path / "checkpoints"
    DirectorySink(folder).write(memory_chain.checkpoint_at(rows, 2).signed)
    script = (
        "import sys\n"
        "import auditing.verifier\n"
        "assert 'django' not in sys.modules, 'imported: django'\n"
        "code = auditing.verifier.main(sys.argv[1:])\n"
        "leaked = sorted(name for name in sys.modules if name.split('.')[0] == 'django')\n"
        "assert not leaked, leaked\n"
        "sys.exit(code)\n"
    )

    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script, "--dump", str(dump), "--keys-file", str(memory_keys_file)]
        + ["--public-key", memory_chain.PUBLIC_KEY, "--checkpoints", str(folder)],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env=_environment(),
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == "intact"


def test_the_console_script_is_installed_and_explains_itself():
    run = verifier_run("--help")

    assert run.exit_code == 0
    for option in ("--database-url", "--dump", "--format", "--public-key", "--public-key-file"):
        assert option in run.stdout
    for option in ("--checkpoints", "--keys-file", "--clock-skew", "--json"):
        assert option in run.stdout
    assert "AUDIT_CHAIN_KEYS_JSON" in run.stdout
    assert "0 intact; 3 tampering found; 2 bad usage; 1 the input could not be read" in " ".join(
        run.stdout.split()
    )


# Reading dumps exactly ----------------------------------------------------------------------------


# PostgreSQL's text refuses NUL; UTF-8 carries no lone surrogate.
_texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
stored_rows = st.builds(
    StoredRow,
    sequence=st.integers(0, 2**63 - 1),
    timestamp=st.none() | _texts,
    action=st.none() | _texts,
    actor_id=st.none() | st.integers(-(2**31), 2**31 - 1),
    actor_name=st.none() | _texts,
    subject_type=st.none() | _texts,
    subject_id=st.none() | _texts,
    data=st.none() | _texts,
    previous_hash=st.none() | _texts,
    current_hash=st.none() | _texts,
    key_id=st.none() | _texts,
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(rows=st.lists(stored_rows, max_size=5))
def test_every_row_reads_back_from_csv_and_json_lines_as_written(rows):
    """NULL and the empty string stay apart, and commas, quotes, line breaks, U+2028 and
    any other character survive both formats."""
    csv_text = "\n".join(
        [",".join(ROW_COLUMNS)]
        + [",".join(copy_csv_field(getattr(row, name)) for name in ROW_COLUMNS) for row in rows]
    )
    jsonl_text = "\n".join(json.dumps(dataclasses.asdict(row), ensure_ascii=False) for row in rows)

    from_csv = list(verifier.csv_rows(_lines(csv_text), name="trail.csv"))
    from_jsonl = list(verifier.jsonl_rows(_lines(jsonl_text)))

    assert from_csv == rows
    assert from_jsonl == rows


def _lines(text: str) -> list[bytes]:
    """What iterating over a file opened "rb" yields: lines split at b"\\n" only."""
    return [line + b"\n" for line in text.encode("utf-8").split(b"\n")]


def test_csv_tells_null_from_the_empty_string():
    text = (
        ",".join(ROW_COLUMNS) + "\n"
        '1,2026-04-01 09:00:00+00,a,,"",,"",{},x,y,""\n'
        '2,2026-04-01 09:00:00+00,a,7,b,"",,"{""k"": ""v, w""}",x,y,1\n'
    )

    first, second = verifier.csv_rows(_lines(text.rstrip("\n")), name="trail.csv")

    assert (first.actor_id, first.actor_name, first.subject_type, first.subject_id) == (
        None,
        "",
        None,
        "",
    )
    assert first.key_id == ""
    assert (second.actor_id, second.subject_type, second.subject_id) == (7, "", None)
    assert second.data == '{"k": "v, w"}'


def _dump_lines(tmp_path: Path, name: str, lines: list[str | bytes]) -> Path:
    path = tmp_path / name
    path.write_bytes(
        b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    )
    return path


def test_bad_csv_lines_are_undecodable_findings_naming_their_line(tmp_path, capsys):
    rows = memory_chain.chain_build(6)
    good = [",".join(copy_csv_field(getattr(row, name)) for name in ROW_COLUMNS) for row in rows]
    dump = _dump_lines(
        tmp_path,
        "trail.csv",
        [
            ",".join(ROW_COLUMNS),
            good[0],
            "2,too,few,fields",  # line 3
            "three," + good[2].partition(",")[2],  # line 4: the sequence is no number
            good[3].replace(",system,", ',sys"t"em,', 1),  # line 5: stray quotes
            good[4].replace("day.closed", "day.clos\xe9d").encode("latin-1"),  # line 6
            good[5].replace(",agent007,", ',"agent007,', 1),  # line 7: never closed
        ],
    )

    run = verifier_main(capsys, "--dump", str(dump), "--json")

    undecodable = [
        (finding["sequence"], finding["detail"])
        for finding in run.outcome["findings"]
        if finding["kind"] == "undecodable"
    ]
    assert run.exit_code == 3
    assert undecodable == [
        (2, "line 3 cannot be read: the line has 4 fields, not 11"),
        (None, "line 4 cannot be read: sequence is not a whole number"),
        (4, "line 5 cannot be read: field 5 has a stray quote"),
        (None, "line 6 cannot be read: the line is not valid UTF-8"),
        (None, "line 7 cannot be read: a quoted field is not closed before the end of the file"),
    ]
    assert run.outcome["entries_checked"] == 1


def test_bad_json_lines_are_undecodable_findings_naming_their_line(tmp_path, capsys):
    rows = memory_chain.chain_build(2)
    first = dataclasses.asdict(rows[0])
    dump = _dump_lines(
        tmp_path,
        "trail.jsonl",
        [
            json.dumps(first),
            "{not json",
            json.dumps({**first, "sequence": 2.0}),
            json.dumps({"sequence": 2, "action": "x"}),
            json.dumps({**first, "sequence": 2, "data": {"day": 2}}),
            json.dumps({**first, "sequence": 2, "actor_id": "7"}),
            json.dumps([1, 2]),
            "",
        ],
    )

    run = verifier_main(capsys, "--dump", str(dump), "--json")

    details = [(finding["sequence"], finding["detail"]) for finding in run.outcome["findings"]]
    assert run.exit_code == 3
    assert details == [
        (None, "line 2 cannot be read: the line is not JSON"),
        (None, "line 3 cannot be read: sequence is not a whole number"),
        (
            2,
            "line 4 cannot be read: the line is not an object with exactly the keys "
            + ", ".join(ROW_COLUMNS),
        ),
        (2, "line 5 cannot be read: data is neither a string nor null"),
        (2, "line 6 cannot be read: actor_id is neither a whole number nor null"),
        (
            None,
            "line 7 cannot be read: the line is not an object with exactly the keys "
            + ", ".join(ROW_COLUMNS),
        ),
    ]


@pytest.mark.parametrize(
    ("tamper", "detail"),
    [
        (
            {"current_hash": "é" * 64},
            "the entry's content does not match its stored hash",
        ),
        (
            {"timestamp": "9999-12-31 23:30:00-01"},
            "is out of range in UTC",
        ),
        (
            {"data": '{"note": "\\ud800"}'},
            "the entry cannot be hashed: cannot be serialized",
        ),
    ],
    ids=["hash-not-ascii", "timestamp-past-9999-in-utc", "lone-surrogate"],
)
def test_malformed_stored_values_are_findings_not_crashes(
    tmp_path, capsys, memory_keys_file, tamper, detail
):
    rows = memory_chain.chain_build(3)
    rows[1] = dataclasses.replace(rows[1], **tamper)
    dump = jsonl_dump(rows, tmp_path / "trail.jsonl")

    run = verifier_main(capsys, "--dump", str(dump), "--keys-file", str(memory_keys_file), "--json")

    assert run.exit_code == 3
    assert any(f["sequence"] == 2 and detail in f["detail"] for f in run.outcome["findings"]), (
        run.outcome["findings"]
    )


def test_a_checkpoint_file_dated_past_9999_in_utc_is_invalid_not_a_crash(tmp_path, capsys):
    rows = memory_chain.chain_build(2)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    document = json.loads(memory_chain.checkpoint_at(rows, 2).signed.to_json())
    document["signed_at"] = "9999-12-31T23:30:00-01:00"
    (folder / "checkpoint-forged.json").write_text(json.dumps(document))

    run = verifier_main(
        capsys,
        *("--dump", str(jsonl_dump(rows, tmp_path / "trail.jsonl"))),
        *("--public-key", memory_chain.PUBLIC_KEY, "--checkpoints", str(folder), "--json"),
    )

    assert run.exit_code == 3
    assert run.findings == [("checkpoint_invalid", None)]


# Options, keys and exit codes -------------------------------------------------------------------


def test_without_keys_it_says_hmacs_were_not_checked_and_misses_only_what_needs_them(
    tmp_path, capsys, memory_keys_file
):
    rows = memory_chain.chain_build(4)
    rows[1] = dataclasses.replace(rows[1], action="rewritten")  # only its HMAC shows it
    dump = csv_dump(rows, tmp_path / "trail.csv")

    without = verifier_main(capsys, "--dump", str(dump))
    with_keys = verifier_main(capsys, "--dump", str(dump), "--keys-file", str(memory_keys_file))

    assert without.exit_code == 0
    assert "HMACs not checked (no key): sequence, links, timestamps and checkpoints only" in (
        without.stdout
    )
    assert "Checkpoints: not checked (no trusted public key" in without.stdout
    assert without.stdout.endswith("\nintact\n")
    assert with_keys.exit_code == 3
    assert "HMACs: checked with key ids 1 (from " in with_keys.stdout
    assert "content_mismatch" in with_keys.stdout
    assert with_keys.stdout.endswith("\nTAMPERING: 1 issue\n")


def test_keys_come_from_the_environment_when_no_file_is_given(tmp_path, monkeypatch, capsys):
    rows = memory_chain.chain_build(2)
    rows[0] = dataclasses.replace(rows[0], actor_name="someone else")
    dump = jsonl_dump(rows, tmp_path / "trail.jsonl")
    monkeypatch.setenv("AUDIT_CHAIN_KEYS_JSON", json.dumps(memory_chain.KEYS))

    run = verifier_main(capsys, "--dump", str(dump), "--json")

    assert run.exit_code == 3
    assert run.outcome["hmacs_checked"] is True
    assert run.findings == [("content_mismatch", 1)]


def test_an_entry_under_a_key_the_verifier_lacks_is_unknown_key(tmp_path, capsys, monkeypatch):
    rows = memory_chain.chain_build(2)
    rows.append(
        memory_chain.row_signed(
            sequence=3,
            previous_hash=rows[-1].current_hash,
            timestamp=memory_chain.START + dt.timedelta(hours=1),
            key_id="2",
            key="the-rotated-key-that-the-auditor-was-not-given",
        )
    )
    dump = jsonl_dump(rows, tmp_path / "trail.jsonl")
    monkeypatch.setenv("AUDIT_CHAIN_KEYS_JSON", json.dumps(memory_chain.KEYS))

    run = verifier_main(capsys, "--dump", str(dump), "--json")

    assert run.findings == [("unknown_key", 3)]


def test_clock_skew_bounds_how_far_ahead_an_entry_may_be_stamped(tmp_path, capsys):
    now = dt.datetime.now(dt.UTC)
    rows = memory_chain.chain_build(2, start=now + dt.timedelta(seconds=200))
    dump = jsonl_dump(rows, tmp_path / "trail.jsonl")

    default = verifier_main(capsys, "--dump", str(dump), "--json")
    strict = verifier_main(capsys, "--dump", str(dump), "--clock-skew", "0", "--json")

    assert default.exit_code == 0
    assert strict.exit_code == 3
    assert strict.findings == [("timestamp_in_future", 1), ("timestamp_in_future", 2)]


def test_checkpoints_prove_nothing_without_a_trusted_key_so_that_is_refused(tmp_path, capsys):
    dump = jsonl_dump(memory_chain.chain_build(1), tmp_path / "trail.jsonl")

    run = verifier_main(capsys, "--dump", str(dump), "--checkpoints", str(tmp_path))

    _one_error_line(run, 2, "--checkpoints needs a trusted public key")


def test_public_keys_come_from_options_and_files_and_must_be_ed25519(tmp_path, capsys):
    rows = memory_chain.chain_build(3)
    dump = jsonl_dump(rows, tmp_path / "trail.jsonl")
    folder = tmp_path / "checkpoints"
    DirectorySink(folder).write(memory_chain.checkpoint_at(rows, 3).signed)
    key_file = tmp_path / "trusted.txt"
    key_file.write_text(f"# the cash office's key\n\n{memory_chain.PUBLIC_KEY}\n")

    from_file = verifier_main(
        capsys,
        "--dump",
        str(dump),
        "--public-key-file",
        str(key_file),
        "--checkpoints",
        str(folder),
    )
    bad_key = verifier_main(capsys, "--dump", str(dump), "--public-key", "c2hvcnQ=")

    assert from_file.exit_code == 0, from_file
    assert f"Last good checkpoint: #3 {rows[2].current_hash} signed " in from_file.stdout
    _one_error_line(bad_key, 2, "raw Ed25519 public key")


@pytest.mark.parametrize(
    ("arguments", "exit_code", "fragment"),
    [
        (("--dump", "{tmp}/missing.csv"), 1, "cannot read {tmp}/missing.csv: No such file"),
        (("--dump", "{tmp}/trail.txt"), 2, "give --format csv|jsonl"),
        (("--dump", "{tmp}/trail.jsonl", "--keys-file", "{tmp}/none.json"), 1, "keys file"),
        (("--dump", "{tmp}/trail.jsonl", "--keys-file", "{tmp}/bad.json"), 2, "is not JSON"),
        (("--dump", "{tmp}/trail.jsonl", "--keys-file", "{tmp}/list.json"), 2, "JSON object"),
        (("--dump", "{tmp}/wrong-header.csv"), 1, "line 1 must be the header sequence,"),
        (("--dump", "{tmp}/empty.csv"), 1, "is empty"),
        (
            ("--dump", "{tmp}/trail.jsonl", "--public-key", memory_chain.PUBLIC_KEY)
            + ("--checkpoints", "{tmp}/nowhere"),
            1,
            "the checkpoint directory {tmp}/nowhere does not exist",
        ),
        (("--database-url", "mysql://x@y/z"), 2, "must be a postgres://"),
        (("--database-url", "postgres://u@127.0.0.1:1/x", "--format", "csv"), 2, "--format"),
    ],
)
def test_bad_input_gets_one_clear_line_and_its_exit_code(
    tmp_path, capsys, arguments, exit_code, fragment
):
    jsonl_dump(memory_chain.chain_build(1), tmp_path / "trail.jsonl")
    (tmp_path / "trail.txt").write_text("")
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "list.json").write_text('["key"]')
    (tmp_path / "wrong-header.csv").write_text("seq,ts\n1,2\n")
    (tmp_path / "empty.csv").write_text("")

    run = verifier_main(capsys, *(argument.format(tmp=tmp_path) for argument in arguments))

    _one_error_line(run, exit_code, fragment.format(tmp=tmp_path))


def test_a_refused_connection_exits_1_with_one_line():
    run = verifier_run("--database-url", "postgres://postgres:secret@127.0.0.1:1/nothing")

    _one_error_line(run, 1, "cannot connect to database postgres://postgres:***@127.0.0.1:1")
    assert "secret" not in run.stderr


@pytest.mark.parametrize("value", ["-5", "soon"])
def test_the_clock_skew_must_be_whole_seconds(tmp_path, value):
    run = verifier_run("--dump", "x.jsonl", "--clock-skew", value)

    assert run.exit_code == 2
    assert "--clock-skew" in run.stderr and "Traceback" not in run.stderr


def test_the_readme_documents_the_export_commands_these_tests_run():
    readme = (REPOSITORY / "auditing" / "README.md").read_text()

    assert CSV_EXPORT in readme
    assert JSONL_EXPORT in readme


def test_the_acknowledgement_action_is_the_applications():
    assert verifier.CHECKPOINT_ACKNOWLEDGED == CHECKPOINT_ACKNOWLEDGED


# Agreement with the application's verification, on a real database ----------------------------


def _database_url() -> str:
    database = connection.settings_dict
    password = f":{quote(database['PASSWORD'], safe='')}" if database["PASSWORD"] else ""
    return (
        f"postgres://{quote(database['USER'] or '', safe='')}{password}@"
        f"{database['HOST'] or 'localhost'}:{database['PORT'] or 5432}/{database['NAME']}"
    )


@contextmanager
def owner_access():
    """What the database's owner can do: switch the append-only triggers off. The data is
    committed (other processes read it), so the triggers are switched back on afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE auditing_auditentry DISABLE TRIGGER USER")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE auditing_auditentry ENABLE TRIGGER USER")


def _sql(statement: str, parameters=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, parameters)


def _forged(sequence: int, previous_hash: str, **overrides) -> None:
    """An entry written by someone without the key: linked, but its hash is made up."""
    values = {
        "sequence": sequence,
        "timestamp": dt.datetime.now(dt.UTC),
        "action": "payment.recorded",
        "actor_id": None,
        "actor_name": "system",
        "subject_type": "",
        "subject_id": "",
        "data": json.dumps({"amount": "1000000.00"}),
        "previous_hash": previous_hash,
        "current_hash": hashlib.sha256(f"forged {sequence} {previous_hash}".encode()).hexdigest(),
        "key_id": "1",
    } | overrides
    columns = ", ".join(values)
    placeholders = ", ".join("%s::jsonb" if name == "data" else "%s" for name in values)
    _sql(
        f"INSERT INTO auditing_auditentry ({columns}) VALUES ({placeholders})",  # noqa: S608
        list(values.values()),
    )


def _hash(sequence: int) -> str:
    return AuditEntry.objects.get(sequence=sequence).current_hash


@dataclasses.dataclass
class Trail:
    """Eight entries and a checkpoint signed at entry 6, in the database and the folder."""

    checkpoint_dir: Path
    signed_hash: str

    def checkpoint_file(self) -> Path:
        (path,) = sorted(self.checkpoint_dir.glob("checkpoint-000000000000006-*.json"))
        return path


# The tamper matrix: each case does to the committed trail what an attacker would.


def _edit_data(trail: Trail) -> None:
    with owner_access():
        set_column(3, "data", {"amount": "1.00"})


def _timestamp_two_years_ahead(trail: Trail) -> None:
    with owner_access():
        _sql(
            "UPDATE auditing_auditentry SET timestamp = timestamp + interval '2 years' "
            "WHERE sequence = 4"
        )


def _timestamp_before_its_predecessor(trail: Trail) -> None:
    with owner_access():
        _sql(
            "UPDATE auditing_auditentry SET timestamp = "
            "(SELECT timestamp - interval '1 hour' FROM auditing_auditentry WHERE sequence = 4) "
            "WHERE sequence = 5"
        )


def _previous_hash(trail: Trail) -> None:
    with owner_access():
        set_column(3, "previous_hash", "f" * 64)


def _current_hash(trail: Trail) -> None:
    with owner_access():
        set_column(7, "current_hash", "e" * 64)


def _delete_middle(trail: Trail) -> None:
    with owner_access():
        delete_entries(4)


def _delete_tail_after_checkpoint(trail: Trail) -> None:
    with owner_access():
        delete_entries(5, 6, 7, 8)


def _cut_and_reappend_forged(trail: Trail) -> None:
    with owner_access():
        delete_entries(5, 6, 7, 8)
        for sequence in range(5, 9):
            _forged(sequence, _hash(sequence - 1))


def _cut_and_let_the_application_append_again(trail: Trail) -> None:
    with owner_access():
        delete_entries(6, 7, 8)
    for number in range(3):
        audit_entry_append(action="payment.recorded", actor=None, data={"again": number})


def _insert_forged_in_the_middle(trail: Trail) -> None:
    with owner_access():
        renumber_from(4, 1)
        _forged(4, _hash(3))


def _append_forged_at_the_head(trail: Trail) -> None:
    with owner_access():
        _forged(9, _hash(8))


def _swap(trail: Trail) -> None:
    with owner_access():
        swap_entries(2, 5)


def _timestamp_infinity(trail: Trail) -> None:
    with owner_access():
        set_column(4, "timestamp", "infinity")


def _data_nested_5000_levels(trail: Trail) -> None:
    with owner_access():
        _sql(
            "UPDATE auditing_auditentry SET data = %s::jsonb WHERE sequence = 4",
            ['{"a":' * 5000 + "1" + "}" * 5000],
        )


def _unknown_key_id(trail: Trail) -> None:
    with owner_access():
        _sql("UPDATE auditing_auditentry SET key_id = 'stolen' WHERE sequence = 3")


def _checkpoint_file_edited(trail: Trail) -> None:
    path = trail.checkpoint_file()
    document = json.loads(path.read_text())
    document["head_hash"] = "0" * 64
    path.write_text(json.dumps(document))


def _checkpoint_signed_by_an_untrusted_key(trail: Trail) -> None:
    stranger = base64.b64encode(secrets.token_bytes(32)).decode()
    checkpoint = Checkpoint(
        sequence=8, head_hash=_hash(8), entry_count=8, signed_at=dt.datetime.now(dt.UTC)
    )
    DirectorySink(trail.checkpoint_dir).write(checkpoint_sign(checkpoint, signing_key=stranger))


def _checkpoint_file_unreadable(trail: Trail) -> None:
    (trail.checkpoint_dir / "checkpoint-000000000000009-20990101T000000000000Z.json").write_text(
        "{ not json"
    )


def _truncation_acknowledged(trail: Trail) -> None:
    with owner_access():
        delete_entries(5, 6, 7, 8)
    audit_entry_append(
        action=CHECKPOINT_ACKNOWLEDGED,
        actor=UserFactory(),
        data={"reference": f"checkpoint 6 {trail.signed_hash}", "reason": "restored a backup"},
    )


def _truncation_acknowledged_by_a_forged_entry(trail: Trail) -> None:
    with owner_access():
        delete_entries(5, 6, 7, 8)
        _forged(
            5,
            _hash(4),
            action=CHECKPOINT_ACKNOWLEDGED,
            data=json.dumps({"reference": f"checkpoint 6 {trail.signed_hash}"}),
        )


TAMPER_MATRIX: dict[str, Callable[[Trail], None]] = {
    "untouched": lambda trail: None,
    "data-edited": _edit_data,
    "timestamp-2-years-ahead": _timestamp_two_years_ahead,
    "timestamp-before-predecessor": _timestamp_before_its_predecessor,
    "previous-hash-edited": _previous_hash,
    "current-hash-edited": _current_hash,
    "middle-deleted": _delete_middle,
    "tail-deleted-after-checkpoint": _delete_tail_after_checkpoint,
    "tail-cut-and-forged-again": _cut_and_reappend_forged,
    "tail-cut-and-appended-by-the-application": _cut_and_let_the_application_append_again,
    "forged-entry-inserted": _insert_forged_in_the_middle,
    "forged-entry-appended": _append_forged_at_the_head,
    "entries-swapped": _swap,
    "timestamp-infinity": _timestamp_infinity,
    "data-nested-5000-levels": _data_nested_5000_levels,
    "unknown-key-id": _unknown_key_id,
    "checkpoint-file-edited": _checkpoint_file_edited,
    "checkpoint-untrusted-key": _checkpoint_signed_by_an_untrusted_key,
    "checkpoint-file-unreadable": _checkpoint_file_unreadable,
    "truncation-acknowledged": _truncation_acknowledged,
    "truncation-acknowledged-by-forged-entry": _truncation_acknowledged_by_a_forged_entry,
}


@pytest.fixture
def trail(checkpoint_dir) -> Trail:
    """Eight committed entries with text that tests a dump's quoting, and a checkpoint of
    the first six kept in the folder and in the database's copy."""
    users = [UserFactory(), UserFactory()]
    note = 'comma, "quotes", back\\slash, tab\t, line\nbreak, é, 😀, \u2028, \\N'
    for number in range(8):
        audit_entry_append(
            action="payment.recorded" if number % 2 else "session.opened",
            actor=users[number % 2] if number % 3 else None,
            subject=users[0] if number % 2 else None,
            data={"n": number, "amount": Decimal("1500.50"), "note": note, "empty": ""},
        )
    head = AuditEntry.objects.get(sequence=6)
    checkpoint_sign_and_store(
        head=ChainHead(sequence=6, current_hash=head.current_hash),
        signed_at=dt.datetime.now(dt.UTC),
    )
    return Trail(checkpoint_dir=checkpoint_dir, signed_hash=head.current_hash)


def _builtin_findings() -> Findings:
    """The application's own full verification (verify_audit_trail --full)."""
    result = audit_trail_verify(options=options_parse(full=True), trigger=Trigger.MANUAL)
    findings = VerificationFinding.objects.filter(run_id=result.run_id).order_by("position")
    return [(finding.kind, finding.sequence) for finding in findings]


def _without_hmac(findings: Findings) -> Findings:
    return [(kind, sequence) for kind, sequence in findings if kind not in HMAC_KINDS]


def _export(command: str, folder: Path, name: str) -> Path:
    subprocess.run(  # noqa: S603 - the README's command, run as an auditor would
        ["bash", "-c", command],  # noqa: S607
        cwd=folder,
        env=_environment(DATABASE_URL=_database_url()),
        check=True,
        capture_output=True,
        timeout=120,
    )
    return folder / name


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", TAMPER_MATRIX.values(), ids=TAMPER_MATRIX.keys())
def test_the_standalone_verifier_agrees_with_the_application_on_every_tamper_case(
    trail, tmp_path, case
):
    case(trail)
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(settings.AUDIT_CHAIN_KEYS))
    public_keys = [
        argument for key in settings.AUDIT_TRUSTED_PUBLIC_KEYS for argument in ("--public-key", key)
    ]
    checkpoints = ["--checkpoints", str(trail.checkpoint_dir), *public_keys, "--json"]
    with_keys = _environment(AUDIT_CHAIN_KEYS_JSON=json.dumps(settings.AUDIT_CHAIN_KEYS))
    csv_file = _export(CSV_EXPORT, tmp_path, "trail.csv")
    jsonl_file = _export(JSONL_EXPORT, tmp_path, "trail.jsonl")

    runs = {
        "database, keys": verifier_run(
            "--database-url", _database_url(), "--keys-file", str(keys_file), *checkpoints
        ),
        "database, no key": verifier_run("--database-url", _database_url(), *checkpoints),
        "csv, keys": verifier_run("--dump", str(csv_file), *checkpoints, environment=with_keys),
        "csv, no key": verifier_run("--dump", str(csv_file), *checkpoints),
        "jsonl, keys": verifier_run(
            "--dump", str(jsonl_file), "--keys-file", str(keys_file), *checkpoints
        ),
        "jsonl, no key": verifier_run("--dump", str(jsonl_file), *checkpoints),
    }
    builtin = _builtin_findings()  # last: an intact run signs a new checkpoint

    expected = {}
    for name in runs:
        expected[name] = builtin if name.endswith("keys") else _without_hmac(builtin)
        if case is _truncation_acknowledged and name.endswith("no key"):
            # Without the key no acknowledgement can be told from a forged one.
            expected[name] = [("truncated", 6)]
    found = {name: run.findings for name, run in runs.items()}
    assert found == expected
    for name, run in runs.items():
        assert run.exit_code == (3 if expected[name] else 0), (name, run.stderr)
        assert run.outcome["hmacs_checked"] is name.endswith("keys")


@pytest.mark.django_db(transaction=True)
def test_both_report_a_stored_hash_that_is_not_ascii(trail, tmp_path):
    with owner_access():
        set_column(3, "current_hash", "é" * 64)
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(settings.AUDIT_CHAIN_KEYS))

    run = verifier_run("--database-url", _database_url(), "--keys-file", str(keys_file), "--json")

    assert run.findings == [("content_mismatch", 3), ("broken_link", 4)]
    assert _builtin_findings() == run.findings


@pytest.mark.django_db(transaction=True)
def test_from_the_database_the_checkpoint_table_is_read_too(trail):
    """The folder lost, the database's own copy of the checkpoint still shows the cut."""
    for path in trail.checkpoint_dir.iterdir():
        path.unlink()
    with owner_access():
        delete_entries(5, 6, 7, 8)

    run = verifier_run("--database-url", _database_url(), "--public-key", settings.AUDIT_PUBLIC_KEY)
    unchecked = verifier_run("--database-url", _database_url())

    assert run.exit_code == 3
    assert "Checkpoints: 1 read from the database's auditing_checkpoint table; 1 checked" in (
        run.stdout
    )
    assert "  truncated" in run.stdout and "#5" in run.stdout
    assert run.stdout.endswith("TAMPERING: 1 issue\n")
    assert unchecked.exit_code == 0
    assert "Checkpoints: not checked (no trusted public key" in unchecked.stdout


@pytest.mark.django_db(transaction=True)
def test_the_text_output_names_what_was_read_and_the_last_good_checkpoint(trail):
    head = AuditEntry.objects.get(sequence=8)

    run = verifier_run(
        "--database-url",
        _database_url(),
        *("--public-key", settings.AUDIT_PUBLIC_KEY, "--checkpoints", str(trail.checkpoint_dir)),
    )

    lines = run.stdout.splitlines()
    assert run.exit_code == 0, run
    assert lines[0] == f"Read: database {_database_url()}"
    assert lines[1] == "Entries checked: 8 (sequences 1 to 8, from the genesis)"
    assert lines[2] == f"Head: #8 {head.current_hash}"
    assert lines[3].startswith("HMACs not checked (no key)")
    assert lines[5].startswith(
        f"Checkpoints: 2 read from {trail.checkpoint_dir}; the database's auditing_checkpoint "
        "table; 1 checked against the chain"
    )
    assert lines[6].startswith(f"Last good checkpoint: #6 {trail.signed_hash} signed ")
    assert lines[4].startswith("Timestamps: never decreasing, none after ")
    assert lines[-1] == "intact"
