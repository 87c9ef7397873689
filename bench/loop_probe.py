"""What holds the event loop: :class:`LoopProbe` (used by ``bench_event_loop`` and the event-loop test).

Three records, taken while a workload runs on the loop:

* ``gaps`` -- how late a ticker task wakes (it sleeps ``tick_s``), with a label the caller sets
  (the graph node running);
* ``slow`` -- every loop callback (a task step, a timer, an I/O callback) that ran longer than
  ``slow_s``, named by its task and the coroutine lines it ran between;
* ``gc_pauses`` -- every garbage-collector pass longer than ``slow_s``, with its generation and the
  thread that started it: a pass holds the GIL, so it stops the loop whichever thread runs it.

Each gap and slow callback also says where the loop thread's time went (:class:`Split`): on a CPU
(the loop's own work), queued for a core (the machine's load; the kernel's ``schedstat`` of the
thread, when it has one), or neither -- blocked, which on the loop thread means waiting for the GIL
that another thread (a fit, the MLflow writer) holds, or a blocking call. ``split_over`` sums it for the long gaps,
and ``others_in_gaps`` says which other Python threads of the process were on a CPU during the gaps
longer than ``slow_s`` (a Python thread on a CPU holds the GIL, unless it runs C code that released
it: LightGBM's training rounds, numpy, sqlite...). None of these reads releases the GIL.

Unlike asyncio's debug mode, it adds almost nothing to each callback (debug mode captures a stack
trace at every ``call_soon``: median lateness 1.9-3.2 ms with it against 0.4-3.0 ms without, same
code, similar load), and it names GC pauses, which debug mode reports as whatever callback they
happened to interrupt. It wraps ``asyncio.events.Handle._run`` (the one place the pure-Python loop
calls a callback) for the probe's loop only; ``stop`` restores it.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["LoopProbe", "Split"]


class Split(NamedTuple):
    """Where ``wall`` seconds of the loop thread went: ``cpu`` on a core, ``queued`` waiting for one,
    ``blocked`` the rest (the GIL, a blocking call; for a gap, less the ticker's own sleep)."""

    wall: float
    cpu: float
    queued: float

    @property
    def blocked(self) -> float:
        return max(0.0, self.wall - self.cpu - self.queued)

    def __str__(self) -> str:
        return (f"cpu {self.cpu * 1000:.1f} ms, queued for a core {self.queued * 1000:.1f} ms, "
                f"blocked (GIL, blocking calls) {self.blocked * 1000:.1f} ms")


def _gil_holding_pread() -> Any:
    """libc's ``pread`` called without releasing the GIL (``ctypes.PyDLL``): ``os.pread`` releases it,
    and on a loop thread every release under contention is a wait to get it back -- the probe would
    make the gaps it measures. A ``schedstat`` read takes microseconds. ``None`` without libc."""
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        pread = libc.pread
    except (OSError, AttributeError):
        return None
    pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    pread.restype = ctypes.c_ssize_t
    return pread


class _ThreadClock:
    """Wall time, CPU time and run-queue wait of the thread that made it (the kernel's ``schedstat``
    of the thread, read without releasing the GIL; CPU from ``thread_time`` and no queue wait where
    there is none)."""

    def __init__(self) -> None:
        self._pread = _gil_holding_pread()
        self._buf = ctypes.create_string_buffer(64)
        try:
            self._fd: int | None = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> tuple[float, float, float]:
        """(wall, cpu, queued) seconds since an arbitrary origin."""
        wall = time.perf_counter()
        if self._fd is not None and self._pread is not None:
            n = self._pread(self._fd, self._buf, 64, 0)
            fields = self._buf.raw[:max(n, 0)].split()
            if len(fields) >= 2:
                return wall, int(fields[0]) / 1e9, int(fields[1]) / 1e9
        return wall, time.thread_time(), 0.0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _thread_cpu(native_id: int) -> float | None:
    """CPU seconds of a thread of this process (Linux's per-thread CPU clock, computed from the
    thread id: ``time.clock_gettime`` keeps the GIL); ``None`` once the thread has ended."""
    try:
        return time.clock_gettime(((~native_id) << 3) | 6)  # MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)
    except (OSError, OverflowError):
        return None


def _python_threads_cpu(but: int) -> dict[int, tuple[str, float]]:
    """(name, CPU seconds) of the Python threads of this process but ``but``, by native id (only they
    can hold the GIL)."""
    out = {}
    for t in threading.enumerate():
        tid = t.native_id
        if tid is not None and tid != but:
            cpu = _thread_cpu(tid)
            if cpu is not None:
                out[tid] = (t.name, cpu)
    return out


def _thread_kind(name: str) -> str:
    """A thread's name without its number: ``hpo-trial-12`` -> ``hpo-trial-*``, ``asyncio_3`` -> ``asyncio_*``."""
    return re.sub(r"\d+$", "*", name)


def _split(before: tuple[float, float, float], after: tuple[float, float, float], *, less: float = 0.0) -> Split:
    wall, cpu, queued = (a - b for a, b in zip(after, before))
    return Split(max(0.0, wall - less), cpu, queued)


def _where(coro: Any) -> str:
    """``qualname:line`` of the innermost coroutine ``coro`` awaits (where a task step stopped)."""
    inner, last = coro, None
    while inner is not None and getattr(inner, "cr_frame", None) is not None:
        last = inner
        inner = getattr(inner, "cr_await", None)
    if last is None:
        return getattr(coro, "__qualname__", type(coro).__name__)
    frame = last.cr_frame
    return f"{last.__qualname__}:{frame.f_lineno}"


def _describe(handle: asyncio.Handle, before: str | None) -> str:
    cb = getattr(handle, "_callback", None)
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        after = _where(coro) if coro is not None else "done"
        return f"task {owner.get_name()}: {before or '?'} -> {after}"
    return f"callback {getattr(cb, '__qualname__', repr(cb))[:160]}"


@dataclass
class LoopProbe:
    """Records gaps, slow callbacks and GC pauses of the running loop between ``start`` and ``stop``."""

    tick_s: float = 0.005
    slow_s: float = 0.02
    label: str = "startup"
    gaps: list[tuple[float, str]] = field(default_factory=list)
    slow: list[tuple[float, str]] = field(default_factory=list)
    gc_pauses: list[tuple[float, int, str]] = field(default_factory=list)
    #: where the loop thread's time went, per gap (same order as ``gaps``) and per slow callback
    gap_splits: list[Split] = field(default_factory=list)
    slow_splits: list[Split] = field(default_factory=list)
    #: CPU seconds of the other threads of the process (by kind) during the gaps longer than ``slow_s``
    others_in_gaps: collections.Counter[str] = field(default_factory=collections.Counter)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._gc_started: dict[int, float] = {}
        original = self._original = asyncio.events.Handle._run
        probe, loop = self, self._loop
        clock = self._clock = _ThreadClock()

        def _run(handle: asyncio.Handle) -> None:
            if handle._loop is not loop:  # noqa: SLF001 - another loop (another thread): not ours
                return original(handle)
            cb = getattr(handle, "_callback", None)
            owner = getattr(cb, "__self__", None)
            before = None
            if isinstance(owner, asyncio.Task) and owner.get_coro() is not None:
                before = _where(owner.get_coro())
            t0 = clock.read()
            try:
                return original(handle)
            finally:
                t1 = clock.read()
                took = t1[0] - t0[0]
                if took > probe.slow_s and not probe._stop.is_set():  # the step that stops the probe: not measured
                    probe.slow.append((took, _describe(handle, before)))
                    probe.slow_splits.append(_split(t0, t1))

        asyncio.events.Handle._run = _run  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        self._ticker = self._loop.create_task(self._tick(), name="loop-probe-ticker")

    async def stop(self) -> None:
        self._stop.set()
        await self._ticker
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._on_gc)
        self._clock.close()

    async def _tick(self) -> None:
        me = threading.get_native_id()
        last, last_cpu = self._clock.read(), _python_threads_cpu(me)
        while not self._stop.is_set():
            await asyncio.sleep(self.tick_s)
            now, now_cpu = self._clock.read(), _python_threads_cpu(me)
            gap = now[0] - last[0] - self.tick_s
            self.gaps.append((gap, self.label))
            self.gap_splits.append(_split(last, now, less=self.tick_s))
            if gap > self.slow_s:  # a thread that started or ended within the gap is not counted
                for tid, (name, cpu) in now_cpu.items():
                    if tid in last_cpu:
                        self.others_in_gaps[_thread_kind(name)] += cpu - last_cpu[tid][1]
            last, last_cpu = now, now_cpu

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        tid = threading.get_ident()
        if phase == "start":
            self._gc_started[tid] = time.perf_counter()
            return
        started = self._gc_started.pop(tid, None)
        if started is not None and time.perf_counter() - started > self.slow_s:
            self.gc_pauses.append((time.perf_counter() - started, info["generation"],
                                   threading.current_thread().name))

    # -- summaries ----------------------------------------------------------------------------
    @property
    def longest_gap(self) -> float:
        return max((g for g, _ in self.gaps), default=0.0)

    def percentile_gap(self, q: float) -> float:
        values = sorted(g for g, _ in self.gaps)
        return values[int(q * (len(values) - 1))] if values else 0.0

    def split_over(self, seconds: float) -> Split:
        """The summed :class:`Split` of the gaps later than ``seconds``."""
        chosen = [s for (g, _), s in zip(self.gaps, self.gap_splits) if g > seconds]
        return Split(sum(s.wall for s in chosen), sum(s.cpu for s in chosen), sum(s.queued for s in chosen))

    def report(self, *, top: int = 5) -> list[str]:
        """Lines naming the longest gaps, the slowest callbacks and the longest GC pauses."""
        gaps = sorted(zip(self.gaps, self.gap_splits), key=lambda e: e[0][0], reverse=True)[:top]
        lines = [f"  gap {g * 1000:7.1f} ms  {where}  ({split})" for (g, where), split in gaps]
        slow = sorted(zip(self.slow, self.slow_splits), key=lambda e: e[0][0], reverse=True)[:top]
        lines += [f"  callback {s * 1000:7.1f} ms  {what}  ({split})" for (s, what), split in slow]
        lines += [f"  gc gen{gen} {s * 1000:7.1f} ms  in thread {th}"
                  for s, gen, th in sorted(self.gc_pauses, reverse=True)[:top]]
        if self.others_in_gaps:
            lines.append(f"  other threads on a CPU during the gaps over {self.slow_s * 1000:.0f} ms: " + ", ".join(
                f"{kind} {cpu * 1000:.0f} ms" for kind, cpu in self.others_in_gaps.most_common(top)))
        return lines
