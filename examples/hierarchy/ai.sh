#!/bin/sh
# The AI sub-instance: serve inference jobs until an outside client has retrained
# the model here (it submits retrain.sh into this instance by its URI alone).
set -e
strato submit --cc=1-100 --quiet -g1 infer
read -r model < "$DEMO_DIR/retrained"
strato queue drain
echo "ai: $(strato jobs -a -n -o "{name}:{result}" | sort | uniq -c | xargs); model $model"
