"""A run's findings as CSV: the alert's attachment and the admin's download."""

import csv
import io
from collections.abc import Iterator

from django.utils import timezone

from auditing.models import VerificationFinding, VerificationRun
from project.spreadsheets import csv_cell

FINDINGS_CSV_HEADER = (
    "position",
    "sequence",
    "kind",
    "kind_label",
    "timestamp",
    "detail",
    "expected",
    "stored",
    "reference",
    "table",
    "row",
    "field",
)


def findings_csv_rows(run: VerificationRun) -> Iterator[list[str]]:
    """The header, then one row per finding in the order found; times in TIME_ZONE.

    Stored values come from tampered rows, which whoever tampered chose: a value a
    spreadsheet would run as a formula gets a leading quote (the exact value is on the
    run's page and in the command's --json)."""
    yield list(FINDINGS_CSV_HEADER)
    findings = VerificationFinding.objects.filter(run=run).order_by("position")
    for finding in findings.iterator(chunk_size=2000):
        yield [
            csv_cell(value)
            for value in (
                str(finding.position),
                "" if finding.sequence is None else str(finding.sequence),
                finding.kind,
                str(finding.get_kind_display()),
                timezone.localtime(finding.timestamp).isoformat() if finding.timestamp else "",
                finding.detail,
                finding.expected,
                finding.stored,
                finding.reference,
                finding.table,
                finding.row,
                finding.field,
            )
        ]


def findings_csv(run: VerificationRun) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(findings_csv_rows(run))
    return buffer.getvalue()
