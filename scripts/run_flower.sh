#!/bin/sh
# Flower shows task arguments and results: never run it without authentication.
set -eu
if [ -z "${FLOWER_BASIC_AUTH:-}" ] || ! printf '%s' "$FLOWER_BASIC_AUTH" | grep -q '^[^:][^:]*:..*$'; then
    echo "Flower refuses to start: set FLOWER_BASIC_AUTH=user:password" >&2
    exit 2
fi
exec celery -A project flower --address="${FLOWER_ADDRESS:-0.0.0.0}" --port="${FLOWER_PORT:-5555}" \
    --basic-auth="$FLOWER_BASIC_AUTH" --persistent=False
