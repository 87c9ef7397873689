import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.model_selection import train_test_split


@pytest.fixture(scope="session")
def binary_data():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    return X_tr, y_tr, X_va, y_va


@pytest.fixture(scope="session")
def small_data():
    """Tiny versions of a binary, a multiclass, a regression and an anomaly problem."""
    out = {}
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :8]
    out["binary_classification"] = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    X, y = load_iris(return_X_y=True, as_frame=True)
    y = y.map({0: "setosa", 1: "versicolor", 2: "virginica"})  # string labels on purpose
    out["multiclass_classification"] = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    out["regression"] = train_test_split(X, y, test_size=0.3, random_state=0)
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(300, 4))
    anomalies = rng.uniform(-6, 6, size=(30, 4))
    Xa = pd.DataFrame(np.vstack([normal, anomalies]), columns=list("abcd"))
    ya = np.r_[np.zeros(300, dtype=int), np.ones(30, dtype=int)]
    out["anomaly_detection"] = train_test_split(Xa, ya, test_size=0.4, random_state=0, stratify=ya)
    # train_test_split returns X_tr, X_va, y_tr, y_va
    return {k: (v[0], v[2], v[1], v[3]) for k, v in out.items()}


@pytest.fixture()
def messy_frame():
    rng = np.random.default_rng(1)
    n = 400
    X = pd.DataFrame({
        "num": rng.normal(size=n),
        "num_missing": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "city": pd.Series(rng.choice(["paris", "rome", "oslo", None], size=n), dtype="object"),
        "flag": rng.random(n) < 0.5,
    })
    logit = X["num"] + (X["city"] == "rome") * 1.5
    y = pd.Series(np.where(logit + rng.normal(scale=0.5, size=n) > 0.5, "yes", "no"))
    return X, y
