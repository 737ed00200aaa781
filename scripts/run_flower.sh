#!/bin/sh
# Flower shows task arguments and results: never run it without authentication.
# Flower reads FLOWER_BASIC_AUTH from the environment itself: passed as --basic-auth, the
# credentials would show in `ps` to every user of the machine.
set -eu
if [ -z "${FLOWER_BASIC_AUTH:-}" ] || ! printf '%s' "$FLOWER_BASIC_AUTH" | grep -q '^[^:][^:]*:..*$'; then
    echo "Flower refuses to start: set FLOWER_BASIC_AUTH=user:password" >&2
    exit 2
fi
export FLOWER_BASIC_AUTH
# This machine only unless told otherwise: compose sets 0.0.0.0 inside its container and
# publishes the port on the host's 127.0.0.1 alone.
exec celery -A project flower --address="${FLOWER_ADDRESS:-127.0.0.1}" --port="${FLOWER_PORT:-5555}" \
    --persistent=False
