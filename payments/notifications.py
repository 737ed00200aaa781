import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.functional import Promise

from mailing.addresses import InvalidEmailAddress, email_address_validate
from mailing.rendering import email_language
from mailing.services import email_queue
from payments.models import Agent, CashSession, Notification, NotificationKind

logger = logging.getLogger(__name__)


def agent_notify(
    *,
    agent: Agent,
    kind: NotificationKind,
    title: str | Promise,
    message: str | Promise,
    template: str,
    context: Mapping[str, Any],
    session: CashSession | None = None,
) -> tuple[Notification, int | None]:
    """Leave an in-app notification, and email it too when the agent has an address.

    Call inside the transaction of the change it reports: both commit with it, and the
    email goes out only after the commit. Returns the notification and the email's id.
    ``title`` and ``message`` may be lazy: they are stored in the email language.
    """
    with translation.override(email_language()):
        title, message = str(title), str(message)
    notification = Notification.objects.create(
        agent=agent, kind=kind, session=session, title=title, message=message
    )
    email_id = None
    try:
        address = email_address_validate(agent.email) if agent.email else None
    except InvalidEmailAddress as error:
        # A bad stored address must not block the change it reports: in-app only.
        logger.warning(
            "Agent %s has an unusable email address (%s); in-app only", agent.code, error
        )
        address = None
    if address:
        email = email_queue(
            purpose=str(kind),
            recipients=[address],
            subject=title,
            template=template,
            context={
                "agent": agent,
                "session": session,
                "time_zone": settings.TIME_ZONE,
                **context,
            },
            about=session.number if session else agent.code,
            subject_object=session or agent,
        )
        email_id = email.pk
    return notification, email_id
