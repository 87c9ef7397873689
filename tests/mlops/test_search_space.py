import json

import optuna
import pytest

from src.mlops.errors import SearchSpaceError
from src.mlops.models import get_model_spec
from src.mlops.search_space import SearchSpace, parse_search_space


def test_dict_and_tuple_shorthand_parse_to_the_same_space():
    a = parse_search_space({
        "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "kind": {"type": "categorical", "choices": ["svm", "tree"]},
        "c": {"type": "int", "low": 10, "high": 200, "when": {"kind": ["svm"]}},
        "n": {"type": "int", "low": 10, "high": 100, "step": 10},
    })
    b = parse_search_space({
        "lr": ("float", 1e-3, 1e-1, "log"),
        "kind": ("categorical", ["svm", "tree"]),
        "c": ("int", 10, 200, "when", "kind", "svm"),
        "n": ("int", 10, 100, 10),
    })
    assert a == b
    assert a.is_conditional


def test_json_round_trip_keeps_everything():
    space = get_model_spec("lightgbm").search_space("binary_classification")
    again = SearchSpace.from_json(space.to_json())
    assert again == space
    assert json.loads(space.to_json())["drop_rate"]["when"] == {"boosting_type": ["dart"]}


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"x": {"type": "float", "low": 2.0, "high": 1.0}}, "low <= high"),
        ({"x": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "low > 0"),
        ({"x": {"type": "categorical", "choices": []}}, "non-empty"),
        ({"x": {"type": "int", "low": 0, "high": 10, "step": 3}}, "does not fit"),
        ({"x": {"type": "float", "low": 0.0, "high": 1.0, "when": {"nope": ["a"]}}}, "unknown param 'nope'"),
        ({"k": ("categorical", ["a", "b"]), "x": ("float", 0.0, 1.0, "when", "k", "zzz")}, "not a possible value"),
        ({"x": {"type": "complex", "low": 0, "high": 1}}, "unknown type"),
        ({"x": ("float", 0.0)}, "use ('float', low, high"),
        ({"x": {"type": "int", "low": 0.5, "high": 3}}, "whole numbers"),
        ({"x": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "step": 0.1}}, "cannot be combined"),
    ],
)
def test_invalid_specs_name_the_param_and_the_rule(spec, fragment):
    with pytest.raises(SearchSpaceError) as e:
        parse_search_space(spec)
    assert fragment in str(e.value)
    assert "'x'" in str(e.value)


def test_condition_cycle_is_refused():
    with pytest.raises(SearchSpaceError, match="cycle"):
        parse_search_space({
            "a": ("categorical", [1, 2], "when", "b", 1),
            "b": ("categorical", [1, 2], "when", "a", 1),
        })


def test_children_come_after_parents_whatever_the_input_order():
    space = parse_search_space({"child": ("int", 1, 3, "when", "parent", "x"), "parent": ("categorical", ["x", "y"])})
    assert space.names == ["parent", "child"]


def test_lightgbm_sampling_respects_conditions():
    space = get_model_spec("lightgbm").search_space("binary_classification")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        params = space.sample(trial)
        bt = params["boosting_type"]
        seen.add(bt)
        dart_only = {"drop_rate", "max_drop", "skip_drop"} & set(params)
        assert bool(dart_only) == (bt == "dart")
        if bt == "goss":
            assert "bagging_fraction" not in params and "bagging_freq" not in params
        else:
            assert {"bagging_fraction", "bagging_freq"} <= set(params)
        study.tell(trial, 0.0)
    assert seen == {"gbdt", "dart", "goss"}


def test_project_keeps_only_in_space_active_values():
    space = get_model_spec("lightgbm").search_space("binary_classification")
    defaults = get_model_spec("lightgbm").default_params("binary_classification")
    projected = space.project(defaults)
    assert projected["boosting_type"] == "gbdt" and projected["num_leaves"] == 31
    # lambda 0 is outside a log range, max_depth -1 outside 3..12, bagging_freq 0 outside 1..10
    assert "lambda_l1" not in projected and "max_depth" not in projected and "bagging_freq" not in projected


def test_narrowing_shrinks_around_best_and_widens_on_a_bound():
    space = parse_search_space({"x": ("float", 0.0, 10.0), "n": ("int", 1, 100), "lr": ("float", 1e-3, 1.0, "log")})
    narrow = space.narrowed({"x": 5.0, "n": 100, "lr": 0.01}, shrink=0.5)
    assert narrow["x"].low == pytest.approx(2.5) and narrow["x"].high == pytest.approx(7.5)
    assert narrow["n"].high > 100  # best on the upper bound: widen beyond it
    assert 1e-3 < narrow["lr"].low < 0.01 < narrow["lr"].high < 1.0


def test_widening_on_a_bound_stays_within_what_the_range_implies_is_valid():
    space = parse_search_space({
        "share": ("float", 0.5, 1.0), "from_zero": ("float", 0.0, 1.0), "split": ("int", 2, 20),
        "leaves": ("int", 10, 200), "lr": ("float", 0.01, 0.3, "log"), "rounds": ("int", 50, 500, 50)})
    low = space.narrowed({"share": 0.5, "from_zero": 0.0, "split": 2, "leaves": 10, "lr": 0.01, "rounds": 50})
    assert low["share"].low == pytest.approx(0.375)  # widened below, a share stays a share
    assert low["from_zero"].low == 0.0  # nothing below 0
    assert low["split"].low == 2  # an int from 2 (e.g. min_samples_split) never goes below 2
    assert low["leaves"].low == 5  # half the positive lower bound at most
    assert low["lr"].low == pytest.approx(0.005) and low["lr"].high < 0.3
    assert low["rounds"].low == 50 and (low["rounds"].high - 50) % 50 == 0  # on the step grid, not below
    high = space.narrowed({"share": 1.0, "from_zero": 1.0, "split": 20, "leaves": 200, "lr": 0.3, "rounds": 500})
    assert high["share"].high == 1.0 and high["from_zero"].high == 1.0  # nothing above 1 for a share
    assert 20 < high["split"].high <= 40 and 200 < high["leaves"].high <= 400
    assert 0.3 < high["lr"].high <= 0.6
    # within the margin of a bound counts as on it; without a margin it does not
    assert space.narrowed({"leaves": 195}, margin=0.05)["leaves"].high > 200
    assert space.narrowed({"leaves": 195})["leaves"].high == 200
