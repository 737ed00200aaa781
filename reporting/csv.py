"""The commission report's CSV attachment: one row per agent, amounts as plain decimals."""

import csv
import io

from reporting.figures import LINE_AMOUNTS, CommissionFigures


def _csv_cell(text: str) -> str:
    # A spreadsheet would run a name starting with = + - or @ as a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def commission_report_csv(*, figures: CommissionFigures) -> str:
    currency = figures.currency
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "Agent code",
            "Agent name",
            "Transactions",
            f"Tax collected ({currency})",
            f"Commission earned ({currency})",
            f"Pending ({currency})",
            f"Paid ({currency})",
            f"Cancelled ({currency})",
        ]
    )
    writer.writerows(
        [
            _csv_cell(row.agent_code),
            _csv_cell(row.agent_name),
            row.transactions,
            *(getattr(row, name) for name in LINE_AMOUNTS),
        ]
        for row in figures.agents
    )
    return buffer.getvalue()
