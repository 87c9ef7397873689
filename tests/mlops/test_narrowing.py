"""The sampler's view of a narrowed study (no fits): earlier trials inside the new ranges inform the
phase's sampler under the new distributions; trials outside them are left out; the study is untouched."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from src.mlops.narrowing import PhaseSampler, PhaseView
from src.mlops.search_space import parse_search_space

SPACE = parse_search_space({"x": ("float", 0.0, 10.0), "n": ("int", 1, 100), "c": ("categorical", ["a", "b"])})


def _study() -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    dists = SPACE.distributions()
    for i, (x, n) in enumerate([(5.0, 50), (4.0, 40), (9.5, 90), (6.0, 55), (0.5, 5)]):
        study.add_trial(create_trial(params={"x": x, "n": n, "c": "a"}, distributions=dists, value=float(i)))
    return study


def test_the_view_keeps_earlier_trials_inside_the_new_ranges_under_the_new_distributions() -> None:
    study = _study()
    narrow = SPACE.narrowed({"x": 5.0, "n": 50}, shrink=0.5)  # x in [2.5, 7.5], n in [25, 75]
    view = PhaseView(study, narrow)
    shown = view.get_trials(deepcopy=False)
    assert [t.number for t in shown] == [0, 1, 3]  # 9.5/90 and 0.5/5 lie outside
    for t in shown:
        assert t.distributions["x"] == FloatDistribution(2.5, 7.5)
        assert t.distributions["n"] == IntDistribution(25, 75)
        assert t.distributions["c"] == CategoricalDistribution(["a", "b"])
    assert study.trials[0].distributions["x"] == FloatDistribution(0.0, 10.0)  # the study itself is untouched
    # TPE samples x, n and c jointly (one intersection space) in the new ranges, informed by the 3 trials
    study.sampler = PhaseSampler(optuna.samplers.TPESampler(seed=1, n_startup_trials=3), view)
    for _ in range(5):
        trial = study.ask()
        values = {p.name: getattr(trial, f"suggest_{'categorical' if p.type == 'categorical' else p.type}")(
            p.name, *((list(p.choices),) if p.type == "categorical" else (p.low, p.high))) for p in narrow}
        assert trial.relative_params.keys() == {"x", "n", "c"}
        assert 2.5 <= values["x"] <= 7.5 and 25 <= values["n"] <= 75
        study.tell(trial, values["x"])
