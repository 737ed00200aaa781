"""close_expired_sessions' text output: one line per expired session, then the totals and
how the agents' emails fared."""

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone

from payments.money import format_money
from tasks.operations.close_expired_sessions import SKIP_REASON, Result, SessionAction, SessionRow
from tasks.rendering.emails import email_outcomes_text

ACTION_LABELS = {
    SessionAction.CLOSED: "closed",
    SessionAction.WOULD_CLOSE: "would close",
    SessionAction.SKIPPED: "skipped",
    SessionAction.FAILED: "FAILED",
    SessionAction.ALREADY_HANDLED: "busy in another process; left for the next run",
}


def expired_sessions_render(result: Result, *, out: OutputWrapper, style: Style) -> None:
    if result.dry_run:
        out.write(style.WARNING("Dry run: nothing will be written."))
    out.write(f"Open sessions older than {result.timeout_hours} h: {len(result.sessions)}")
    for row in result.sessions:
        line = _session_line(row, currency=result.currency)
        out.write({"failed": style.ERROR, "skipped": style.WARNING}.get(row.action, str)(line))
    if result.dry_run:
        out.write(
            f"Would close {result.would_close}, would skip {result.skipped} "
            f"({SKIP_REASON}). Nothing was written."
        )
        return
    totals = (
        f"Closed {result.closed}, skipped {result.skipped} ({SKIP_REASON}), failed {result.failed}"
    )
    if result.already_handled:
        totals += f", {result.already_handled} busy in another process (next run retries)"
    out.write((style.ERROR if result.failed else style.SUCCESS)(totals))
    if result.emails.any():
        out.write(f"Emails to agents: {email_outcomes_text(result.emails)}")


def _session_line(row: SessionRow, *, currency: str) -> str:
    action = ACTION_LABELS[row.action]
    if row.action == SessionAction.SKIPPED:
        action += f" ({row.reason})"
        if row.agent_notified:
            action += ", agent notified"
    if row.action == SessionAction.FAILED:
        action += f": {row.error}"
    return (
        f"  {row.session}  {row.agent} {row.agent_name}  "
        f"opened {timezone.localtime(row.opened_at):%Y-%m-%d %H:%M}  "
        f"{row.transactions} transaction(s)  "
        f"expected {format_money(row.expected_balance, currency=currency)}  -> {action}"
    )
