"""PSI/J jobs in a strato instance: the portable job API that workflow systems use.

Run it inside an instance (``pip install 'strato[psij]'`` first):

    strato start --config examples/demo.toml python examples/psij_example.py

The same code runs on Slurm, PBS, LSF or Flux by changing the executor's name.
"""

import sys
from datetime import timedelta

import psij

ex = psij.JobExecutor.get_instance("strato")  # the instance in $STRATO_URI (or url=...)
states: dict[str, list[str]] = {}
ex.set_job_status_callback(lambda job, status: states.setdefault(job.spec.name, []).append(
    str(status.state)))


def job(name: str, *argv: str, **kwargs) -> psij.Job:
    return psij.Job(psij.JobSpec(executable=argv[0], arguments=list(argv[1:]), name=name,
                                 **kwargs))


jobs = [
    # four processes, two on each of two nodes
    job("hello", "/bin/sh", "-c", "echo hello from $STRATO_TASK_RANK",
        resources=psij.ResourceSpecV1(process_count=4, processes_per_node=2)),
    job("fails", "/bin/sh", "-c", "exit 3"),
    job("too-long", "/bin/sleep", "60",
        attributes=psij.JobAttributes(duration=timedelta(seconds=1))),
    job("canceled", "/bin/sleep", "60"),
]
for j in jobs:
    ex.submit(j)
jobs[3].wait(target_states=[psij.JobState.ACTIVE])
jobs[3].cancel()

for j in jobs:
    s = j.wait()  # a final JobStatus: state, exit_code, message (strato's reason)
    print(f"psij: {j.spec.name} {s.state} ({s.message or f'exit code {s.exit_code}'})")
print("psij: states of hello:", " ".join(states["hello"]))

# what strato cannot do is refused at submit, with strato's reason in one line
try:
    ex.submit(job("gpu", "/bin/true", attributes=psij.JobAttributes(queue_name="gpu")))
except psij.InvalidJobException as exc:
    print(f"psij: refused: {exc}")
else:
    sys.exit("psij: an unknown queue was accepted")
