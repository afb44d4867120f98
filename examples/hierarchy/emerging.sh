#!/bin/sh
#STRATO: -N16 --job-name=emerging
# Emerging: a 16-node batch job (a child instance) that starts three sub-batch
# jobs of different shapes, each a child instance of its own running many small
# jobs (simulated: exec.backend=sim), and waits for all of them. (--wrap makes
# its arguments, joined by spaces, a /bin/sh script, so one quoted shell line works.)
#   docking          12 nodes x 2 cores
#   md+analysis       8 nodes x 1 core + 1 gpu
#   ai                4 nodes x 1 core + 1 gpu   (retrained by an outside client)
# They share nodes as the counts allow: 16 nodes of 4 cores and 2 gpus hold all three.
set -e
# The coupling client waits to learn which job is the AI instance: tell it, or
# tell it we failed (opening the FIFO read-write never blocks).
exec 3<>"$DEMO_DIR/ai.id"
trap '[ -n "$told" ] || echo failed >&3' EXIT
sim="--conf exec.backend=sim --conf exec.sim-duration=0.02"
dock=$(strato batch -N12 -n12 -c2 --job-name=docking $sim --output="$DEMO_DIR/docking.out" \
    --wrap 'strato submit --cc=1-600 --quiet -c2 dock && strato queue drain &&
                  echo "docking: $(strato jobs -a -n -o "{result}" | sort | uniq -c | xargs)"')
md=$(strato batch -N8 -n8 -g1 --job-name=md $sim --output="$DEMO_DIR/md.out" \
    --wrap 'strato submit --cc=1-200 --quiet -g1 md && strato queue drain &&
                  strato submit --cc=1-200 --quiet analysis && strato queue drain &&
                  echo "md+analysis: $(strato jobs -a -n -o "{name}:{result}" | sort | uniq -c | xargs)"')
ai=$(strato batch -N4 -n4 -g1 --job-name=ai $sim --output="$DEMO_DIR/ai.out" \
    "$DEMO_EXAMPLES/ai.sh")
echo "emerging: started docking $dock, md $md, ai $ai"
# A FIFO is this demo's channel (its clients share one machine); any would do.
echo "$ai" >&3
told=1
strato queue drain
echo "emerging: all three sub-instances done"
