#!/usr/bin/env bash
# The browser tests (tests/browser/) drive Debian's Chromium through Playwright, which never
# downloads a browser of its own: install the distribution's package when it is missing.
# Idempotent: nothing to do when /usr/bin/chromium is there.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing ($CHROMIUM) and the browser tests need it." >&2
    echo "Install Debian's package as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
fi

echo "Chromium is missing; installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists, and stale ones may name versions the mirror
# no longer serves: read them again before the one retry.
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    apt-get update -q
fi
if ! apt-get install -y -q chromium; then
    apt-get update -q
    apt-get install -y -q chromium
fi
"$CHROMIUM" --version
