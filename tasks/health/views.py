"""/health/ (liveness) and /health/ready/ (readiness), as JSON.

A small view rather than django-health-check: its checks are the database, caches,
storage and a Celery ping through a worker, and it answers 500 on failure; what matters
here (beat's heartbeat, overdue jobs, the outbox) would be custom plugins anyway, and its
database check writes a row on every probe. Two views give the exact JSON and 503, read
only, without a new app and its migrations.
"""

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from tasks.health.selectors import health_snapshot, snapshot_json


@never_cache
@require_safe
@transaction.non_atomic_requests
def liveness(request: HttpRequest) -> JsonResponse:
    """The process answers: no dependency is asked, so a database outage never gets the
    web container restarted (that would not bring the database back)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
# No request transaction (ATOMIC_REQUESTS): a database that is down must give a 503 with
# the reason, not a 500 before the view runs.
@transaction.non_atomic_requests
def readiness(request: HttpRequest) -> JsonResponse:
    snapshot = health_snapshot(broker_timeout=2.0)
    return JsonResponse(snapshot_json(snapshot), status=200 if snapshot.ok else 503)
