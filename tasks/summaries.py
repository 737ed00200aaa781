"""The small JSON-able summary every operation returns, and how its status maps to exits."""

from typing import Any

STATUS_EXIT_CODES = {
    "ok": 0,
    "failed": 1,
    "tampering": 3,
    "already_running": 4,
}


def already_running_summary(*, operation: str, trigger: str) -> dict[str, Any]:
    return {
        "operation": operation,
        "trigger": trigger,
        "status": "already_running",
        "message": f"{operation} is already running; this run did nothing.",
    }
