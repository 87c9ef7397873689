"""Loading, cleaning, splitting and by-reference storage of messy tabular data (src/mlops/datasets.py,
the features/ package and splits.py)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from src.mlops.datasets import BINARY, BUNDLED_DATASETS, MULTICLASS, REGRESSION, load_dataset
from src.mlops.errors import ConfigurationError, DataValidationError, MLOpsError
from src.mlops.features import FeaturePreparer, infer_problem_type, load_preparer, prepare_features, save_preparer
from src.mlops.splits import load_frame_ref, save_frame_ref, split_dataset


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def messy_frame() -> pd.DataFrame:
    """A Titanic-like table with every kind of mess prepare_features must handle."""
    rng = np.random.default_rng(0)
    n = 240
    return pd.DataFrame(
        {
            "PassengerId": np.arange(1, n + 1),
            "Ticket": rng.permutation(n) + 1000,  # unique ints, not an id name, not consecutive: kept
            "Age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(1, 80, n)).astype(float),
            "Sex": rng.choice(["male", "female", " ?", "  female "], n),
            "Fare": [f"${x:,.2f}" for x in rng.random(n) * 2000],
            "Score": [str(v) if i % 50 else "unknown" for i, v in enumerate(rng.normal(size=n).round(3))],
            "Name": [f"Person {i}" for i in range(n)],
            "Const": "x",
            "Empty": np.nan,
            "Flag": rng.choice(["True", "False", ""], n),
            "IsAdult": rng.choice([True, False], n),
            "Joined": pd.date_range("2020-01-01", periods=n, freq="37h").strftime("%Y-%m-%d %H:%M"),
            "Comment": [f"free text number {i * 7919 % 100003}" for i in range(n)],
            "city[1]": rng.choice(list("abcde"), n),
            "Survived": rng.choice(["yes", "no", "NA"], n, p=[0.4, 0.5, 0.1]),
        }
    )


# ------------------------------------------------------------------------------------------ loading


def test_load_csv_strips_names_reads_na_tokens(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(" id , age ,city, label \n1,30,Paris,yes\n2,?,N/A,no\n3,null,,yes\n4,NA,Rome,no\n")
    ds = load_dataset(path, target="label")
    assert ds.target == "label"
    assert ds.name == "people"
    assert ds.source == str(path.resolve())
    assert list(ds.frame.columns) == ["id", "age", "city", "label"]
    assert ds.frame["age"].isna().sum() == 3
    assert ds.frame["city"].isna().sum() == 2
    assert ds.n_rows == 4


def test_load_sniffs_semicolon_and_reads_tsv_and_gzip(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b;y\n1;x;0\n2;y;1\n3;z;0\n")
    ds = load_dataset(semi, target="y")
    assert list(ds.frame.columns) == ["a", "b", "y"]

    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\ty\n1\t2\t0\n3\t4\t1\n")
    assert load_dataset(tsv, target="y").frame.shape == (2, 3)

    gz = tmp_path / "data.csv.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("a,y\n1,0\n2,1\n")
    ds = load_dataset(gz, target="y")
    assert ds.name == "data" and ds.frame.shape == (2, 2)


def test_load_parquet_keeps_dtypes(tmp_path):
    df = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"]), "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    path = tmp_path / "d.parquet"
    df.to_parquet(path)
    ds = load_dataset(path, target="y")
    pd.testing.assert_frame_equal(ds.frame, df)  # category, float64 and int64 as written, same values


def test_load_bundled_and_dataframe():
    iris = load_dataset("iris")
    assert iris.target == "target" and iris.frame.shape == (150, 5) and iris.source == "sklearn:iris"
    assert set(BUNDLED_DATASETS) >= {"breast_cancer", "iris", "wine", "diabetes", "digits"}
    df = pd.DataFrame({"a": [1, 2], "t": [0, 1]})
    ds = load_dataset(df, target="t", name="mine")
    assert ds.name == "mine" and ds.source == "<dataframe>"


def test_load_default_target_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,Label\n1,0\n2,1\n")
    assert load_dataset(path).target == "Label"


@pytest.mark.parametrize(
    ("setup", "target", "match"),
    [
        (lambda p: None, "y", "does not exist"),
        (lambda p: p.write_text(""), "y", "empty"),
        (lambda p: p.write_text("a,y\n"), "y", "no data rows"),
        (lambda p: p.write_text("a,Survived\n1,0\n"), "survived", "Did you mean 'Survived'"),
        (lambda p: p.write_text("a,y\n1,\n2,NA\n"), "y", "no non-missing value"),
        (lambda p: p.write_text("a,b\n1,2\n"), None, "pass target="),
    ],
    ids=["missing-file", "empty-file", "header-only", "target-typo", "target-all-missing", "no-target"],
)
def test_load_errors(tmp_path, setup, target, match):
    path = tmp_path / "d.csv"
    setup(path)
    with pytest.raises(DataValidationError, match=match) as info:
        load_dataset(path, target=target)
    assert isinstance(info.value, MLOpsError) and isinstance(info.value, ValueError)


def test_load_unknown_extension_and_unknown_bundled_name(tmp_path):
    bad = tmp_path / "data.xlsx"
    bad.write_text("x")
    with pytest.raises(DataValidationError, match=r"extension.*\.csv"):
        load_dataset(bad, target="y")
    with pytest.raises(DataValidationError, match="known names are breast_cancer, diabetes, digits, iris, wine"):
        load_dataset("california_housing")
    with pytest.raises(DataValidationError, match="target="):
        load_dataset(pd.DataFrame({"a": [1]}))


# ------------------------------------------------------------------------------------------ problem type


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b", "a", None], BINARY),
        (["a", "b", "c"], MULTICLASS),
        ([True, False, True], BINARY),
        ([0, 1, 1, 0, np.nan], BINARY),
        ([0.0, 1.0, 2.0] * 20, MULTICLASS),
        (list(range(5)) * 30, MULTICLASS),
        (list(range(30)) * 2, REGRESSION),  # too many distinct ints for the rows
        (np.linspace(0, 1, 50).tolist(), REGRESSION),
        (["1.5", "2.25", "3.0", "4.75", "0.5", "9.1"], REGRESSION),  # numbers stored as text
        (pd.Categorical(["lo", "hi", "mid"]), MULTICLASS),
    ],
)
def test_infer_problem_type(values, expected):
    assert infer_problem_type(pd.Series(values)) == expected


def test_infer_problem_type_rejects_single_value():
    with pytest.raises(DataValidationError, match="single"):
        infer_problem_type(pd.Series(["a", "a", None]))
    with pytest.raises(DataValidationError, match="no non-missing"):
        infer_problem_type(pd.Series([None, np.nan], dtype=object))


# ------------------------------------------------------------------------------------------ prepare_features


def test_prepare_features_cleans_messy_table(messy_frame):
    prep = prepare_features(messy_frame, "Survived")
    X, y = prep.X, prep.y
    assert prep.problem_type == BINARY
    assert prep.n_dropped_rows == int((messy_frame["Survived"] == "NA").sum())
    assert len(X) == len(y) == len(messy_frame) - prep.n_dropped_rows
    assert prep.class_labels == ["no", "yes"]
    assert y.isin(["no", "yes"]).all()

    dropped = prep.dropped_columns
    assert "identifier" in dropped["PassengerId"]
    assert "identifier" in dropped["Name"]
    assert "constant" in dropped["Const"]
    assert "all values missing" in dropped["Empty"]
    assert dropped["Comment"] == "identifier (text unique per row)"
    assert "Ticket" in X.columns  # unique ints that are neither id-named nor a row counter stay

    assert isinstance(X["Sex"].dtype, pd.CategoricalDtype)
    assert set(X["Sex"].cat.categories) == {"male", "female"}  # stripped, '?' -> missing
    assert X["Sex"].isna().any()
    assert X["Fare"].dtype == "float64" and X["Fare"].notna().all()
    assert X["Score"].dtype == "float64" and X["Score"].isna().sum() == len(
        [i for i in messy_frame.index[messy_frame["Survived"] != "NA"] if i % 50 == 0]
    )
    assert "unparseable" in prep.conversions["Score"]
    assert set(X["Flag"].dropna().unique()) <= {0.0, 1.0} and X["Flag"].isna().any()
    assert X["IsAdult"].dtype == "int64"
    assert {"Joined_year", "Joined_month", "Joined_day", "Joined_dayofweek", "Joined_hour"} <= set(X.columns)
    assert "Joined" not in X.columns
    assert prep.renamed_columns == {"city[1]": "city_1_"}
    assert isinstance(X["city_1_"].dtype, pd.CategoricalDtype)

    for col in X.columns:
        assert isinstance(X[col].dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(X[col].dtype), col
    assert set(prep.categorical_columns) == {"Sex", "city_1_"}
    assert set(prep.numeric_columns) | set(prep.categorical_columns) == set(X.columns)
    lines = prep.describe()
    assert any("PassengerId" in line for line in lines)


def test_prepare_features_drops_free_text_but_keeps_repeated_categories():
    """Free text: more than 100 distinct values that are more than half of the non-missing ones (a
    value repeated or missing keeps it from being an identifier)."""
    n = 300
    notes = [f"note {i}" for i in range(n)]
    notes[1] = notes[0]  # not unique per row: not an identifier
    frame = pd.DataFrame({
        "notes": notes,
        "levels": [f"level {i % 150}" for i in range(n)],  # 150 distinct in 300 rows: half, kept
        "x": np.linspace(0, 1, n) ** 2,
        "y": [0, 1] * (n // 2),
    })
    prep = prepare_features(frame, "y")
    assert prep.dropped_columns == {"notes": "free text / very high cardinality (299 distinct values in 300 non-missing rows)"}
    assert prep.X["levels"].dtype == "category" and len(prep.X["levels"].cat.categories) == 150
    assert prep.conversions["levels"] == "text -> category (150 levels)"


def test_prepare_features_ids_counters_and_labels():
    n = 60
    df = pd.DataFrame(
        {
            "Unnamed: 0": np.arange(n),
            "customerID": np.arange(n)[::-1] * 3,
            "store_id": np.arange(n) % 4,  # id-named but not unique: a real feature
            "x": np.linspace(0, 1, n),
            "target": np.where(np.arange(n) % 3 == 0, np.nan, np.arange(n) % 2).astype(float),
        }
    )
    prep = prepare_features(df, "target")
    assert set(prep.dropped_columns) == {"Unnamed: 0", "customerID"}
    assert list(prep.X.columns) == ["store_id", "x"]
    assert prep.y.dtype == "int64" and prep.class_labels == [0, 1]
    assert prep.n_dropped_rows == 20


def test_prepare_features_regression_and_overrides():
    df = pd.DataFrame({"a": np.arange(20.0), "b": list("xy") * 10, "y": [str(v) for v in np.linspace(0, 5, 20)]})
    df.loc[3, "y"] = "inf"
    prep = prepare_features(df, "y")
    assert prep.problem_type == REGRESSION and prep.y.dtype == "float64"
    assert prep.n_dropped_rows == 1 and prep.class_labels is None

    bad = pd.DataFrame({"a": range(6), "y": ["1", "2", "x", "4", "5", "6"]})
    with pytest.raises(DataValidationError, match="non-numeric"):
        prepare_features(bad, "y", problem_type=REGRESSION)
    three = pd.DataFrame({"a": range(9), "y": list("abc") * 3})
    with pytest.raises(DataValidationError, match="3 classes"):
        prepare_features(three, "y", problem_type=BINARY)
    one = pd.DataFrame({"a": range(4), "y": ["a", "a", None, "a"]})
    with pytest.raises(DataValidationError, match="single class"):
        prepare_features(one, "y")
    with pytest.raises(ConfigurationError, match="problem_type"):
        prepare_features(three, "y", problem_type="ranking")
    only_junk = pd.DataFrame({"id": range(5), "c": 1, "y": [0, 1, 0, 1, 0]})
    with pytest.raises(DataValidationError, match="No usable feature"):
        prepare_features(only_junk, "y")


def test_prepare_features_keeps_time_column_as_seconds():
    df = pd.DataFrame(
        {
            "when": pd.date_range("2021-01-01", periods=30, freq="D"),
            "x": np.arange(30.0) % 7,
            "y": np.arange(30.0) * 1.5,
        }
    )
    prep = prepare_features(df, "y", time_column="when")
    assert prep.time_column == "when"
    assert prep.X["when"].dtype == "float64"
    assert prep.X["when"].is_monotonic_increasing
    assert "when_day" in prep.X.columns
    assert "when" not in prep.numeric_columns


# ------------------------------------------------------------------------------------------ splitting


def _index_sets(s):
    return set(s.X_train.index), set(s.X_val.index), set(s.X_test.index)


def test_split_stratified_is_disjoint_complete_and_reproducible():
    rng = np.random.default_rng(1)
    y = pd.Series(rng.choice(["a", "b", "c"], 500, p=[0.7, 0.25, 0.05]), name="y")
    X = pd.DataFrame({"x": rng.normal(size=500)})
    s = split_dataset(X, y)
    tr, va, te = _index_sets(s)
    assert not (tr & va or tr & te or va & te) and tr | va | te == set(X.index)
    assert s.strategy == "stratified"
    for part in (s.y_train, s.y_val, s.y_test):
        assert set(part) == {"a", "b", "c"}
    assert abs(len(s.X_test) - 100) <= 3 and abs(len(s.X_val) - 100) <= 3
    assert (s.y_train.index == s.X_train.index).all()
    again = split_dataset(X, y)
    assert list(again.X_test.index) == list(s.X_test.index)
    other = split_dataset(X, y, seed=7)
    assert list(other.X_test.index) != list(s.X_test.index)


def test_split_refuses_a_target_with_about_one_training_row_per_class():
    """Issue 9 item 13: 3,000 rows of 1,000 classes used to 'complete' at test accuracy 0.002."""
    X = pd.DataFrame({"a": np.arange(3000.0)})
    y = pd.Series([f"c{i % 1000}" for i in range(3000)])
    with pytest.raises(DataValidationError, match=r"1,000 classes for 3,000 rows: the median class gets 1 training"):
        split_dataset(X, y, rare_classes="train")
    y = pd.Series([f"c{i % 100}" for i in range(3000)])  # 30 rows a class: learnable
    assert split_dataset(X, y, rare_classes="train").y_train.value_counts().median() >= 3


def test_split_rare_class_error_and_policies():
    y = pd.Series(["a"] * 20 + ["b"] * 20 + ["rare"] * 2)
    X = pd.DataFrame({"x": range(42)})
    with pytest.raises(DataValidationError, match=r"'rare' \(2 rows\)"):
        split_dataset(X, y)
    s = split_dataset(X, y, rare_classes="train")
    assert (s.y_train == "rare").sum() == 2 and "rare" not in set(s.y_val) | set(s.y_test)
    s = split_dataset(X, y, rare_classes="drop")
    assert sum(s.sizes.values()) == 40 and any("dropped" in n for n in s.notes)
    s = split_dataset(X, y, stratify=False)
    assert s.strategy == "random" and sum(s.sizes.values()) == 42


def test_split_regression_random_and_size_errors():
    X = pd.DataFrame({"x": np.arange(10.0)})
    y = pd.Series(np.linspace(0, 1, 10))
    s = split_dataset(X, y, test_size=0.2, val_size=0.2)
    assert s.strategy == "random" and s.sizes == {"train": 6, "val": 2, "test": 2}
    with pytest.raises(ConfigurationError, match="test_size"):
        split_dataset(X, y, test_size=0)
    with pytest.raises(ConfigurationError, match="val_size"):
        split_dataset(X, y, val_size=1.5)
    with pytest.raises(ConfigurationError, match="< 1"):
        split_dataset(X, y, test_size=0.5, val_size=0.5)
    with pytest.raises(DataValidationError, match="training split would be empty"):
        split_dataset(X.head(2), y.head(2), problem_type=REGRESSION)
    with pytest.raises(DataValidationError, match="same length"):
        split_dataset(X, y.head(3))


def test_split_time_ordered():
    n = 50
    when = pd.Series(pd.date_range("2022-01-01", periods=n, freq="h")).sample(frac=1, random_state=0)
    X = pd.DataFrame({"when": when.to_numpy(), "x": np.arange(n)})
    y = pd.Series(np.arange(n) % 2)
    s = split_dataset(X, y, time_column="when")
    assert s.strategy == "time" and "when" not in s.X_train.columns
    t = X["when"]
    assert t[s.X_train.index].max() < t[s.X_val.index].min()
    assert t[s.X_val.index].max() < t[s.X_test.index].min()
    kept = split_dataset(X, y, time_column="when", keep_time_column=True)
    assert kept.X_train["when"].dtype == "float64"
    with pytest.raises(ConfigurationError, match="stratify=True"):
        split_dataset(X, y, time_column="when", stratify=True)
    X_missing = X.copy()
    X_missing.loc[0, "when"] = pd.NaT
    with pytest.raises(DataValidationError, match="missing"):
        split_dataset(X_missing, y, time_column="when")


def test_prepare_then_split_end_to_end(messy_frame):
    prep = prepare_features(messy_frame, "Survived", time_column="Joined")
    s = split_dataset(prep.X, prep.y, time_column=prep.time_column, problem_type=prep.problem_type)
    assert "Joined" not in s.X_train.columns and "Joined_year" in s.X_train.columns
    assert sum(s.sizes.values()) == len(prep.X)


# ------------------------------------------------------------------------------------------ references


def test_frame_ref_round_trip_keeps_dtypes_and_index(tmp_path):
    df = pd.DataFrame(
        {
            "cat": pd.Categorical(["a", None, "b", "a"], categories=["a", "b", "unused"]),
            "ordered": pd.Categorical(["lo", "hi", "lo", "hi"], categories=["lo", "hi"], ordered=True),
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "x": [0.5, np.nan, 1.5, 2.0],
            "s": ["p", "q", None, "r"],
            7: [1, 2, 3, 4],
        },
        index=[10, 20, 30, 40],
    )
    ref = save_frame_ref(df, tmp_path / "refs", "X_train")
    assert json.loads(json.dumps(ref)) == ref
    assert ref["n_rows"] == 4 and ref["n_cols"] == 6 and ref["columns"][-1] == "7" and ref["kind"] == "frame"
    back = load_frame_ref(ref)
    assert list(back.index) == [10, 20, 30, 40]
    assert list(back["cat"].cat.categories) == ["a", "b", "unused"]
    assert back["ordered"].cat.ordered and back["cat"].isna().sum() == 1
    assert str(back["n"].dtype) == "Int64"
    pd.testing.assert_frame_equal(back, df.rename(columns=str))


def test_series_ref_round_trip(tmp_path):
    y = pd.Series(["yes", "no", "yes"], name="Survived", index=[5, 6, 7])
    back = load_frame_ref(save_frame_ref(y, tmp_path, "y_train"))
    assert isinstance(back, pd.Series) and back.name == "Survived"
    pd.testing.assert_series_equal(back, y)
    unnamed = pd.Series([1.0, 2.0])
    back = load_frame_ref(save_frame_ref(unnamed, tmp_path, "y"))
    assert back.name is None
    pd.testing.assert_series_equal(back, unnamed)


def test_ref_detects_changed_and_missing_file(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3]})
    ref = save_frame_ref(df, tmp_path, "X")
    pd.DataFrame({"a": [1, 2, 4]}).to_parquet(ref["path"])
    with pytest.raises(DataValidationError, match="changed"):
        load_frame_ref(ref)
    assert load_frame_ref(ref, verify=False)["a"].tolist() == [1, 2, 4]
    ref2 = save_frame_ref(df, tmp_path, "X2")
    (tmp_path / ref2["path"].rsplit("/", 1)[1]).unlink()
    with pytest.raises(DataValidationError, match="missing"):
        load_frame_ref(ref2)
    with pytest.raises(DataValidationError, match="Malformed"):
        load_frame_ref({"path": "x"})


def test_latin1_semicolon_file_with_decimal_commas(tmp_path):
    path = tmp_path / "euro.csv"
    path.write_bytes("prix;ville;cible\n1,5;Créteil;oui\n2,25;Paris;non\n3,0;Créteil;oui\n".encode("latin-1"))
    ds = load_dataset(path, target="cible")
    assert ds.frame["ville"].tolist() == ["Créteil", "Paris", "Créteil"]
    prep = prepare_features(ds.frame, ds.target)
    assert prep.X["prix"].tolist() == [1.5, 2.25, 3.0]


def test_declared_categories_are_not_parsed_as_numbers():
    df = pd.DataFrame({"zip": pd.Categorical(["75001", "69001", "75001", "13001"] * 5), "y": [0, 1] * 10})
    prep = prepare_features(df, "y")
    assert isinstance(prep.X["zip"].dtype, pd.CategoricalDtype)
    assert prep.categorical_columns == ["zip"]


# ------------------------------------------------------------------------------------------ preparer


@pytest.fixture
def raw_rows(messy_frame) -> pd.DataFrame:
    """messy_frame plus percent text, decimal commas and a date column whose year never changes."""
    n = len(messy_frame)
    rng = np.random.default_rng(7)
    return messy_frame.assign(
        Discount=[f"{v}%" for v in rng.integers(0, 40, n)],
        Weight=[f"{v:.1f}".replace(".", ",") for v in rng.random(n) * 90],
        Visit=pd.date_range("2021-01-01", periods=n, freq="25h").strftime("%d/%m/%Y"),
    )


def test_preparer_replays_the_training_cleaning(raw_rows):
    prep = prepare_features(raw_rows, "Survived")
    preparer = prep.preparer
    assert isinstance(preparer, FeaturePreparer)
    assert preparer.feature_names == list(prep.X.columns)
    assert "Visit_year" not in prep.X.columns and "Visit_month" in prep.X.columns  # constant part left out
    assert {"Discount", "Weight", "city_1_"} <= set(prep.X.columns)

    with_target = preparer.transform(raw_rows)
    assert len(with_target) == len(raw_rows)  # every row is predicted, a missing target included
    pd.testing.assert_frame_equal(with_target.loc[prep.X.index], prep.X)
    without_target = preparer.transform(raw_rows.drop(columns=["Survived", "PassengerId", "Const", "Name"]))
    pd.testing.assert_frame_equal(without_target, with_target)
    # other column order, an extra column, names padded with spaces: the same features
    shuffled = raw_rows[list(reversed(raw_rows.columns))].assign(extra=1).rename(columns={"Fare": " Fare "})
    pd.testing.assert_frame_equal(preparer.transform(shuffled), with_target)
    # a few new rows at a time: the decisions are the training ones, not the batch's
    some = prep.X.index[[0, 5, 17]]
    pd.testing.assert_frame_equal(preparer.transform(raw_rows.loc[some]), prep.X.loc[some])
    # the same rows typed differently (as a Parquet file or code would give them): the same features
    typed = raw_rows.assign(
        Joined=pd.to_datetime(raw_rows["Joined"]),
        Flag=raw_rows["Flag"].map({"True": True, "False": False, "": None}),
        Ticket=raw_rows["Ticket"].astype(str),
        Sex=raw_rows["Sex"].astype("category"),
    )
    pd.testing.assert_frame_equal(preparer.transform(typed), with_target)
    assert preparer.transform(raw_rows.head(0)).dtypes.equals(prep.X.dtypes)


def test_preparer_fit_transform_is_prepare_features_without_the_target(raw_rows):
    """FeaturePreparer is usable on its own: fit on rows, then transform; prepare_features is a thin
    orchestrator over it (target rows dropped, then the same fit)."""
    prep = prepare_features(raw_rows, "Survived", time_column="Joined", drop_columns=["Fare"])
    rows = raw_rows.loc[prep.X.index]
    preparer = FeaturePreparer("Survived")
    X = preparer.fit_transform(rows, time_column="Joined", drop_columns=["Fare"])
    pd.testing.assert_frame_equal(X, prep.X)
    assert preparer == prep.preparer and preparer.to_dict() == prep.preparer.to_dict()
    assert preparer.dropped_columns["Fare"] == "dropped by request"
    report = preparer.report
    assert report.time_feature == "Joined" and report.feature_kinds["Joined"] == "time"
    assert report.conversions == prep.conversions and report.renamed_columns == prep.renamed_columns == {"city[1]": "city_1_"}
    assert [c for c, k in report.feature_kinds.items() if k == "categorical"] == prep.categorical_columns
    # fit returns the preparer; transform of the same rows gives the fitted features
    again = FeaturePreparer("Survived").fit(rows, time_column="Joined", drop_columns=["Fare"])
    pd.testing.assert_frame_equal(again.transform(rows), prep.X)
    assert FeaturePreparer.from_dict(again.to_dict()).report is None  # the report is not saved
    with pytest.raises(DataValidationError, match="FeaturePreparer.fit needs a pandas DataFrame, got list"):
        FeaturePreparer("Survived").fit([1, 2])


def test_preparer_new_values_follow_the_training_rules(raw_rows):
    preparer = prepare_features(raw_rows, "Survived").preparer
    new = raw_rows.head(2).copy()
    new["Sex"] = ["robot", None]
    new["Fare"] = ["$1,234.50", "call us"]
    new["Score"] = ["$5", "2.5"]  # this column was plain numbers at training: '$5' does not parse
    new["Flag"] = ["maybe", "TRUE"]
    new["Ticket"] = [np.nan, 12]  # an integer feature meeting a missing value
    X = preparer.transform(new)
    assert list(X["Sex"].cat.categories) == ["female", "male", "robot"]  # training categories first
    assert X["Sex"].iloc[0] == "robot" and pd.isna(X["Sex"].iloc[1])
    assert X["Fare"].iloc[0] == 1234.5 and np.isnan(X["Fare"].iloc[1])
    assert np.isnan(X["Score"].iloc[0]) and X["Score"].iloc[1] == 2.5
    assert np.isnan(X["Flag"].iloc[0]) and X["Flag"].iloc[1] == 1.0
    assert X["Ticket"].dtype == "float64" and np.isnan(X["Ticket"].iloc[0])


def test_preparer_matches_codes_read_as_numbers():
    df = pd.DataFrame({"code": ["75001", "69001", "A12", None] * 10, "y": [0, 1] * 20})
    preparer = prepare_features(df, "y").preparer
    # a new file whose codes are all numbers (and one missing): pandas reads them as floats
    X = preparer.transform(pd.DataFrame({"code": [75001.0, np.nan, 69001.0]}))
    assert list(X["code"].cat.categories) == ["69001", "75001", "A12"]
    assert X["code"].tolist()[0] == "75001" and pd.isna(X["code"].iloc[1]) and X["code"].iloc[2] == "69001"


def test_preparer_missing_columns_and_bad_input(raw_rows):
    preparer = prepare_features(raw_rows, "Survived").preparer
    assert "Survived" not in preparer.required_columns and "PassengerId" not in preparer.required_columns
    with pytest.raises(DataValidationError, match=r"missing 2 columns.*'Fare'.*'Joined'"):
        preparer.transform(raw_rows.drop(columns=["Fare", "Joined"]))
    with pytest.raises(DataValidationError, match="DataFrame"):
        preparer.transform(raw_rows.to_numpy())


def test_preparer_json_round_trip(tmp_path, raw_rows):
    preparer = prepare_features(raw_rows, "Survived").preparer
    data = json.loads(json.dumps(preparer.to_dict(), allow_nan=False))  # JSON only, no pickle
    again = FeaturePreparer.from_dict(data)
    assert again.to_dict() == preparer.to_dict()
    pd.testing.assert_frame_equal(again.transform(raw_rows), preparer.transform(raw_rows))
    path = save_preparer(preparer, tmp_path / "data")
    assert path.endswith(".json") and save_preparer(preparer, tmp_path / "data") == path  # content-addressed
    pd.testing.assert_frame_equal(load_preparer(path).transform(raw_rows), preparer.transform(raw_rows))
    for bad in ({**data, "format_version": 99}, {**data, "steps": [{"source": "a", "kind": "magic"}]}):
        with pytest.raises(DataValidationError, match="Malformed feature preparer"):
            FeaturePreparer.from_dict(bad)


def test_preparer_with_time_column_and_native_dtypes():
    n = 40
    df = pd.DataFrame(
        {
            "when": pd.date_range("2021-01-01", periods=n, freq="D", tz="Europe/Paris"),
            "count": pd.array([1, 2, None, 4] * 10, dtype="Int64"),
            "ok": pd.array([True, False] * 20, dtype="boolean"),
            "wait": pd.to_timedelta(np.arange(n), unit="m"),
            "y": np.arange(n) * 1.5,
        }
    )
    prep = prepare_features(df, "y", time_column="when")
    pd.testing.assert_frame_equal(prep.preparer.transform(df), prep.X)
    as_text = df.astype({"when": str, "count": object, "ok": str, "wait": str})
    pd.testing.assert_frame_equal(prep.preparer.transform(as_text), prep.X)


def test_date_parts_never_overwrite_a_column_of_the_same_name():
    n = 120
    frame = pd.DataFrame({
        "d": pd.date_range("2020-01-01", periods=n, freq="37h").astype(str),
        "d_month": (np.arange(n) % 7).astype(float),  # a real column named like a date part
        "y": np.arange(n) % 2,
    })
    prepared = prepare_features(frame, "y")
    assert prepared.X["d_month"].tolist() == frame["d_month"].tolist()
    assert "d_month_2" in prepared.X.columns  # the date part got a free name
    assert "d_month -> d_month_2" in prepared.conversions["d"]
    again = prepared.preparer.transform(frame)
    pd.testing.assert_frame_equal(again, prepared.X)
