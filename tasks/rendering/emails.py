"""How every command says what became of the mail a run wrote: only what really happened.

Mail leaves through the outbox after the run commits (a worker, or the sweeper under
cron), so a run's messages are usually still queued when it prints; "sent" appears only
once the mail server has accepted a message, and "will be retried" only for a failure
the sweeper will retry.
"""

from mailing.selectors import EmailOutcomes


def email_outcomes_text(outcomes: EmailOutcomes) -> str:
    """``queued (2), sending (1), sent (1), failed, will be retried by the sweeper (1)``;
    ``none``."""
    parts = []
    if outcomes.queued:
        parts.append(f"queued ({outcomes.queued})")
    if outcomes.sending:
        parts.append(f"sending ({outcomes.sending})")
    if outcomes.sent:
        parts.append(f"sent ({outcomes.sent})")
    if outcomes.failed:
        parts.append(f"failed, will be retried by the sweeper ({outcomes.failed})")
    return ", ".join(parts) or "none"
