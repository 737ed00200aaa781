"""audit_checkpoint: every hour, check what was appended since the last checkpoint and sign
the head, so that a cut of the chain's tail shows within the hour, outside the database.

It is verify_audit_trail without a period: the checkpoints against the chain, the entries
since the newest good one, and the append-only enforcement.
"""

from dataclasses import dataclass
from typing import Any

from tasks.inputs import flag_option, no_unknown_arguments
from tasks.operations.verify_audit_trail import Period, Result, run_by_position
from tasks.results import Trigger
from tasks.runner import Operation

NAME = "audit_checkpoint"


@dataclass(frozen=True)
class Options:
    alert_on_tampering: bool = False


def options_parse(*, alert_on_tampering: Any = False, **unknown: Any) -> Options:
    no_unknown_arguments(unknown, operation=NAME, known=("alert_on_tampering", "trigger"))
    return Options(alert_on_tampering=flag_option(alert_on_tampering, option="alert_on_tampering"))


def audit_checkpoint(*, options: Options, trigger: Trigger) -> Result:
    return run_by_position(
        period=Period(full=False, tail_only=True),
        trigger=trigger,
        alert_to=[] if options.alert_on_tampering else None,
        report_to_auditors=False,
    )


OPERATION = Operation(name=NAME, parse=options_parse, run=audit_checkpoint)
