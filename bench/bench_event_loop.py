"""How long does a whole graph run block the event loop? (issue 8, item 7)

Runs ``hpo train``'s graph in this process -- embedded PostgreSQL (or ``DATABASE_URL``) for the Optuna
journal, the history tables and the LangGraph checkpoints, a local MLflow store -- while a ticker
task wakes every 5 ms and records how late it is. Fits run in threads and worker processes, so the
loop should never wait for one; what it waits for is whatever blocking work still runs on it, and
whatever stops the whole process (a garbage-collector pass holds the GIL).

    ./run bench bench_event_loop [--dataset breast_cancer] [--n-trials 20] [--n-jobs 2] [--target-ms 50]
                                 [--trial-timeout 60]

Prints the longest gaps with the node that was running, the slowest loop callbacks (named by task
and coroutine lines) and the longest GC pauses (see ``bench/loop_probe.py``; asyncio's debug mode
is not used: it slows every callback and blames a GC pause on the callback it interrupted). For the
gaps over a fifth of the target it sums where the loop thread's time went: on a CPU (the loop's own
work), queued for a core (the machine's load) or blocked (the GIL held by another thread of this
process -- a fit, the MLflow writer -- or a blocking call), and it names the other threads that ran
during the gaps over half the target. ``--trial-timeout`` runs the fits in worker processes (the
tuner's setting of that name), which takes the fit threads, and their hold on the GIL, out of this
process. Exit code 1 when the longest gap is above the target. The machine is shared: look at the
load printed with it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loop_probe import LoopProbe  # noqa: E402


async def run(args: argparse.Namespace) -> int:
    from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph
    from src.cli.adapters import run_services
    from src.cli.lifecycle import stoppable

    home = Path(args.home or tempfile.mkdtemp(prefix="hpo-loop-"))
    os.environ["HPO_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    probe = LoopProbe(slow_s=args.target_ms / 1000 / 2)
    async with stoppable() as stopper:
        async with run_services(home, stopper, use_db=True, use_mlflow=not args.no_mlflow, checkpoints=True,
                                outage_s=60, saves_model=True) as services:
            graph = build_model_trainer_graph(checkpointer=services.checkpointer)
            context = ModelTrainerContext(hpo_home=home, optuna_storage=services.optuna_storage,
                                          listeners=services.listeners, tracker=services.tracker,
                                          history=services.history)
            inputs = {"dataset_name": args.dataset, "n_trials": args.n_trials, "n_jobs": args.n_jobs,
                      "seed": 0}
            if args.trial_timeout is not None:
                inputs["trial_timeout"] = args.trial_timeout
            probe.start()
            t0 = time.perf_counter()
            async for update in graph.astream(inputs, {"configurable": {"thread_id": "loop-bench"}},
                                              context=context, stream_mode="updates", durability="sync"):
                for name in update:
                    probe.label = f"after {name}"
            wall = time.perf_counter() - t0
            await probe.stop()
            settling = getattr(services, "heap", None)  # (absent before the heap was frozen: issue 8.7)
            if settling is not None:
                await settling.settled
            frozen = gc.get_freeze_count()
    gaps = [g for g, _ in probe.gaps]
    longest = probe.longest_gap * 1000
    fits = "threads" if args.trial_timeout is None else f"worker processes (trial_timeout {args.trial_timeout:g} s)"
    print(f"graph run: {args.dataset}, {args.n_trials} trials, n_jobs {args.n_jobs}, fits in {fits}, MLflow "
          f"{'off' if args.no_mlflow else 'on'}, PostgreSQL on; {wall:.1f} s; load {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores; {frozen} objects frozen")
    print(f"ticks: {len(gaps)}; lateness median {statistics.median(gaps) * 1000:.1f} ms, "
          f"p99 {probe.percentile_gap(0.99) * 1000:.1f} ms, max {longest:.1f} ms; "
          f"over {args.target_ms:.0f} ms: {sum(g * 1000 > args.target_ms for g in gaps)}")
    over_ms = args.target_ms / 5
    split = probe.split_over(over_ms / 1000)
    if split.wall > 0:
        print(f"gaps over {over_ms:.0f} ms: {sum(g * 1000 > over_ms for g in gaps)}, {split.wall * 1000:.0f} ms late "
              f"in all: loop thread on a CPU {split.cpu / split.wall:.0%}, queued for a core "
              f"{split.queued / split.wall:.0%}, blocked (GIL, blocking calls) {split.blocked / split.wall:.0%}")
    print("\n".join(probe.report()))
    return 0 if longest <= args.target_ms else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast_cancer")
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--target-ms", type=float, default=50.0)
    parser.add_argument("--trial-timeout", type=float, help="seconds; fits then run in worker processes")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--home", help="HPO_HOME (default: a new temporary directory)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
