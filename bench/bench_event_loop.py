"""How long does a whole graph run block the event loop? (issue 8, item 7)

Runs ``hpo train``'s graph in this process -- embedded PostgreSQL (or ``DATABASE_URL``) for the Optuna
journal, the history tables and the LangGraph checkpoints, a local MLflow store -- while a ticker
task wakes every 5 ms and records how late it is. Fits run in threads and worker processes, so the
loop should never wait for one; what it waits for is whatever blocking work still runs on it.

    ./run bench bench_event_loop [--dataset breast_cancer] [--n-trials 20] [--n-jobs 2] [--target-ms 50]

Prints the longest gaps with the node that was running, and the slowest callbacks asyncio's debug
mode saw (``slow_callback_duration`` = the target): those name the blocking code. Exit code 1 when
the longest gap is above the target. The machine is shared: look at the load printed with it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TICK_S = 0.005


class _SlowCallbacks(logging.Handler):
    """Collects asyncio's "Executing <Handle ...> took 0.123 seconds" debug-mode warnings."""

    PATTERN = re.compile(r"Executing (?P<what>.+) took (?P<seconds>[0-9.]+) seconds")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = self.PATTERN.search(record.getMessage())
        if m:
            self.seen.append((float(m["seconds"]), m["what"][:240]))


async def run(args: argparse.Namespace) -> int:
    from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph
    from src.cli.adapters import run_services
    from src.cli.lifecycle import stoppable

    home = Path(args.home or tempfile.mkdtemp(prefix="hpo-loop-"))
    os.environ["HPO_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    loop = asyncio.get_running_loop()
    slow = _SlowCallbacks()
    logging.getLogger("asyncio").addHandler(slow)
    gaps: list[tuple[float, float, str]] = []  # (gap seconds, at, node)
    node = {"name": "startup"}
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            gaps.append((now - last - TICK_S, now, node["name"]))
            last = now

    async with stoppable() as stopper:
        async with run_services(home, stopper, use_db=True, use_mlflow=not args.no_mlflow, checkpoints=True,
                                outage_s=60) as services:
            graph = build_model_trainer_graph(checkpointer=services.checkpointer)
            context = ModelTrainerContext(hpo_home=home, optuna_storage=services.optuna_storage,
                                          listeners=services.listeners, tracker=services.tracker,
                                          history=services.history)
            inputs = {"dataset_name": args.dataset, "n_trials": args.n_trials, "n_jobs": args.n_jobs,
                      "seed": 0}
            loop.set_debug(True)
            loop.slow_callback_duration = args.target_ms / 1000
            tick = asyncio.create_task(ticker())
            t0 = time.perf_counter()
            async for update in graph.astream(inputs, {"configurable": {"thread_id": "loop-bench"}},
                                              context=context, stream_mode="updates", durability="sync"):
                for name in update:
                    node["name"] = f"after {name}"
            wall = time.perf_counter() - t0
            stop.set()
            await tick
            loop.set_debug(False)
    values = sorted((g for g in gaps), reverse=True)
    longest = values[0][0] * 1000 if values else 0.0
    print(f"graph run: {args.dataset}, {args.n_trials} trials, n_jobs {args.n_jobs}, MLflow "
          f"{'off' if args.no_mlflow else 'on'}, PostgreSQL on; {wall:.1f} s; load {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"ticks: {len(gaps)}; lateness median {statistics.median(g for g, _, _ in gaps) * 1000:.1f} ms, "
          f"p99 {sorted(g for g, _, _ in gaps)[int(0.99 * (len(gaps) - 1))] * 1000:.1f} ms, "
          f"max {longest:.1f} ms; over {args.target_ms:.0f} ms: {sum(g * 1000 > args.target_ms for g, _, _ in gaps)}")
    for gap, _, where in values[:5]:
        print(f"  {gap * 1000:7.1f} ms  {where}")
    if slow.seen:
        print(f"slowest callbacks on the loop (asyncio debug, > {args.target_ms:.0f} ms):")
        for seconds, what in sorted(slow.seen, reverse=True)[:8]:
            print(f"  {seconds * 1000:7.1f} ms  {what}")
    return 0 if longest <= args.target_ms else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast_cancer")
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--target-ms", type=float, default=50.0)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--home", help="HPO_HOME (default: a new temporary directory)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
