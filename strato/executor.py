"""`JobExecutor`: strato jobs as `concurrent.futures` futures (Flux's ``FluxExecutor``).

Reached as ``strato.job.JobExecutor``. ``submit(jobspec)`` returns a
`JobExecutorFuture` that resolves to the job's `strato.job.JobResult` (a failed
job is a result, not an exception); it carries the job id (`jobid`,
`add_jobid_callback`) and calls event callbacks for the job's eventlog entries
(`add_event_callback`).

One thread per executor owns an `AsyncHandle` and an asyncio loop (ZeroMQ sockets
must stay in one thread). Other threads only append to its inbox and wake it.
The thread submits what has accumulated since its last request in one
``job-manager.submit`` (a copy count for one jobspec submitted many times, a list
otherwise), one request at a time so the jobs get their ids in submission order,
and waits for each request's jobs on one ``job-manager.wait`` stream. Only a
future with event callbacks costs a ``job-manager.events`` stream of its own.

Differences from Flux, on purpose: ``cancel()`` also cancels a job that was
already submitted (Flux cancels only a future whose job has not been submitted),
and so ``shutdown(cancel_futures=True)`` cancels every job of the executor that
has not ended. See `JobExecutorFuture.cancel`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable

from strato import job as _job
from strato.async_handle import AsyncHandle
from strato.core.errors import NoInstanceError, RPCError
from strato.handle import Handle, resolve_uri

log = logging.getLogger("strato.job")

#: The names of the main eventlog entries (what `JobExecutorFuture.add_event_callback`
#: accepts): those the job manager posts, and ``memo`` (facts a job posts about
#: itself, as in Flux, such as a child instance's ``uri``).
EVENTS = frozenset({
    "submit", "validate", "dependency-add", "dependency-remove", "depend", "priority",
    "urgency", "alloc", "start", "exception", "finish", "release", "free", "clean", "memo",
})

#: The most jobs in one submit request.
MAX_BATCH = 2048

#: The note of the exception that cancels a job through its future.
CANCEL_NOTE = "canceled through its JobExecutorFuture"

# The event watch of a future: none yet, asked for (opened once the job has an id),
# open, ended (the job is clean or the stream failed).
_NONE, _REQUESTED, _OPEN, _ENDED = range(4)


class JobExecutorFuture(concurrent.futures.Future):
    """The future of one job submitted through a `JobExecutor`.

    A `concurrent.futures.Future` (so `concurrent.futures.wait` and ``as_completed``
    work) whose result is the job's `strato.job.JobResult`; it holds an exception
    only if the job could not be submitted (``RPCError`` with the instance's reason,
    for a bad jobspec) or the instance was lost (``NoInstanceError``). Created by
    `JobExecutor.submit`, not directly.

    Callbacks (done, jobid and event callbacks) run in the executor's thread, or in
    the calling thread when what they wait for has already happened; an exception
    from one is logged and ignored. Waiting in a callback for a future that is not
    done (``result()``, ``exception()``, ``jobid()``) raises RuntimeError instead
    of blocking the thread that would complete it.
    """

    EVENTS = EVENTS

    def __init__(self, worker: _Worker) -> None:
        super().__init__()
        self._worker = worker
        self._lock = threading.RLock()
        self._jobid: int | None = None
        self._jobid_exc: BaseException | None = None
        self._jobid_ready = threading.Event()
        self._jobid_callbacks: list | None = []  # None once the id is known (or never will be)
        self._event_callbacks: dict[str, list] = {}
        self._events: list | None = None  # entries seen, once a watch has begun or a fetch
        self._watch = _NONE
        self._stash: _job.JobResult | None = None  # the result, held until the watch ends
        self._final = False  # the result is known (the job is inactive)
        # used by the executor's thread only
        self._notified = False
        self._cancel_sent = False

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} jobid={self._jobid}>"

    # -- the job id ----------------------------------------------------------------------
    def jobid(self, timeout: float | None = None) -> int:
        """The job's id, waiting until it has been submitted.

        Raises TimeoutError after `timeout` seconds, the submission's exception if
        the job could not be submitted, and CancelledError if the future was
        canceled before its job was submitted.
        """
        if not self._jobid_ready.is_set():
            self._worker.check_thread("jobid")
            if not self._jobid_ready.wait(timeout):
                raise TimeoutError("the job has not been submitted yet")
        if self._jobid_exc is not None:
            raise self._jobid_exc
        return self._jobid

    def add_jobid_callback(self, fn: Callable[[JobExecutorFuture], object]) -> JobExecutorFuture:
        """Call ``fn(future)`` once the job id is known (at once if it is).

        Also called when the job will never have one (submission failed or the
        future was canceled first); then ``future.jobid()`` raises. Returns the future.
        """
        with self._lock:
            if self._jobid_callbacks is not None:
                self._jobid_callbacks.append(fn)
                return self
        self._invoke(fn)
        return self

    def _set_jobid(self, jobid: int | None, exc: BaseException | None = None) -> None:
        with self._lock:
            if self._jobid_callbacks is None:
                return
            self._jobid, self._jobid_exc = jobid, exc
            self._jobid_ready.set()
            callbacks, self._jobid_callbacks = self._jobid_callbacks, None
        for fn in callbacks:
            self._invoke(fn)

    # -- events ----------------------------------------------------------------------------
    def add_event_callback(self, event: str,
                           fn: Callable[[JobExecutorFuture, dict], object]) -> JobExecutorFuture:
        """Call ``fn(future, entry)`` for each entry named `event` in the job's eventlog.

        `entry` is the eventlog entry (``timestamp``, ``name`` and, for most events,
        ``context``); `event` is one of `EVENTS` (ValueError otherwise). Entries that
        happened before the callback was added are passed too, as in Flux. A
        callback added before the future is done is called for every matching
        entry before the future completes (its ``result()`` returns after the
        ``clean`` entry has been handed out). On a future that is done, the entries
        are fetched from the instance and the callback has been called for them
        when this returns. A job that was never submitted has no events. Returns
        the future.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event '{event}' (one of: {', '.join(sorted(EVENTS))})")
        watch = fetch = False
        with self._lock:
            self._event_callbacks.setdefault(event, []).append(fn)
            if self._events is None and self._watch == _NONE:
                if not self.done() and not self._final:
                    self._watch = watch = _REQUESTED
                elif self._jobid is not None:
                    fetch = True
            past = [e for e in self._events or () if e["name"] == event]
        if watch:
            self._worker.post(("watch", self), internal=True)
        if fetch:
            entries = self._worker.fetch_eventlog(self._jobid)
            with self._lock:
                if self._events is None:
                    self._events = entries
                past = [e for e in self._events if e["name"] == event]
        for entry in past:
            self._invoke(fn, entry)
        return self

    def _event(self, entry: dict) -> None:
        with self._lock:
            self._events.append(entry)
            callbacks = list(self._event_callbacks.get(entry["name"], ()))
        for fn in callbacks:
            self._invoke(fn, entry)

    def _invoke(self, fn: Callable, *args) -> None:
        try:
            fn(self, *args)
        except Exception:
            log.exception("exception calling callback for %r", self)

    # -- concurrent.futures.Future ---------------------------------------------------------
    def running(self) -> bool:
        """True from the job's submission until the future is done."""
        return self._jobid is not None and not self.done()

    def cancel(self) -> bool:
        """Cancel the future and its job; False if the future is already done.

        A job not yet submitted never will be. A submitted job is canceled in the
        instance (an exception of type ``cancel``, ending it whether it waits or
        runs). Either way the future is canceled at once: ``result()`` raises
        CancelledError, and event callbacks already added keep being called as
        the job ends. Flux's FluxExecutorFuture only cancels a future whose job
        has not been submitted; here canceling the future is the way to stop its
        job. `JobExecutor.shutdown` (with `wait`) returns only after canceled jobs
        have ended.
        """
        if self.cancelled():
            return True
        if not super().cancel():
            return False
        self._worker.post(("cancel", self), internal=True)
        return True

    def result(self, timeout: float | None = None) -> _job.JobResult:
        if not self.done():
            self._worker.check_thread("result")
        return super().result(timeout)

    result.__doc__ = concurrent.futures.Future.result.__doc__

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self.done():
            self._worker.check_thread("exception")
        return super().exception(timeout)

    exception.__doc__ = concurrent.futures.Future.exception.__doc__


class _Worker:
    """The executor's thread: its loop, its handle and everything they own."""

    count = 0

    def __init__(self, uri: str) -> None:
        self.uri = uri
        # shared with other threads (under `lock`)
        self.lock = threading.Lock()
        self.inbox: deque = deque()
        self.wake_pending = False
        self.shutdown_requested = False
        self.broken: BaseException | None = None
        self.exited = False
        # the thread's own
        self.loop: asyncio.AbstractEventLoop | None = None
        self.h: AsyncHandle | None = None
        self.stopped: asyncio.Future | None = None
        self.tasks: set[asyncio.Task] = set()
        self.submit_queue: deque = deque()
        self.submitter: asyncio.Task | None = None
        self.tracked: set[JobExecutorFuture] = set()  # taken for submission, not ended
        self.cancel_ids: list[int] = []
        self.start_error: BaseException | None = None
        # futures not done, for shutdown(cancel_futures=True); kept here, not on the
        # executor, so that futures do not keep a dropped executor alive
        self.futures: set[JobExecutorFuture] = set()
        self.futures_lock = threading.Lock()
        ready = threading.Event()
        _Worker.count += 1
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                       name=f"strato-executor-{_Worker.count}")
        self.thread.start()
        ready.wait()
        if self.start_error is not None:
            self.thread.join()
            raise self.start_error

    # -- any thread ------------------------------------------------------------------------
    def post(self, item: tuple, internal: bool = False) -> bool:
        """Hand `item` to the thread. Submissions (not `internal`) raise once the
        executor is shut down or broken; other items are dropped (False) once the
        thread has ended."""
        with self.lock:
            if not internal:
                if self.broken is not None:
                    raise concurrent.futures.BrokenExecutor(
                        f"the executor has failed: {self.broken}")
                if self.shutdown_requested:
                    raise RuntimeError("cannot submit jobs after shutdown")
            if self.exited:
                return False
            self.inbox.append(item)
            if self.wake_pending:
                return True
            self.wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop closed after a failure; the item was failed
            pass
        return True

    def forget(self, fut: JobExecutorFuture) -> None:
        with self.futures_lock:
            self.futures.discard(fut)

    def request_shutdown(self) -> None:
        with self.lock:
            self.shutdown_requested = True
        self.post(("shutdown",), internal=True)

    def check_thread(self, what: str) -> None:
        if threading.get_ident() == self.thread.ident:
            raise RuntimeError(f"{what}() of a future that is not done, called in the "
                               "executor's thread (a callback), would never return")

    def fetch_eventlog(self, jobid: int) -> list[dict]:
        """The eventlog of a job, read on a connection of the calling thread's own."""
        with Handle(self.uri) as h:
            return _job.info(h, jobid)["eventlog"]

    # -- the thread ------------------------------------------------------------------------
    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as exc:
            if not ready.is_set():  # the constructor waits for this: tell it why
                self.start_error = exc
                ready.set()
            raise

    async def _main(self, ready: threading.Event) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            self.h = AsyncHandle(self.uri)
        except Exception as exc:
            self.start_error = exc
            self.exited = True
            ready.set()
            return
        self.stopped = self.loop.create_future()
        ready.set()
        try:
            await self.stopped
        finally:
            for task in list(self.tasks):
                task.cancel()
            self.h.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._break(exc)
        else:
            self._maybe_stop()

    def _maybe_stop(self) -> None:
        """End the thread once shutdown was asked for and nothing is left to do."""
        if self.tasks or self.submit_queue or self.cancel_ids:
            return
        with self.lock:
            if self.inbox or not self.shutdown_requested or self.exited:
                return
            self.exited = True
        if not self.stopped.done():
            self.stopped.set_result(None)

    def _wake(self) -> None:
        with self.lock:
            items = list(self.inbox)
            self.inbox.clear()
            self.wake_pending = False
        for item in items:
            kind = item[0]
            if kind == "submit":
                self.submit_queue.append(item)
            elif kind == "cancel":
                self._cancelled(item[1])
            elif kind == "watch":
                self._start_watch(item[1])
        if self.submit_queue and self.submitter is None:
            self.submitter = self._spawn(self._submit_loop())
        self._maybe_stop()

    def _break(self, exc: BaseException) -> None:
        """The connection is lost (or a bug): fail every future and end the thread."""
        if not isinstance(exc, NoInstanceError):
            log.error("job executor failed", exc_info=exc)
        with self.lock:
            if self.broken is not None:
                return
            self.broken = exc
            self.exited = True
            items = list(self.inbox)
            self.inbox.clear()
        futures = set(self.tracked)
        futures.update(item[1] for item in (*items, *self.submit_queue) if item[0] == "submit")
        for task in list(self.tasks):
            task.cancel()
        for fut in futures:
            if fut._stash is not None:
                self._resolve(fut, fut._stash)
            else:
                self._fail(fut, exc)
        for fut in futures:
            if fut.cancelled() and not fut._notified:
                fut._notified = True
                fut.set_running_or_notify_cancel()
        if not self.stopped.done():
            self.stopped.set_result(None)

    # -- submission ------------------------------------------------------------------------
    async def _submit_loop(self) -> None:
        """Submit what the queue holds, one request at a time (ids in submission
        order); what arrives meanwhile goes in the next request."""
        try:
            while self.submit_queue:
                batch = []
                while self.submit_queue and len(batch) < MAX_BATCH:
                    item = self.submit_queue.popleft()
                    fut = item[1]
                    if fut.cancelled():
                        fut._set_jobid(None, concurrent.futures.CancelledError())
                        continue
                    self.tracked.add(fut)
                    batch.append(item)
                for run in _runs(batch):
                    await self._submit(run)
        finally:
            self.submitter = None

    async def _submit(self, items: list[tuple]) -> None:
        """Submit `items` in one request. If the instance refuses it, find out which
        jobs it refuses: one copy of a repeated jobspec speaks for all of them, and
        a list is halved until each refused job is alone (its future gets the reason)."""
        while items:
            try:
                ids = await self._submit_request(items)
            except NoInstanceError:
                raise
            except Exception as exc:
                if len(items) == 1:
                    self._fail(items[0][1], exc)
                    return
                if not _same_spec(items):
                    half = len(items) // 2
                    await self._submit(items[:half])
                    await self._submit(items[half:])
                    return
                try:
                    ids = await self._submit_request(items[:1])
                except NoInstanceError:
                    raise
                except Exception as exc1:
                    for item in items:
                        self._fail(item[1], exc1)
                    return
                self._submitted(items[:1], ids)
                items = items[1:]  # accepted alone: try the others together again
                continue
            self._submitted(items, ids)
            return

    async def _submit_request(self, items: list[tuple]) -> list[int]:
        urgency = items[0][3]
        if _same_spec(items):
            body = {"jobspec": items[0][2], "count": len(items), "urgency": urgency}
        else:
            body = {"jobspecs": [item[2] for item in items], "urgency": urgency}
        return (await self.h.rpc("job-manager.submit", body))["ids"]

    def _submitted(self, items: list[tuple], ids: list[int]) -> None:
        waiting = {}
        for item, jobid in zip(items, ids, strict=True):
            fut = item[1]
            waiting[jobid] = fut
            fut._set_jobid(jobid)
            if fut._watch == _REQUESTED:
                self._start_watch(fut)
            if fut.cancelled():
                self._cancel_job(fut)
        self._spawn(self._wait(waiting))

    def _fail(self, fut: JobExecutorFuture, exc: BaseException) -> None:
        self.tracked.discard(fut)
        fut._set_jobid(None, exc)
        try:
            fut.set_exception(exc)
        except concurrent.futures.InvalidStateError:  # canceled meanwhile
            pass

    # -- results ---------------------------------------------------------------------------
    async def _wait(self, waiting: dict[int, JobExecutorFuture]) -> None:
        """Wait for the jobs of one submit request on one stream."""
        try:
            async for batch in _job.wait_stream_async(self.h, list(waiting)):
                for r in batch:
                    fut = waiting.pop(r.id, None)
                    if fut is not None:
                        self._finished(fut, r)
        except NoInstanceError:
            raise
        except Exception as exc:
            for fut in waiting.values():
                self._fail(fut, exc)

    def _finished(self, fut: JobExecutorFuture, result: _job.JobResult) -> None:
        self.tracked.discard(fut)
        with fut._lock:
            if fut._watch in (_REQUESTED, _OPEN):
                fut._stash = result  # completed when its event callbacks have had it all
                return
            fut._final = True
        self._resolve(fut, result)

    @staticmethod
    def _resolve(fut: JobExecutorFuture, result: _job.JobResult) -> None:
        try:
            fut.set_result(result)
        except concurrent.futures.InvalidStateError:  # canceled: the result is dropped
            pass

    # -- event watches ---------------------------------------------------------------------
    def _start_watch(self, fut: JobExecutorFuture) -> None:
        with fut._lock:
            if fut._watch != _REQUESTED or fut._jobid is None:
                return  # opened already, or once the job has an id
            fut._watch = _OPEN
            if fut._events is None:
                fut._events = []
        self._spawn(self._watch_events(fut))

    async def _watch_events(self, fut: JobExecutorFuture) -> None:
        try:
            async for body in _job.event_watch_async(self.h, fut._jobid):
                if body.get("log") == "eventlog":
                    fut._event(body["entry"])
        except NoInstanceError:
            raise
        except Exception as exc:
            log.warning("events of job %s: %s", fut._jobid, exc)
        with fut._lock:
            fut._watch = _ENDED
            result, fut._stash = fut._stash, None
            if result is not None:
                fut._final = True
        if result is not None:
            self._resolve(fut, result)

    # -- cancellation ----------------------------------------------------------------------
    def _cancelled(self, fut: JobExecutorFuture) -> None:
        """`fut` was canceled: tell `concurrent.futures.wait` and cancel its job."""
        if fut._notified:
            return
        fut._notified = True
        fut.set_running_or_notify_cancel()
        if fut._jobid is not None and fut in self.tracked:
            self._cancel_job(fut)
        # not submitted yet: the submit loop drops it; in flight: `_submitted` cancels it

    def _cancel_job(self, fut: JobExecutorFuture) -> None:
        if fut._cancel_sent:
            return
        fut._cancel_sent = True
        if not self.cancel_ids:
            self.loop.call_soon(self._flush_cancels)
        self.cancel_ids.append(fut._jobid)

    def _flush_cancels(self) -> None:
        ids, self.cancel_ids = self.cancel_ids, []
        self._spawn(self._cancel_request(ids))

    async def _cancel_request(self, ids: list[int]) -> None:
        try:
            await _job.cancel_async(self.h, ids, CANCEL_NOTE)
        except RPCError as exc:  # some had ended meanwhile; the others are canceled
            log.debug("cancel: %s", exc)


def _same_spec(items: list[tuple]) -> bool:
    first = items[0][2]
    return all(item[2] is first for item in items)


def _runs(items: list[tuple]) -> list[list[tuple]]:
    """Split a batch into submit requests: the same urgency in each (it is per
    request), one jobspec object repeated (sent once with a count) or a list."""
    runs: list[list[tuple]] = []
    repeated: list[bool] = []
    for item in items:
        if runs and runs[-1][-1][3] == item[3]:
            run, last = runs[-1], runs[-1][-1]
            if last[2] is item[2] and (repeated[-1] or len(run) == 1):
                run.append(item)
                repeated[-1] = True
                continue
            if not repeated[-1]:
                run.append(item)
                continue
        runs.append([item])
        repeated.append(False)
    return runs


class JobExecutor(concurrent.futures.Executor):
    """Submit jobspecs to an instance and get `JobExecutorFuture`s for them.

    `handle` (a `Handle` or `AsyncHandle`) names the instance by its URI (the
    executor opens a connection of its own: sockets stay in one thread); without
    one, `uri`, else ``$STRATO_URI``. Raises NoInstanceError if no instance is
    there. One executor per instance: a workflow may hold several at once (for
    instance one per child instance, at ``strato.job.uri(h, jobid)``).

    Use it as a context manager, or call `shutdown`: leaving the ``with`` block
    waits for every job of the executor to end.
    """

    def __init__(self, handle: object = None, uri: str | None = None) -> None:
        self.uri = handle.uri if handle is not None else resolve_uri(uri)
        self._worker = _Worker(self.uri)
        # dropped without shutdown: finish what was submitted, then end the thread
        self._finalizer = weakref.finalize(self, self._worker.request_shutdown)

    def submit(self, jobspec, urgency: int = 16) -> JobExecutorFuture:
        """Submit a job (a `JobspecV1`, a dict, or its JSON text); returns its future.

        Returns at once: the job is submitted in the executor's thread, with the
        others submitted meanwhile. Raises RuntimeError after `shutdown`.
        """
        spec = _job._jobspec_dict(jobspec)
        worker = self._worker
        fut = JobExecutorFuture(worker)
        with worker.futures_lock:
            worker.futures.add(fut)
        try:
            worker.post(("submit", fut, spec, urgency))
        except BaseException:
            worker.forget(fut)
            raise
        fut.add_done_callback(worker.forget)
        return fut

    def map(self, *args, **kwargs):
        """Not supported: a JobExecutor runs jobspecs, not functions."""
        raise NotImplementedError("JobExecutor runs jobspecs: use submit(jobspec)")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more jobs; with `wait`, return once every future is done and every
        job of the executor has ended (canceled ones included).

        `cancel_futures` cancels every future not done, as `JobExecutorFuture.cancel`
        does: jobs not yet submitted never are, submitted ones (waiting or running)
        are canceled in the instance. (ThreadPoolExecutor and Flux's FluxExecutor
        can only drop work not yet started.)
        """
        with self._worker.lock:
            self._worker.shutdown_requested = True
        if cancel_futures:
            with self._worker.futures_lock:
                pending = list(self._worker.futures)
            for fut in pending:
                fut.cancel()
        self._worker.request_shutdown()
        if wait and threading.get_ident() != self._worker.thread.ident:
            self._worker.thread.join()
