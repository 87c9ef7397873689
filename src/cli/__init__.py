"""``hpo``: the command line, the composition root of the project.

Imports run one way: this package -> ``src.agents`` -> ``src.mlops`` public names. It is the only
place (with the graph's context wiring) that builds adapters: database pools, the embedded
PostgreSQL, the LangGraph checkpointer, the Optuna storage, the history recorder, the MLflow tracker.

    hpo train --dataset breast_cancer [--n-trials 50]        whole graph: load, split, tune, train, test, register
    hpo train --data FILE.csv --target COL [...]
    hpo train --thread-id T [--n-trials N]                   resume an unfinished run (see resume.py)
    hpo tune  --dataset breast_cancer [...]                  HPO only (train/validation), prints the best params
    hpo studies [--limit N]                                  study history from PostgreSQL
    hpo db migrate | hpo db status                           schema migrations

Modules: ``parser`` (options, checked as parsed), ``settings`` (options -> graph inputs), ``resume``
(what a resume honours), ``adapters`` (construction and teardown), ``outage`` (the bound on a
database outage), ``lifecycle`` (SIGINT/SIGTERM and stops), ``progress`` (tqdm), ``output``
(summary, JSON), ``exits`` (exit codes), ``commands/`` (one module per command), ``main``.
"""

from .main import main

__all__ = ["main"]
