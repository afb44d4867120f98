#!/bin/sh
# Conventional: one batch job of 16 nodes whose child instance runs one parallel
# application over the whole allocation.
set -e
here=$(dirname "$0")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
id=$(strato batch -N16 -n16 -c4 --output="$out" --wrap strato run -N16 -n64 "$here/app.sh")
echo "batch job $id: a child instance over 16 nodes runs strato run -N16 -n64 app"
strato job wait "$id"
cat "$out"
