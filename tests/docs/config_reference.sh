#!/usr/bin/env bash
# The key table of docs/configuration.md is what `ddp-train --help-config-markdown` prints from the
# schema: a key added, renamed, re-ranged or re-worded in src/config/Schema.cpp and not in the page
# fails here, with the difference. `--write` puts the binary's table into the page instead.
#   tests/docs/config_reference.sh [--write]      (DDP_TRAIN: the binary, default build/ddp-train)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
page=${DDP_CONFIG_DOCS:-$root/docs/configuration.md}
train=${DDP_TRAIN:-$root/build/ddp-train}
begin='<!-- BEGIN KEYS'
end='<!-- END KEYS -->'
for marker in "$begin" "$end"; do
  [ "$(grep -c -- "^$marker" "$page")" -eq 1 ] || { echo "FAIL: $page needs exactly one line starting '$marker'"; exit 1; }
done
expected=$(mktemp) && trap 'rm -f "$expected"' EXIT
"$train" --help-config-markdown >"$expected"
if [ "${1:-}" = --write ]; then
  # The page up to and with the BEGIN line, the binary's table, the END line and the rest.
  { sed "/^$begin/q" "$page"; cat "$expected"; sed -n "/^$end/,\$p" "$page"; } >"$page.new" && mv "$page.new" "$page"
  echo "wrote the key table of $page"
  exit 0
fi
if ! diff -u --label "$page (committed)" --label "$train --help-config-markdown" \
     <(sed -n "/^$begin/,/^$end/p" "$page" | sed '1d;$d') "$expected"; then
  echo "FAIL: the key table of $page differs from the schema; regenerate it with: tests/docs/config_reference.sh --write"
  exit 1
fi
echo "ok: the key table of $(basename "$page") is the schema's ($(grep -c '^| `' "$expected") keys)"
