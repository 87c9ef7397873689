"""Model-family selection (F8): the family is a searched categorical, each family keeps its own space.

``algorithm="auto"`` searches a default list of families for the problem type (:data:`AUTO_FAMILIES`);
``algorithm="lightgbm,xgboost"`` (or a list) searches those; a single name is the plain
:class:`~src.mlops.objectives.ModelObjective` of that family, unchanged.

:class:`FamilySearchObjective` is one :class:`ModelObjective` per family on the same data (each keeps
its own preprocessing, early stopping and folds; the folds are the same rows for every family: same
splitter, same seed) behind the interface the optimizer and the graph use. Its joint space::

    model                      categorical over the families
    <family>__<param>          each family's params, active when {model: [family]} (and the
                               family's own conditions, renamed the same way)

so two families' params never collide, the space stays data (stored, validated, sampled by TPE in
``group`` mode), and a trial's params name its family (``params["model"]``).

**How the budget is spent (the cost-aware rule).**

1. *Defaults first: the primary family's, then the others cheapest first.* A fresh study evaluates
   every family's defaults before anything else (source ``defaults``): the first listed family's
   (for ``auto``, LightGBM: the single-family default) first, so that a budget with room for one
   trial gives the same model as a one-family run -- measured: with the cheapest family first, a
   30 s run on a loaded machine often had room for the logistic regression alone and lost to
   LightGBM's defaults on 4 of 8 (table, seed) pairs --; then the other families in the order of
   :data:`COST_RANK` (linear models, LightGBM, HistGB/XGBoost, ExtraTrees, RandomForest, ...), so a
   run that ends early has tried the cheap ones; then each family's portfolio (LightGBM's and
   XGBoost's known-good configurations), then the sampler over the joint space.
2. *Families that cannot win are dropped.* Once a family has had ``drop_after`` (3) trials and its
   best score trails the leading family's best by more than a margin, its later trials are pruned
   at once, before any fit (PRUNED, user attribute ``prune_reason = "family_dropped"``): they cost
   milliseconds, and TPE, which treats pruned trials as bad ones, learns to stop proposing it. The
   margin is the larger of the leader's fold-to-fold spread (the standard deviation of its best
   trial's CV fold scores: gaps within it are noise) and ``drop_margin`` (1 %) of the leader's score;
   a family slower than the leader (mean fit seconds of its trials) gets the margin scaled down by
   ``leader_seconds / family_seconds``: a costly family must be closer to the leader to keep its
   budget. A family whose trials all failed or were pruned is dropped after ``drop_after`` of them.
   The rule is recomputed from the study's trials at every trial (any worker reaches the same
   answer), and the leader is never dropped.

Dropped-family trials use the study's ``n_trials`` budget (as any pruned trial does) but no fit time;
under a time budget they are free in practice.

3. *The folds must leave room for every family.* Under a time budget the CV scheme the rule picks is
   probed with the first family's defaults (:func:`~src.mlops.schemes.afford_scheme`), asking room
   for a one-family study's 10 trials plus :func:`probe_extra_trials` (:data:`DROP_AFTER` for each
   other family); else the study uses the holdout.

``result.family_stats`` (set by :meth:`FamilySearchObjective.annotate`) gives, per family, its
trial counts, best and defaults scores, mean fit seconds and whether it was dropped;
:func:`select_family` makes a trial of the study (the best, or another one the caller picks) the one
the final fits use: ``result.algorithm`` is then its family and ``result.merged_params`` its
family's defaults updated by its unprefixed params.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .blend import Blend, PredictionStore, blend_trials
from .errors import ConfigurationError, IncompatibleMetricError, SearchSpaceError, UnknownModelError
from .metrics import default_metric, get_metric
from .models import get_model_spec
from .objectives import Evaluation, FitResult, ModelObjective, Reporter
from .problems import ANOMALY, BINARY, MULTICLASS, REGRESSION, normalize_problem_type
from .search_space import SearchSpace, parse_search_space
from .types import FAIL_REASON_ATTR, SOURCE_ATTR, OptimizationResult

__all__ = [
    "AUTO",
    "DROP_AFTER",
    "probe_extra_trials",
    "AUTO_FAMILIES",
    "COST_RANK",
    "MODEL_PARAM",
    "FAMILY_DROPPED",
    "PRUNE_REASON_ATTR",
    "FamilySearchObjective",
    "canonical_algorithm",
    "check_family_params",
    "family_names",
    "is_family_search",
    "split_family_params",
    "select_family",
]

#: trials a family has before the drop rule may prune its later ones.
DROP_AFTER = 3


def probe_extra_trials(n_families: int) -> int:
    """Trials of the first family's defaults cost that a CV scheme must leave room for in a search over
    ``n_families`` beyond a one-family study's :data:`~src.mlops.schemes.MIN_CV_TRIALS`
    (:func:`~src.mlops.schemes.afford_scheme`): the :data:`DROP_AFTER` trials every other family gets
    before the drop rule can stop it. (Without them, an ``--algorithm auto`` study on 10k-20k rows
    kept ``cv=5`` and ran 4-10 trials in 50 s: each family's defaults and little else.)"""
    return DROP_AFTER * max(0, n_families - 1)

AUTO = "auto"
#: the families ``algorithm="auto"`` searches, per problem type (the first is the primary family: the
#: one used when tuning is disabled).
AUTO_FAMILIES: dict[str, tuple[str, ...]] = {
    BINARY: ("lightgbm", "xgboost", "random_forest", "extra_trees", "logistic_regression"),
    MULTICLASS: ("lightgbm", "xgboost", "random_forest", "extra_trees", "logistic_regression"),
    REGRESSION: ("lightgbm", "xgboost", "random_forest", "extra_trees", "ridge"),
    ANOMALY: ("isolation_forest", "local_outlier_factor"),
}
#: relative cost of one fit of a family's defaults (lower first): the order of the defaults trials.
COST_RANK: dict[str, int] = {
    "ridge": 0, "lasso": 0, "elastic_net": 0, "logistic_regression": 1, "knn": 2, "lightgbm": 3,
    "isolation_forest": 3, "local_outlier_factor": 3, "hist_gradient_boosting": 4, "xgboost": 4,
    "extra_trees": 5, "random_forest": 6, "one_class_svm": 6, "svm": 7, "mlp": 8,
}
#: the searched categorical naming the family, and the separator of ``<family>__<param>``.
MODEL_PARAM = "model"
SEP = "__"
#: user attribute of a PRUNED trial saying why it was pruned without a fit.
PRUNE_REASON_ATTR = "prune_reason"
FAMILY_DROPPED = "family_dropped"
_FREE_FAILS = ("stale", "cancelled", "deadline")


# ---------------------------------------------------------------------------------------------
# the algorithm setting: one family, a list, or "auto"
# ---------------------------------------------------------------------------------------------
def _names(algorithm: str | Sequence[str]) -> list[str]:
    items = algorithm.split(",") if isinstance(algorithm, str) else list(algorithm)
    if not items or not all(isinstance(a, str) for a in items):
        raise UnknownModelError(f"algorithm must be a family name, 'auto' or a list of family names, got {algorithm!r}")
    return [a.strip() for a in items if a.strip()]


def canonical_algorithm(algorithm: str | Sequence[str]) -> str:
    """``"auto"``, one family's registry name, or the registry names of a list joined by commas (in the
    given order, duplicates removed). Raises :class:`UnknownModelError` naming an unknown family."""
    items = _names(algorithm)
    if [a.lower() for a in items] == [AUTO]:
        return AUTO
    out: list[str] = []
    for name in items:
        if name.lower() == AUTO:
            raise UnknownModelError(f"algorithm {algorithm!r}: 'auto' stands alone, it cannot be part of a list")
        try:
            spec = get_model_spec(name)
        except UnknownModelError as e:
            raise UnknownModelError(f"algorithm {algorithm!r}: {e.args[0]}") from None
        if spec.name not in out:
            out.append(spec.name)
    if not out:
        raise UnknownModelError(f"algorithm {algorithm!r} names no family")
    return ",".join(out)


def is_family_search(algorithm: Any) -> bool:
    """True for ``"auto"`` and for a list of two or more families (False for a ModelSpec)."""
    if not isinstance(algorithm, (str, list, tuple)):
        return False
    canon = canonical_algorithm(algorithm)
    return canon == AUTO or "," in canon


def family_names(algorithm: str | Sequence[str], problem_type: str, metric: str | None = None) -> list[str]:
    """The families ``algorithm`` searches for ``problem_type`` (and ``metric``). ``"auto"`` leaves out
    families that cannot score the metric (e.g. no class probabilities for log_loss); a listed family
    that does not support the problem type or the metric is an error naming it."""
    from .data_checks import check_metric_supported

    pt = normalize_problem_type(problem_type)
    metric_spec = get_metric(metric or default_metric(pt), pt)
    canon = canonical_algorithm(algorithm)
    auto = canon == AUTO
    out = []
    for name in AUTO_FAMILIES[pt] if auto else canon.split(","):
        spec = get_model_spec(name)
        try:
            spec._check(pt)  # noqa: SLF001 - the registry's own support check and message
            check_metric_supported(spec, pt, metric_spec)
        except (UnknownModelError, IncompatibleMetricError) as e:
            if auto:
                continue
            raise type(e)(f"algorithm {algorithm!r}: {e.args[0]}") from None
        out.append(spec.name)
    if not out:
        raise ConfigurationError(f"algorithm {algorithm!r}: no family can be tuned for {pt} with metric {metric_spec.name!r}")
    return out


def check_family_params(algorithm: str | Sequence[str], problem_type: str | None, names: Iterable[str], *,
                        what: str = "search space") -> None:
    """Refuse param names a family search cannot use: ``model`` and ``<family>__<param>`` with a searched
    family and a param that family takes (``problem_type`` None: for "auto", the binary list)."""
    canon = canonical_algorithm(algorithm)
    pt = normalize_problem_type(problem_type) if problem_type else None
    families = list(AUTO_FAMILIES[pt or BINARY]) if canon == AUTO else canon.split(",")
    if isinstance(names, Mapping):  # a configuration (enqueue): it names its family, and only that family's params
        family = names.get(MODEL_PARAM)
        wrong = [k for k in names if k != MODEL_PARAM and not str(k).startswith(f"{family}{SEP}")]
        if family not in families or wrong:
            raise SearchSpaceError(
                f"{what}: a configuration of a family search names its family as {MODEL_PARAM!r} (one of "
                f"{', '.join(families)}) and only that family's params <family>{SEP}<param>; got "
                f"{MODEL_PARAM}={family!r}" + (f" with {', '.join(map(repr, wrong))}" if wrong else ""))
    by_family: dict[str, list[str]] = {}
    for name in names:
        family, _, param = str(name).partition(SEP)
        if name == MODEL_PARAM and what != "search space":
            continue
        if not param or family not in families:
            raise SearchSpaceError(
                f"{what}: param {name!r} -- with several families, name each param <family>{SEP}<param> with a "
                f"searched family ({', '.join(families)}), e.g. {families[0]}{SEP}"
                f"{next(iter(get_model_spec(families[0]).space), 'param')}"
                + ("" if what == "search space" else f", and the family as {MODEL_PARAM!r}"))
        by_family.setdefault(family, []).append(param)
    for family, params in by_family.items():
        spec = get_model_spec(family)
        spec.check_params(params, pt if pt and spec.supports(pt) else spec.problem_types[0],
                          what=f"{what} ({family}{SEP}...)")


def split_family_params(params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(family, its params unprefixed)`` of a family-search trial's params."""
    family = params.get(MODEL_PARAM)
    if not isinstance(family, str):
        raise ConfigurationError(
            f"params of a family search need {MODEL_PARAM!r} (the family) and <family>{SEP}<param> names, "
            f"got {sorted(params)}")
    prefix = family + SEP
    return family, {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def _prefixed(family: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {MODEL_PARAM: family, **{f"{family}{SEP}{k}": v for k, v in params.items()}}


def _user_spaces(space: Mapping[str, Any] | SearchSpace, families: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A user's joint search space split into one space per family (``<family>__<param>`` names)."""
    parsed = parse_search_space(space)
    check_family_params(",".join(families), None, parsed.names)
    out: dict[str, dict[str, Any]] = {}
    for p in parsed:
        family, _, name = p.name.partition(SEP)
        d = p.to_dict()
        when = {k.partition(SEP)[2] or k: v for k, v in (d.pop("when", None) or {}).items() if k != MODEL_PARAM}
        out.setdefault(family, {})[name] = {**d, "when": when} if when else d
    return out


# ---------------------------------------------------------------------------------------------
# the objective
# ---------------------------------------------------------------------------------------------
class FamilySearchObjective:
    """One :class:`ModelObjective` per family behind the objective interface (see the module doc).

    Options are those of :class:`ModelObjective` (``fixed_params`` and ``space_overrides`` apply to
    one family only, so they are refused here: give ``search_space`` with ``<family>__<param>``
    names), plus ``drop_after`` and ``drop_margin`` of the drop rule.
    """

    def __init__(self, algorithm: str | Sequence[str], problem_type: str, X_train: Any, y_train: Any,
                 X_val: Any = None, y_val: Any = None, *, metric: str | None = None,
                 search_space: Mapping[str, Any] | SearchSpace | None = None,
                 space_overrides: Mapping[str, Any] | None = None, fixed_params: Mapping[str, Any] | None = None,
                 drop_after: int = DROP_AFTER, drop_margin: float = 0.01, **options: Any) -> None:
        if fixed_params or space_overrides:
            raise ConfigurationError(
                "fixed_params and space_overrides name one family's params; with several families give a "
                f"search_space with <family>{SEP}<param> names instead")
        if isinstance(drop_after, bool) or not isinstance(drop_after, int) or drop_after < 1:
            raise ConfigurationError(f"drop_after must be an integer >= 1, got {drop_after!r}")
        if not 0 <= drop_margin < 1:
            raise ConfigurationError(f"drop_margin must be a fraction 0 <= drop_margin < 1, got {drop_margin!r}")
        pt = normalize_problem_type(problem_type)
        self.families = family_names(algorithm, pt, metric)
        self.algorithm = ",".join(self.families)
        self.drop_after, self.drop_margin = drop_after, float(drop_margin)
        spaces = _user_spaces(search_space, self.families) if search_space is not None else {}
        self.objectives: dict[str, ModelObjective] = {
            f: ModelObjective(f, pt, X_train, y_train, X_val, y_val, metric=metric, search_space=spaces.get(f),
                              **options) for f in self.families}
        first = self.objectives[self.families[0]]
        for f, sub in self.objectives.items():  # one copy of the data in memory and in a worker's pickle
            if sub.X_train.equals(first.X_train):
                sub.X_train = first.X_train
            if sub.X_val is not None and first.X_val is not None and sub.X_val.equals(first.X_val):
                sub.X_val = first.X_val
        #: the order of the defaults trials: the primary family, then the others cheapest first
        self.by_cost = [self.families[0], *sorted(self.families[1:], key=lambda f: (COST_RANK.get(f, 10),
                                                                                  self.families.index(f)))]
        joint: dict[str, Any] = {MODEL_PARAM: {"type": "categorical", "choices": list(self.families)}}
        for f, sub in self.objectives.items():
            for p in sub.search_space:
                d = p.to_dict()
                d["when"] = {MODEL_PARAM: [f], **{f"{f}{SEP}{k}": v for k, v in (d.get("when") or {}).items()}}
                joint[f"{f}{SEP}{p.name}"] = d
        self.search_space = parse_search_space(joint)
        #: the best evaluations' predictions, the candidates of :meth:`blend` (:meth:`remember_predictions`)
        self.predictions: PredictionStore | None = None

    # -- what the optimizer, the study recipe and the graph read -------------------------------
    @property
    def primary(self) -> ModelObjective:
        return self.objectives[self.families[0]]

    # the same for every family (same data, metric and scheme): read from the primary family's objective
    problem_type = property(lambda self: self.primary.problem_type)
    metric = property(lambda self: self.primary.metric)
    direction = property(lambda self: self.primary.direction)
    uses_cv = property(lambda self: self.primary.uses_cv)
    scheme = property(lambda self: self.primary.scheme)
    cv = property(lambda self: self.primary.cv)
    seed = property(lambda self: self.primary.seed)
    objective_set = property(lambda self: self.primary.objective_set)
    X_train = property(lambda self: self.primary.X_train)
    y_train = property(lambda self: self.primary.y_train)
    X_val = property(lambda self: self.primary.X_val)
    y_val = property(lambda self: self.primary.y_val)

    @property
    def default_params(self) -> dict[str, Any]:
        return dict(self.primary.default_params)

    # -- seeding --------------------------------------------------------------------------------
    def defaults_trials(self) -> list[dict[str, Any]]:
        """Every family's defaults trial, the primary family's first, then cheapest first (source ``defaults``)."""
        return [_prefixed(f, self.objectives[f].defaults_trial_params()) for f in self.by_cost]

    def defaults_trial_params(self) -> dict[str, Any]:
        return self.defaults_trials()[0]

    def portfolio_trial_params(self) -> list[dict[str, Any]]:
        """Each family's portfolio (cheapest family first), prefixed."""
        return [_prefixed(f, c) for f in self.by_cost for c in self.objectives[f].portfolio_trial_params()]

    # -- sampling and evaluation ------------------------------------------------------------------
    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The family first, then only its params. A trial of a dropped family is pruned here, before
        any fit (``prune_reason`` = ``family_dropped``); a defaults trial samples only its family's
        in-space defaults."""
        family = self.search_space.sample(trial, only=[MODEL_PARAM])[MODEL_PARAM]
        if trial.user_attrs.get(SOURCE_ATTR) == "defaults":
            keys = _prefixed(family, self.objectives[family].defaults_trial_params())
            return self.search_space.sample(trial, only=keys)
        if family in self.dropped(trial.study.get_trials(deepcopy=False)):
            trial.set_user_attr(PRUNE_REASON_ATTR, FAMILY_DROPPED)
            raise optuna.TrialPruned(f"family {family!r} dropped: it trails the leading family (see family_search)")
        return self.search_space.sample(trial)

    def evaluate(self, sampled: Mapping[str, Any], reporter: Reporter | None = None) -> Evaluation:
        family, params = split_family_params(sampled)
        ev = self._objective(family).evaluate(params, reporter)
        ev.user_attrs["family"] = family
        if ev.predictions is not None and self.predictions is not None:
            self.predictions.add(sampled, ev.value, ev.predictions)
        ev.predictions = None
        return ev

    def remember_predictions(self) -> None:
        """Keep the predictions of the best evaluations, of any family, from now on (for :meth:`blend`)."""
        self.predictions = PredictionStore(self.direction)
        for sub in self.objectives.values():
            sub.keep_predictions = sub.blends_predictions

    def blend(self, candidates: Sequence[Mapping[str, Any]], max_members: int) -> Blend | None:
        """The greedy blend of ``candidates`` (the study's best trials, best first) across families, by
        their predictions on the rows that scored them (the same rows for every family;
        :func:`~src.mlops.blend.blend_trials`)."""
        return blend_trials(self.primary, self.predictions, candidates, max_members)

    def __call__(self, trial: optuna.Trial) -> float:
        from .reporters import TrialReporter

        ev = self.evaluate(self.suggest(trial), TrialReporter(trial))
        for k, v in ev.user_attrs.items():
            trial.set_user_attr(k, v)
        return ev.value

    def params_for(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """The family's defaults updated by the trial's unprefixed params (what its fits use)."""
        family, params = split_family_params(sampled)
        return self._objective(family).params_for(params)

    def family_objective(self, sampled: Mapping[str, Any]) -> ModelObjective:
        """The :class:`ModelObjective` of the family ``sampled`` names."""
        return self._objective(split_family_params(sampled)[0])

    def fit_final(self, sampled: Mapping[str, Any], **options: Any) -> FitResult:
        family, params = split_family_params(sampled)
        return self._objective(family).fit_final(params, **options)

    def fit_rows(self, sampled: Mapping[str, Any], X: Any, y: Any, **options: Any) -> FitResult:
        family, params = split_family_params(sampled)
        return self._objective(family).fit_rows(params, X, y, **options)

    def _objective(self, family: str) -> ModelObjective:
        try:
            return self.objectives[family]
        except KeyError:
            raise ConfigurationError(f"family {family!r} is not searched here; families: {self.families}") from None

    # -- the drop rule and the per-family record --------------------------------------------------
    def stats(self, trials: Iterable[FrozenTrial]) -> dict[str, dict[str, Any]]:
        """Per family: trial counts, best and defaults scores, mean fit seconds, dropped or not."""
        sign = 1.0 if self.direction == "maximize" else -1.0
        out: dict[str, dict[str, Any]] = {f: {"n_trials": 0, "n_complete": 0, "n_pruned": 0, "n_failed": 0,
                                              "n_dropped": 0, "best_value": None, "best_trial": None,
                                              "defaults_value": None, "defaults_trial": None, "fit_seconds": None}
                                          for f in self.families}
        best: dict[str, FrozenTrial] = {}
        seconds: dict[str, list[float]] = {f: [] for f in self.families}
        for t in trials:
            s = out.get(t.params.get(MODEL_PARAM))  # type: ignore[arg-type]
            if s is None or not t.state.is_finished():
                continue
            family = t.params[MODEL_PARAM]
            if t.state == TrialState.PRUNED and t.user_attrs.get(PRUNE_REASON_ATTR) == FAMILY_DROPPED:
                s["n_dropped"] += 1
                continue
            if t.state == TrialState.FAIL and t.user_attrs.get(FAIL_REASON_ATTR) in _FREE_FAILS:
                continue
            s["n_trials"] += 1
            if isinstance(t.user_attrs.get("fit_seconds"), (int, float)):
                seconds[family].append(float(t.user_attrs["fit_seconds"]))
            if t.state == TrialState.PRUNED:
                s["n_pruned"] += 1
            elif t.state == TrialState.FAIL:
                s["n_failed"] += 1
            elif t.state == TrialState.COMPLETE and t.values is not None:
                s["n_complete"] += 1
                if family not in best or sign * t.values[0] > sign * best[family].values[0]:  # type: ignore[operator]
                    best[family] = t
                if t.user_attrs.get(SOURCE_ATTR) == "defaults" and s["defaults_trial"] is None:
                    s["defaults_value"], s["defaults_trial"] = float(t.values[0]), t.number
        for f, t in best.items():
            out[f]["best_value"], out[f]["best_trial"] = float(t.values[0]), t.number  # type: ignore[arg-type]
        for f, secs in seconds.items():
            out[f]["fit_seconds"] = round(statistics.fmean(secs), 4) if secs else None
        leader = max(best, key=lambda f: sign * best[f].values[0], default=None)  # type: ignore[operator]
        for f, s in out.items():
            # multi-objective: a family trailing on the metric may still be on the front (cheaper): never dropped
            s["dropped"] = self.objective_set is None and leader is not None and f != leader and s["n_trials"] >= self.drop_after and (
                f not in best or sign * (best[leader].values[0] - best[f].values[0]) > self._margin(best[leader], s, out[leader]))
        return out

    def _margin(self, leader: FrozenTrial, family: Mapping[str, Any], leader_stats: Mapping[str, Any]) -> float:
        folds = leader.user_attrs.get("fold_scores")
        spread = statistics.stdev(folds) if isinstance(folds, list) and len(folds) >= 2 else 0.0
        margin = max(spread, self.drop_margin * abs(float(leader.values[0])))  # type: ignore[arg-type]
        mine, theirs = family.get("fit_seconds"), leader_stats.get("fit_seconds")
        if mine and theirs and mine > theirs:
            margin *= theirs / mine  # a costlier family must be closer to the leader to keep its budget
        return margin

    def dropped(self, trials: Iterable[FrozenTrial]) -> set[str]:
        """The families whose later trials are pruned without a fit (see the module docstring)."""
        return {f for f, s in self.stats(trials).items() if s["dropped"]}

    def annotate(self, result: OptimizationResult, trials: Sequence[FrozenTrial]) -> None:
        """Record the per-family statistics in ``result`` and make its best trial's family the chosen one."""
        stats = self.stats(trials)
        by_number = {t.number: t for t in trials}
        for f, s in stats.items():
            s["default_params"] = dict(self.objectives[f].default_params)
            d = by_number.get(s["defaults_trial"])
            s["defaults_user_attrs"] = dict(d.user_attrs) if d is not None else {}
        result.families = list(self.families)
        result.family_stats = stats
        if result.best_params:
            select_family(result, result.best_params)


def select_family(result: OptimizationResult, params: Mapping[str, Any]) -> None:
    """Make the trial with ``params`` (a family search's) the one the final fits use: ``algorithm``
    is its family, ``default_params`` / ``defaults_value`` / ``defaults_user_attrs`` its family's
    defaults and their trial, ``merged_params`` the defaults updated by its unprefixed params."""
    family, unprefixed = split_family_params(params)
    stats = (result.family_stats or {}).get(family)
    if stats is None:
        raise ConfigurationError(f"family {family!r} is not one of the study's families {result.families}")
    result.algorithm = family
    result.default_params = dict(stats["default_params"])
    result.merged_params = {**result.default_params, **unprefixed}
    result.defaults_value = stats["defaults_value"]
    result.defaults_user_attrs = dict(stats["defaults_user_attrs"])
