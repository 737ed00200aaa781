"""Email delivery in the background: the retries of a message whose first try failed."""

from typing import Any

from celery import shared_task

from mailing.delivery import MAX_DELIVERY_ATTEMPTS, email_send


# The wire name predates the mailing app; keeping it lets retries already waiting in the
# broker find their task after an upgrade.
@shared_task(
    bind=True,
    name="tasks.email_deliver",
    acks_late=True,
    max_retries=MAX_DELIVERY_ATTEMPTS - 1,
    soft_time_limit=120,
    time_limit=180,
)
def email_deliver(self, *, email_id: int) -> dict[str, Any]:
    if email_send(email_id=email_id):
        return {"email_id": email_id, "status": "sent"}
    if self.request.called_directly or self.request.retries >= self.max_retries:
        return {"email_id": email_id, "status": "failed"}
    # 2, 4, 8, 16, 32 minutes: a mail server outage rarely lasts less.
    raise self.retry(countdown=120 * 2**self.request.retries)
