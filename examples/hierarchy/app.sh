#!/bin/sh
# The "parallel application" of the conventional workflow: each task reports
# where it runs; task 0 speaks for all of them.
if [ "$STRATO_TASK_RANK" = 0 ]; then
    echo "app: $STRATO_JOB_SIZE tasks over $STRATO_JOB_NNODES nodes, at instance level $(strato getattr instance-level)"
fi
