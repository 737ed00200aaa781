"""generate_commission_report's text output: the period, the overall, by-status and by-agent
tables, the checks, what was stored, who was sent the report now and who already had it."""

from decimal import Decimal

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone

from payments.money import format_money
from tasks.operations.generate_commission_report import CommissionReportResult
from tasks.rendering.emails import email_outcomes_text
from tasks.results import OperationStatus

# An earlier email in one of these states is delivered, or will be, without anyone's help.
ON_THEIR_WAY = ("queued", "sending", "sent")
AGENT_HEADERS = [
    "Agent",
    "Name",
    "Transactions",
    "Tax collected",
    "Earned",
    "Pending",
    "Paid",
    "Cancelled",
]


def commission_report_render(
    result: CommissionReportResult, *, out: OutputWrapper, style: Style
) -> None:
    def money(amount: Decimal) -> str:
        return format_money(amount, currency=result.currency)

    start = timezone.localtime(result.period_start)
    end = timezone.localtime(result.period_end)
    out.write(style.MIGRATE_HEADING(f"Commission report \N{EM DASH} {result.period_label}"))
    out.write(
        f"Period {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({result.time_zone}), end excluded"
    )
    if result.dry_run:
        out.write(style.WARNING("Dry run: nothing will be stored or sent."))
    totals = result.totals
    out.write("")
    out.write(style.MIGRATE_LABEL("Overall"))
    _table(
        out,
        ["", ""],
        [
            ["Transactions (completed)", str(totals.transactions)],
            ["Voided (not counted)", str(totals.voided_transactions)],
            ["Tax collected", money(totals.tax_collected)],
            ["Total commissions (pending + paid)", money(totals.commissions_total)],
        ],
        header=False,
    )
    out.write("")
    out.write(style.MIGRATE_LABEL("By payment status"))
    by_status = result.by_status
    _table(
        out,
        ["Status", "Count", "Amount"],
        [
            [label, str(figures.count), money(figures.amount)]
            for label, figures in (
                ("Pending", by_status.pending),
                ("Paid", by_status.paid),
                ("Cancelled", by_status.cancelled),
            )
        ],
    )
    out.write("")
    out.write(style.MIGRATE_LABEL("By agent"))
    if result.agents:
        _table(
            out,
            AGENT_HEADERS,
            [
                [
                    row.agent,
                    row.agent_name,
                    str(row.transactions),
                    *(
                        money(amount)
                        for amount in (
                            row.tax_collected,
                            row.commission_earned,
                            row.pending_amount,
                            row.paid_amount,
                            row.cancelled_amount,
                        )
                    ),
                ]
                for row in result.agents
            ],
        )
    else:
        out.write("  No payments or commissions in this period.")
    out.write("")
    failed = [check for check in result.checks if not check.ok]
    for check in failed:
        out.write(
            style.ERROR(f"Check failed: {check.check} (total {check.total}, parts {check.parts})")
        )
    if not failed:
        out.write(f"Checks: all {len(result.checks)} totals reconcile with their parts.")
    _outcome_render(result, out=out, style=style)


def _outcome_render(result: CommissionReportResult, *, out: OutputWrapper, style: Style) -> None:
    if result.warning:
        out.write(style.WARNING(result.warning))
    if result.status != OperationStatus.OK:
        return
    if result.already_generated:
        generated_at = timezone.localtime(result.generated_at)
        out.write(
            f"Report #{result.report_id} was already generated at "
            f"{generated_at:%Y-%m-%d %H:%M}: its stored figures are shown and sent."
        )
    if result.already_had:
        out.write(
            "Already had it, not sent again: "
            + ", ".join(
                f"{earlier.address} (email #{earlier.email_id}, {earlier.email_status})"
                for earlier in result.already_had
            )
        )
    for earlier in result.already_had:
        if earlier.email_status not in ON_THEIR_WAY:
            out.write(
                style.WARNING(
                    f"The email that carried it to {earlier.address} (#{earlier.email_id}) is "
                    f"{earlier.email_status} so far: the email log (admin → "
                    "Mailing → Email messages) shows whether it will be "
                    "retried; --resend sends the report again."
                )
            )
    new_recipients = ", ".join(result.new_recipients)
    again = " again (--resend)" if result.resend and result.already_generated else ""
    if result.dry_run:
        if result.new_recipients:
            out.write(f"Would email{again}: {new_recipients}. Nothing was stored or sent.")
        else:
            out.write("Would email nobody. Nothing was stored or sent.")
        return
    stored = "" if result.already_generated else f"Report #{result.report_id} stored; "
    if not result.new_recipients:
        if stored:
            out.write(style.SUCCESS(f"Report #{result.report_id} stored."))
        elif result.recipients:
            out.write(style.SUCCESS("Nobody new to send it to."))
        return
    outcome = f"{stored}email{again} to {new_recipients}: {email_outcomes_text(result.emails)}"
    out.write(
        (style.ERROR if result.emails.failed else style.SUCCESS)(outcome[:1].upper() + outcome[1:])
    )


def _table(
    out: OutputWrapper, headers: list[str], rows: list[list[str]], *, header: bool = True
) -> None:
    """Text left, numbers and amounts right, two spaces between columns."""
    lines = [headers, *rows] if header else rows
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    numeric = [
        bool(rows) and all(row[column][:1].isdigit() for row in rows)
        for column in range(len(headers))
    ]
    for line in lines:
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(line, widths, numeric, strict=True)
        ]
        out.write(("  " + "  ".join(cells)).rstrip())
