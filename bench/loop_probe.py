"""What holds the event loop: :class:`LoopProbe` (used by ``bench_event_loop`` and the event-loop test).

Three records, taken while a workload runs on the loop:

* ``gaps`` -- how late a ticker task wakes (it sleeps ``tick_s``), with a label the caller sets
  (the graph node running);
* ``slow`` -- every loop callback (a task step, a timer, an I/O callback) that ran longer than
  ``slow_s``, named by its task and the coroutine lines it ran between;
* ``gc_pauses`` -- every garbage-collector pass longer than ``slow_s``, with its generation and the
  thread that started it: a pass holds the GIL, so it stops the loop whichever thread runs it.

Unlike asyncio's debug mode, it adds almost nothing to each callback (debug mode captures a stack
trace at every ``call_soon``: median lateness 1.9-3.2 ms with it against 0.4-3.0 ms without, same
code, similar load), and it names GC pauses, which debug mode reports as whatever callback they
happened to interrupt. It wraps ``asyncio.events.Handle._run`` (the one place the pure-Python loop
calls a callback) for the probe's loop only; ``stop`` restores it.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoopProbe"]


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

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._gc_started: dict[int, float] = {}
        original = self._original = asyncio.events.Handle._run
        probe, loop = self, self._loop

        def _run(handle: asyncio.Handle) -> None:
            if handle._loop is not loop:  # noqa: SLF001 - another loop (another thread): not ours
                return original(handle)
            cb = getattr(handle, "_callback", None)
            owner = getattr(cb, "__self__", None)
            before = None
            if isinstance(owner, asyncio.Task) and owner.get_coro() is not None:
                before = _where(owner.get_coro())
            t0 = time.perf_counter()
            try:
                return original(handle)
            finally:
                took = time.perf_counter() - t0
                if took > probe.slow_s and not probe._stop.is_set():  # the step that stops the probe: not measured
                    probe.slow.append((took, _describe(handle, before)))

        asyncio.events.Handle._run = _run  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        self._ticker = self._loop.create_task(self._tick(), name="loop-probe-ticker")

    async def stop(self) -> None:
        self._stop.set()
        await self._ticker
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._on_gc)

    async def _tick(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            await asyncio.sleep(self.tick_s)
            now = time.perf_counter()
            self.gaps.append((now - last - self.tick_s, self.label))
            last = now

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

    def report(self, *, top: int = 5) -> list[str]:
        """Lines naming the longest gaps, the slowest callbacks and the longest GC pauses."""
        lines = [f"  gap {g * 1000:7.1f} ms  {where}" for g, where in sorted(self.gaps, reverse=True)[:top]]
        lines += [f"  callback {s * 1000:7.1f} ms  {what}" for s, what in sorted(self.slow, reverse=True)[:top]]
        lines += [f"  gc gen{gen} {s * 1000:7.1f} ms  in thread {th}"
                  for s, gen, th in sorted(self.gc_pauses, reverse=True)[:top]]
        return lines
