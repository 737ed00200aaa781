"""TRANSITION adapter: replaced by the typed operation."""

from dataclasses import dataclass

from tasks.runner import Operation


@dataclass(frozen=True)
class Options:
    year: int | None = None
    month: int | None = None
    email: str | None = None
    dry_run: bool = False


def options_parse(
    *,
    year: int | None = None,
    month: int | None = None,
    email: str | None = None,
    dry_run: bool = False,
) -> Options:
    return Options(year=year, month=month, email=email, dry_run=dry_run)


def run(*, options: Options, trigger: str) -> dict:
    from reporting.services import commission_report_generate

    return commission_report_generate(
        year=options.year,
        month=options.month,
        email=options.email,
        dry_run=options.dry_run,
        trigger=trigger,
    )


OPERATION = Operation(
    name="generate_commission_report",
    parse=options_parse,
    run=run,
    takes_lock=lambda options: not options.dry_run,
)
