from decimal import Decimal
from typing import Any

from django.core.management.base import CommandParser

from payments.money import format_money
from payments.reminders import MAX_DAYS, InvalidDays, not_counted_note, reminder_days_validate
from tasks.legacy_commands import LegacyOperationCommand as OperationCommand
from tasks.tasks import reconciliation_reminder

ACTION_LABELS = {
    "reminded": "reminded",
    "would_remind": "would remind",
    "already_reminded": "already reminded today",
    "failed": "FAILED",
}


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def money(amount: str | None, currency: str) -> str:
    return format_money(None if amount is None else Decimal(amount), currency=currency)


class Command(OperationCommand):
    help = (
        "Remind each agent of their closed sessions still waiting for reconciliation "
        "(in-app notification, and email when the agent has an address); with "
        "--email-admins, also send the administrators a summary. An agent, and the summary, "
        "are reminded at most once per local day."
    )
    task = reconciliation_reminder

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            default="1",
            metavar="DAYS",
            help=(
                "Look back over sessions closed since local midnight DAYS days ago "
                f"(1 to {MAX_DAYS}; default 1: yesterday and today)."
            ),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would be sent; send nothing, write nothing.",
        )
        parser.add_argument(
            "--email-admins",
            action="store_true",
            help="Also email the administrators (active staff with an address) a summary.",
        )

    def task_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        try:
            days = reminder_days_validate(options["days"])
        except InvalidDays as error:
            raise self.bad_input(str(error)) from None
        return {
            "days": days,
            "dry_run": options["dry_run"],
            "email_admins": options["email_admins"],
        }

    def render(self, summary: dict[str, Any]) -> None:
        if summary["status"] == "already_running":
            self.stderr.write(self.style.WARNING(summary["message"]))
            return
        if summary["dry_run"]:
            self.stdout.write(self.style.WARNING("Dry run: nothing will be sent or written."))
        days = summary["days"]
        if not summary["sessions"]:
            self.stdout.write(
                self.style.SUCCESS(f"No unreconciled sessions closed in the last {days} day(s).")
            )
            return
        currency = summary["currency"]
        self.stdout.write(
            f"Unreconciled sessions closed since {summary['since'][:16].replace('T', ' ')} "
            f"(last {days} day(s)): {plural(summary['sessions'], 'session')}, "
            f"{plural(summary['agents'], 'agent')}"
        )
        for group in summary["reminders"]:
            self._render_group(group, currency=currency)
        self.stdout.write(
            f"Overall: {plural(summary['sessions'], 'session')}, "
            f"{plural(summary['agents'], 'agent')}; total expected "
            f"{money(summary['total_expected'], currency)}; total discrepancy "
            + _discrepancy(summary["total_discrepancy"], summary["not_counted"], currency)
        )
        line = self._agents_line(summary) + "; " + self._admin_line(summary)
        style = self.style.ERROR if summary["status"] == "failed" else self.style.SUCCESS
        self.stdout.write(style(line))

    def _render_group(self, group: dict[str, Any], *, currency: str) -> None:
        action = ACTION_LABELS[group["action"]]
        if group["action"] == "reminded":
            action += _email_note(group["email"]) if group["agent_email"] else ", in-app only"
        elif group["action"] == "would_remind":
            action += " by email" if group["agent_email"] else ", in-app only (no email address)"
        elif group["action"] == "failed":
            action += f": {group['error']}"
        style = {"failed": self.style.ERROR, "already_reminded": self.style.WARNING}.get(
            group["action"], str
        )
        self.stdout.write(style(f"{group['agent']} {group['agent_name']}  -> {action}"))
        for row in group["sessions"]:
            discrepancy = (
                "not counted" if row["discrepancy"] is None else money(row["discrepancy"], currency)
            )
            self.stdout.write(
                f"  {row['number']}  closed {row['closed_at'][:16].replace('T', ' ')}  "
                f"expected {money(row['expected_balance'], currency)}  "
                f"discrepancy {discrepancy}"
            )
        self.stdout.write(
            f"  Total expected: {money(group['total_expected'], currency)}; total discrepancy: "
            + _discrepancy(group["total_discrepancy"], group["not_counted"], currency)
        )

    def _agents_line(self, summary: dict[str, Any]) -> str:
        groups = summary["reminders"]
        skipped = f"{summary['agents_skipped_already_reminded']} already reminded today"
        failed = f", {summary['agents_failed']} failed" if summary["agents_failed"] else ""
        if summary["dry_run"]:
            by_email = sum(1 for g in groups if g["action"] == "would_remind" and g["agent_email"])
            return (
                f"Would remind {plural(summary['agents_would_remind'], 'agent')} "
                f"({by_email} by email, {summary['in_app_only']} in-app only), {skipped}"
            )
        reminded = [g for g in groups if g["action"] == "reminded"]
        emails = {
            status: sum(1 for g in reminded if g["email"] == status)
            for status in ("sent", "failed", "queued")
        }
        parts = [f"{plural(emails['sent'], 'email')} sent"]
        if emails["failed"]:
            parts.append(f"{emails['failed']} failed, will be retried")
        if emails["queued"]:
            parts.append(f"{emails['queued']} queued")
        parts.append(f"{summary['in_app_only']} in-app only")
        return (
            f"Reminded {plural(summary['agents_reminded'], 'agent')} ({', '.join(parts)}), "
            f"{skipped}{failed}"
        )

    def _admin_line(self, summary: dict[str, Any]) -> str:
        admin = summary["admin_summary"]
        status = admin["status"]
        who = plural(len(admin["recipients"]), "administrator")
        return {
            "not_requested": "no admin summary (use --email-admins)",
            "nothing_to_send": "no admin summary: nothing to reconcile",
            "no_recipients": "admin summary NOT sent: no administrator has an email address",
            "already_sent": "admin summary already sent today",
            "would_send": f"admin summary would go to {who}",
            "sent": f"admin summary sent to {who}",
            "queued": f"admin summary queued for {who}",
            "failed": f"admin summary to {who} failed, will be retried",
            "error": f"admin summary FAILED: {admin.get('error', '')}",
        }[status] + (". Nothing was sent or written." if summary["dry_run"] else "")


def _email_note(status: str | None) -> str:
    return {
        "sent": ", email sent",
        "failed": ", email failed (will be retried)",
        "queued": ", email queued",
    }.get(status or "", ", in-app only")


def _discrepancy(amount: str | None, not_counted: int, currency: str) -> str:
    text = "not counted" if amount is None else money(amount, currency)
    note = not_counted_note(not_counted)
    return f"{text} {note}" if note else text
