"""Email in the background: a worker delivers a message as soon as its work commits, and
the sweeper, every minute, delivers whatever is due (queued mail no worker took, retries,
deliveries that died). Neither retries through Celery: the outbox rows carry the retry
times, so a lost broker message loses nothing."""

from typing import Any

from celery import shared_task

from mailing.delivery import email_deliver_now, outbox_sweep


# The wire name predates the mailing app; keeping it lets messages already waiting in the
# broker find their task after an upgrade.
@shared_task(
    bind=True,
    name="tasks.email_deliver",
    acks_late=True,
    # One message: a few SMTP steps of at most EMAIL_TIMEOUT each.
    soft_time_limit=90,
    time_limit=120,
)
def email_deliver(self, *, email_id: int) -> dict[str, Any]:
    delivery = email_deliver_now(email_id=email_id)
    return {"email_id": email_id, "status": delivery.outcome.value}


@shared_task(
    bind=True,
    name="mailing.email_sweep",
    acks_late=True,
    # New deliveries stop after 40 s; the last one may still wait on a slow server.
    soft_time_limit=150,
    time_limit=180,
)
def email_sweep(self, *, trigger: str = "task", limit: int | None = None) -> dict[str, Any]:
    result = outbox_sweep(limit=limit, trigger=trigger)
    return {
        "sent": result.sent,
        "failed": result.failed,
        "left": result.left,
        "stopped_early": result.stopped_early,
    }
