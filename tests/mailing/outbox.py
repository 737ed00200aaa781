"""For tests: what a worker does with the wake-ups a run's commits sent."""

from mailing.delivery import Delivery, email_deliver_now
from mailing.models import EmailMessage, EmailStatus


def outbox_deliver_queued() -> list[Delivery]:
    """Deliver every queued message, oldest first, as the workers woken on commit would
    once the run has committed. Returns what each delivery did."""
    queued = EmailMessage.objects.filter(status=EmailStatus.QUEUED).order_by("created_at", "pk")
    return [email_deliver_now(email_id=pk) for pk in queued.values_list("pk", flat=True)]
