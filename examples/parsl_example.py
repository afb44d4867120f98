"""A Parsl workflow whose workers run as jobs of a strato instance.

Run it inside an instance (``pip install 'strato[parsl]'`` first):

    strato start --config examples/demo.toml python examples/parsl_example.py

Parsl's HighThroughputExecutor asks `StratoProvider` for a block of workers: a
strato job on one node that starts Parsl's worker pool there. The apps (a map,
then a reduce) run in those workers.
"""

import tempfile

import parsl
from parsl.executors import HighThroughputExecutor

from strato.parsl_provider import StratoProvider


@parsl.python_app
def square(x: int) -> int:
    return x * x


@parsl.python_app
def total(*parts: int) -> int:
    return sum(parts)


provider = StratoProvider(   # the instance in $STRATO_URI (or uri=...)
    nodes_per_block=1,       # each block: one strato job on one node ...
    init_blocks=1, max_blocks=1,
    walltime="00:10:00",     # ... with this time limit
)
config = parsl.Config(
    executors=[HighThroughputExecutor(label="htex", provider=provider, address="127.0.0.1",
                                      max_workers_per_node=4)],
    run_dir=tempfile.mkdtemp(prefix="parsl-runinfo-"),
    strategy_period=1,       # submit the first block within a second (default: 5 s)
)
with parsl.load(config):
    result = total(*[square(i) for i in range(100)]).result()
print(f"parsl: sum of squares 0..99 = {result}, "
      f"computed in {len(provider.resources)} block(s) run as strato jobs")
