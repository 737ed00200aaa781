from decimal import Decimal
from typing import Any

from django.core.management.base import CommandParser

from mailing.addresses import InvalidEmailAddress, email_address_validate
from payments.money import format_money
from reporting.periods import local_today, report_period_resolve
from tasks.legacy_commands import LegacyOperationCommand as OperationCommand
from tasks.tasks import generate_commission_report


class Command(OperationCommand):
    help = (
        "Report the commissions of one complete month (default: the previous month, in "
        "TIME_ZONE): overall, by payment status and by agent. The report is stored and emailed "
        "(HTML and text, with a CSV of the agents) to --email or to every active staff user "
        "with an email address."
    )
    task = generate_commission_report

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--month",
            type=int,
            metavar="MONTH",
            help="Month to report on, 1-12. Defaults to the previous month.",
        )
        parser.add_argument(
            "--year",
            type=int,
            metavar="YEAR",
            help="Year of --month (2000 to this year; needs --month). Defaults to this year.",
        )
        parser.add_argument(
            "--email",
            metavar="EMAIL",
            help="Send the report to this address only, instead of all active staff users.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Build and print the report; store nothing and send nothing.",
        )

    def task_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        try:
            year, month = report_period_resolve(
                year=options["year"], month=options["month"], today=local_today()
            )
        except ValueError as error:
            raise self.bad_input(str(error)) from error
        email = options["email"]
        if email is not None:
            try:
                email = email_address_validate(email)
            except InvalidEmailAddress as error:
                raise self.bad_input(f"--email: {error}.") from error
        return {"year": year, "month": month, "email": email, "dry_run": options["dry_run"]}

    def render(self, summary: dict[str, Any]) -> None:
        if "totals" not in summary:
            # Already running, or refused: the exit's one-line message says why.
            return
        currency = summary["currency"]

        def money(amount: str) -> str:
            return format_money(Decimal(amount), currency=currency)

        write = self.stdout.write
        title = f"Commission report \N{EM DASH} {summary['period_label']}"
        write(self.style.MIGRATE_HEADING(title))
        write(
            f"Period {summary['period_start'][:16].replace('T', ' ')} to "
            f"{summary['period_end'][:16].replace('T', ' ')} ({summary['time_zone']}), end excluded"
        )
        if summary["dry_run"]:
            write(self.style.WARNING("Dry run: nothing will be stored or sent."))
        totals = summary["totals"]
        write("")
        write(self.style.MIGRATE_LABEL("Overall"))
        self._table(
            ["", ""],
            [
                ["Transactions (completed)", str(totals["transactions"])],
                ["Voided (not counted)", str(totals["voided_transactions"])],
                ["Tax collected", money(totals["tax_collected"])],
                ["Total commissions (pending + paid)", money(totals["commissions_total"])],
            ],
            header=False,
        )
        write("")
        write(self.style.MIGRATE_LABEL("By payment status"))
        self._table(
            ["Status", "Count", "Amount"],
            [
                [status.capitalize(), str(figures["count"]), money(figures["amount"])]
                for status, figures in summary["by_status"].items()
            ],
        )
        write("")
        write(self.style.MIGRATE_LABEL("By agent"))
        if summary["agents"]:
            self._table(
                [
                    "Agent",
                    "Name",
                    "Transactions",
                    "Tax collected",
                    "Earned",
                    "Pending",
                    "Paid",
                    "Cancelled",
                ],
                [
                    [
                        row["agent"],
                        row["agent_name"],
                        str(row["transactions"]),
                        money(row["tax_collected"]),
                        money(row["commission_earned"]),
                        money(row["pending_amount"]),
                        money(row["paid_amount"]),
                        money(row["cancelled_amount"]),
                    ]
                    for row in summary["agents"]
                ],
            )
        else:
            write("  No payments or commissions in this period.")
        write("")
        failed = [check for check in summary["checks"] if not check["ok"]]
        if failed:
            for check in failed:
                write(
                    self.style.ERROR(
                        f"Check failed: {check['check']} (total {check['total']}, "
                        f"parts {check['parts']})"
                    )
                )
        else:
            write(f"Checks: all {len(summary['checks'])} totals reconcile with their parts.")
        self._render_outcome(summary)

    def _render_outcome(self, summary: dict[str, Any]) -> None:
        if summary.get("warning"):
            self.stdout.write(self.style.WARNING(summary["warning"]))
        if summary["status"] != "ok" or summary["already_generated"]:
            return
        recipients = ", ".join(summary["recipients"]) or "nobody"
        if summary["dry_run"]:
            self.stdout.write(f"Would email: {recipients}. Nothing was stored or sent.")
            return
        emails = summary["emails"]
        if not summary["recipients"]:
            self.stdout.write(self.style.SUCCESS(f"Report #{summary['report_id']} stored."))
            return
        labels = {"sent": "sent", "failed": "failed (will be retried)", "queued": "queued"}
        counts = ", ".join(f"{emails[key]} {label}" for key, label in labels.items() if emails[key])
        outcome = f"Report #{summary['report_id']} stored; email to {recipients}: {counts}"
        style = self.style.ERROR if emails["failed"] else self.style.SUCCESS
        self.stdout.write(style(outcome))

    def _table(self, headers: list[str], rows: list[list[str]], *, header: bool = True) -> None:
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
            self.stdout.write(("  " + "  ".join(cells)).rstrip())
