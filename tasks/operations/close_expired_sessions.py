"""TRANSITION adapter: replaced by the typed operation."""

from dataclasses import dataclass

from tasks.runner import Operation


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    force: bool = False


def options_parse(*, dry_run: bool = False, force: bool = False) -> Options:
    return Options(dry_run=dry_run, force=force)


def run(*, options: Options, trigger: str) -> dict:
    from payments.expiry import expired_sessions_close

    return expired_sessions_close(dry_run=options.dry_run, force=options.force, trigger=trigger)


OPERATION = Operation(
    name="close_expired_sessions",
    parse=options_parse,
    run=run,
    takes_lock=lambda options: not options.dry_run,
)
