"""Running a management command the way cron does, for tests: what it printed and the exit
code the shell would see, instead of an exception."""

from dataclasses import dataclass
from io import StringIO

from django.core.management import CommandError, call_command


@dataclass(frozen=True)
class CommandRun:
    stdout: str
    stderr: str
    exit_code: int


def command_run(name: str, *args: str, expect_exit: int | None = 0) -> CommandRun:
    """Run ``name`` in-process. With ``expect_exit`` (0 by default) a different exit code
    fails the test, showing what the command printed; None accepts any."""
    out, err = StringIO(), StringIO()
    exit_code = 0
    try:
        call_command(name, *args, stdout=out, stderr=err)
    except CommandError as error:
        exit_code = error.returncode
        err.write(f"CommandError: {error}\n")
    if expect_exit is not None:
        assert exit_code == expect_exit, (exit_code, out.getvalue(), err.getvalue())
    return CommandRun(stdout=out.getvalue(), stderr=err.getvalue(), exit_code=exit_code)
