"""TRANSITION adapter: replaced by the typed operation."""

from dataclasses import dataclass

from tasks.runner import Operation


@dataclass(frozen=True)
class Options:
    days: int = 1
    dry_run: bool = False
    email_admins: bool = False


def options_parse(**kwargs) -> Options:
    return Options(**kwargs)


def run(*, options: Options, trigger: str) -> dict:
    from payments.reminders import reconciliation_reminders_send

    return reconciliation_reminders_send(
        days=options.days,
        dry_run=options.dry_run,
        email_admins=options.email_admins,
        trigger=trigger,
    )


OPERATION = Operation(
    name="reconciliation_reminder",
    parse=options_parse,
    run=run,
    takes_lock=lambda options: not options.dry_run,
)
