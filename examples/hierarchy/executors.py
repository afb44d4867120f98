"""A Python workflow over several child instances: start three, give each a
`JobExecutor`, spread 300 simulated jobs over them, gather the futures.

Each child is a job of the enclosing instance whose ``strato start`` lives as
long as this script (``--exit-with``), and simulates its own jobs.
"""

import concurrent.futures
import os

import strato
from strato import instance, job
from strato.job import JobExecutor

h = strato.Handle()  # the enclosing instance (STRATO_URI)
child = strato.JobspecV1.from_nest_command(
    [f"--exit-with={os.getpid()}", "-S", "exec.backend=sim", "-S", "exec.sim-duration=0.01"],
    num_slots=4, cores_per_slot=2, name="leaf")
leaves = job.submit_many(h, child, 3)
uris = [job.uri(h, jobid, wait=True) for jobid in leaves]

work = strato.JobspecV1.from_command(["simulate"], num_tasks=1)
executors = [JobExecutor(uri=u) for u in uris]
futures = [executors[i % len(executors)].submit(work) for i in range(300)]
done = [f.result() for f in concurrent.futures.as_completed(futures)]
per_leaf = [sum(1 for f in futures[i::len(executors)] if f.result().success)
            for i in range(len(executors))]
for ex in executors:
    ex.shutdown()
for u in uris:
    with strato.Handle(u) as leaf:
        instance.shutdown(leaf)
job.wait_all(h, leaves)
print(f"executors: {sum(r.success for r in done)}/{len(done)} jobs completed over "
      f"{len(uris)} child instances ({', '.join(map(str, per_leaf))})")
