"""TRANSITION adapter: replaced by the typed operation."""

from dataclasses import dataclass

from tasks.runner import Operation


@dataclass(frozen=True)
class Options:
    start_date: str | None = None
    end_date: str | None = None
    full: bool = False
    alert_on_tampering: bool = False
    email: str | None = None


def options_parse(**kwargs) -> Options:
    return Options(**kwargs)


def run(*, options: Options, trigger: str) -> dict:
    from auditing.runs import verification_run_perform

    return verification_run_perform(
        start_date=options.start_date,
        end_date=options.end_date,
        full=options.full,
        alert_on_tampering=options.alert_on_tampering,
        email=options.email,
        trigger=trigger,
    )


OPERATION = Operation(name="verify_audit_trail", parse=options_parse, run=run)
