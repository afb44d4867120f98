#!/bin/sh
#STRATO: -N1 --job-name=pipeline
#STRATO: -t 5m
# A batch job that is itself a small workflow: it starts jobs of its own
# (through the instance in $STRATO_URI) and waits for them.
echo "pipeline $STRATO_JOB_ID on $(hostname): starting 3 stages"
for stage in 1 2 3; do
    strato run --job-name="stage-$stage" sh -c "echo stage $stage done"
done
