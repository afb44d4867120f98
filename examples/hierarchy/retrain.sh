#!/bin/sh
#STRATO: -n1 -g1 --job-name=retrain
# Submitted from outside into the AI instance by its URI: a batch job (one level
# deeper again) that trains a new model and reports where it ran.
echo "retrain: new model trained at instance level $(strato getattr instance-level)"
