#!/usr/bin/env bash
# Fill the French catalogue of each app from every catalogue (current and at a git ref),
# so that a string moved to another app keeps its translation.
# Usage: po_fill.sh [REF [APP ...]]  (default: HEAD, every app)
set -euo pipefail
ref=${1:-HEAD}
shift || true
targets=()
for app in "$@"; do targets+=("$app/locale/fr/LC_MESSAGES/django.po"); done
[ ${#targets[@]} -gt 0 ] || targets=(*/locale/fr/LC_MESSAGES/django.po)
tmp=$(mktemp -d)
for po in */locale/fr/LC_MESSAGES/django.po; do
  cp "$po" "$tmp/$(dirname "$(dirname "$(dirname "$(dirname "$po")")")")-current.po"
  git show "$ref:$po" > "$tmp/$(dirname "$(dirname "$(dirname "$(dirname "$po")")")")-ref.po" 2>/dev/null || true
done
msgcat --use-first "$tmp"/*.po -o "$tmp/compendium.po"
cat > "$tmp/empty.po" <<'HEADER'
msgid ""
msgstr ""
"Project-Id-Version: cash-office\n"
"PO-Revision-Date: 2026-12-01 00:00+0300\n"
"Last-Translator: cash office developers\n"
"Language-Team: French\n"
"Language: fr\n"
"MIME-Version: 1.0\n"
"Content-Type: text/plain; charset=UTF-8\n"
"Content-Transfer-Encoding: 8bit\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\n"
HEADER
for po in "${targets[@]}"; do
  msgmerge -q --no-fuzzy-matching --compendium "$tmp/compendium.po" -o "$po" "$tmp/empty.po" "$po"
  msgattrib --no-obsolete -o "$po" "$po"
done
rm -rf "$tmp"
