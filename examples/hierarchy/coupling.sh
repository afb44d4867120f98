#!/bin/sh
# The hierarchical workflows: conventional, then emerging with coupling. Run in
# an instance (make demo does it).
set -e
here=$(cd "$(dirname "$0")" && pwd)
DEMO_DIR=$(mktemp -d)
DEMO_EXAMPLES=$here  # batch scripts run from a copy: this is where the others are
export DEMO_DIR DEMO_EXAMPLES
trap 'rm -rf "$DEMO_DIR"' EXIT

echo "== conventional: one application over a whole batch allocation"
"$here/conventional.sh"

echo "== emerging: a batch job with three sub-instances"
mkfifo "$DEMO_DIR/ai.id" "$DEMO_DIR/retrained"
em=$(strato batch --output="$DEMO_DIR/emerging.out" "$here/emerging.sh")

echo "== coupling: a separate client retrains the AI instance, knowing only its URI"
read -r ai < "$DEMO_DIR/ai.id"
[ "$ai" != failed ] || { cat "$DEMO_DIR/emerging.out"; exit 1; }
ai_uri=$(strato uri --wait "$em/$ai")
echo "ai instance: job $em/$ai at $ai_uri"
rt=$(STRATO_URI=$ai_uri strato batch --output="$DEMO_DIR/retrain.out" "$here/retrain.sh")
STRATO_URI=$ai_uri strato job wait "$rt"
echo "== the tree of instances now (strato pstree -x)"
strato pstree -x
exec 3<>"$DEMO_DIR/retrained"  # read-write: never blocks, even if ai.sh has failed
echo "v2" >&3

strato job wait "$em"
cat "$DEMO_DIR/emerging.out" "$DEMO_DIR/docking.out" "$DEMO_DIR/md.out" \
    "$DEMO_DIR/retrain.out" "$DEMO_DIR/ai.out"
echo "== the instance jobs, as the top instance saw them"
strato jobs -a -c 4 -o "{id.f58:>12} {name:<10} {result:<10} {runtime!F:>8} {nodelist}"

echo "== Python: one JobExecutor per child instance"
python3 "$here/executors.py"
