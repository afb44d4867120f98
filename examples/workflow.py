"""Submit 100 small jobs in one request and wait for all of them on one stream."""

import time

import strato
from strato import job

h = strato.Handle()  # the instance named by STRATO_URI
spec = strato.JobspecV1.from_command(["sh", "-c", "test $STRATO_TASK_RANK -eq 0"])
t0 = time.perf_counter()
ids = job.submit_many(h, spec, 100)
results = job.wait_all(h, ids)
elapsed = time.perf_counter() - t0
ok = sum(r.success for r in results)
print(f"{ok}/{len(results)} jobs completed in {elapsed:.2f}s ({len(results) / elapsed:.0f} job/s)")
