#!/bin/sh
# A small workflow, run inside an instance by `make demo`:
#   1. fan out: ten jobs each compute a square and write it to a file;
#   2. fan in: one job waits for them (--dependency comes later; here `job status`)
#      and sums the results;
#   3. a batch job (examples/pipeline.sh): a child instance that runs three jobs
#      of its own;
#   4. show those jobs, where they ran and how they ended;
#   5. the hierarchical workflows of examples/hierarchy: conventional (one
#      application over a batch allocation), emerging (a batch job with three
#      sub-instances running many small jobs) and coupling (a separate client
#      submits into one of them by its URI).
# First, the Python API submits 100 jobs as one batch and waits on one stream.
set -e
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== from Python, 100 jobs in one request"
python3 "$(dirname "$0")/workflow.py"

echo "== fan out: 10 jobs"
ids=""
for i in 1 2 3 4 5 6 7 8 9 10; do
    ids="$ids $(strato submit --job-name="square-$i" --output="$work/square-$i.out" \
        sh -c "echo \$(( $i * $i ))")"
done
strato job status $ids

echo "== fan in: sum of squares"
strato run --job-name=sum sh -c "cat $work/square-*.out | awk '{ s += \$1 } END { print s }'"

echo "== a batch job: a child instance that runs its own jobs"
out="$work/pipeline.out"
pid=$(strato batch --output="$out" "$(dirname "$0")/pipeline.sh")
strato job wait "$pid"
cat "$out"

echo "== jobs"
strato jobs -a -c 15 -o "{id.f58:>12} {name:<10} {result:<10} {runtime!F:>8} {nodelist}"

"$(dirname "$0")/hierarchy/coupling.sh"
