#!/bin/sh
#STRATO: -N1 --job-name=pipeline
#STRATO: -t 5m
# A batch job that is itself a small workflow: it starts jobs of its own
# in its own child instance ($STRATO_URI inside the script names it) and waits
# for them; the jobs see only the batch job's node.
echo "pipeline $STRATO_JOB_ID on $(hostname): starting 3 stages"
for stage in 1 2 3; do
    strato run --job-name="stage-$stage" sh -c "echo stage $stage done"
done
