"""Seeded, messy tabular datasets for benchmarks (no download: generated with numpy).

Every generator returns ``(frame, target_name, problem_type)``: one DataFrame holding raw,
"as read from a CSV" columns (strings for categories, NaN/None for missing values, identifier and
constant columns, numbers and dates stored as text) and the target column. The signal has
interactions and non-linearities, so the defaults of a boosting model are not already optimal.

    churn         binary, ~9 % positives, 12k rows: id, constant, 100-level city, NaNs, interactions
    segments      multiclass (4 string classes), 8k rows: strings, NaNs, money stored as text ("$1,234.50")
    house_prices  regression, 10k rows: right-skewed price, neighbourhood x quality interactions, NaNs
    noisy_signup  binary, 15k rows: make_classification with flip_y + noise features + a date column as text
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

__all__ = ["DATASETS", "make_dataset"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _mask(rng: np.random.Generator, values: np.ndarray | pd.Series, rate: float) -> np.ndarray:
    """``values`` (as object or float array) with a ``rate`` share set missing."""
    arr = np.asarray(values).copy()
    miss = rng.random(len(arr)) < rate
    if arr.dtype.kind in "fi":
        arr = arr.astype(float)
        arr[miss] = np.nan
    else:
        arr = arr.astype(object)
        arr[miss] = None
    return arr


def _levels(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}_{i:03d}" for i in range(n)], dtype=object)


def _calibrate_intercept(score: np.ndarray, rate: float) -> float:
    """Intercept b such that mean(sigmoid(score + b)) == rate (bisection)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if _sigmoid(score + mid).mean() > rate:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def churn(seed: int = 0, n: int = 12_000) -> tuple[pd.DataFrame, str, str]:
    """Imbalanced binary churn: ~9 % positives."""
    rng = np.random.default_rng(seed + 101)
    tenure = rng.gamma(2.0, 14.0, n).clip(0, 72).round()
    monthly = rng.normal(65, 25, n).clip(15, 150).round(2)
    age = rng.integers(18, 85, n).astype(float)
    calls = rng.poisson(1.3, n).astype(float)
    income = np.exp(rng.normal(10.6, 0.6, n)).round(-2)
    contract = rng.choice(["month-to-month", "one year", "two year"], n, p=[0.55, 0.25, 0.20])
    payment = rng.choice(["electronic check", "mailed check", "bank transfer", "credit card"], n)
    plan = rng.choice(["basic", "plus", "premium"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(_levels("R", 8), n)
    n_city = 100
    city_pop = rng.dirichlet(np.full(n_city, 0.8))
    city_idx = rng.choice(n_city, n, p=city_pop)
    city_effect = rng.normal(0, 0.9, n_city)
    region_effect = dict(zip(_levels("R", 8), rng.normal(0, 0.3, 8)))

    mtm = contract == "month-to-month"
    score = (
        -1.6 * np.log1p(tenure) / np.log(73)              # loyal customers stay
        + 1.3 * mtm
        + 0.025 * (monthly - 65) * mtm                     # price sensitivity only without contract
        - 0.6 * (contract == "two year")
        + 0.35 * (calls - 1.3) ** 2 * (calls > 2)         # non-linear: many support calls
        + 0.8 * ((payment == "electronic check") & (age > 60))
        + 0.5 * ((plan == "premium") & (calls >= 3))
        - 0.4 * np.log(income / 40_000) * (plan == "basic")
        + city_effect[city_idx]
        + np.vectorize(region_effect.get)(region)
        + rng.normal(0, 0.4, n)
    )
    y = rng.random(n) < _sigmoid(score + _calibrate_intercept(score, 0.09))

    total = (tenure * monthly * rng.normal(1, 0.05, n)).round(2)
    frame = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in rng.permutation(n) + 100_000],
        "tenure_months": _mask(rng, tenure, 0.05),
        "monthly_charges": _mask(rng, monthly, 0.08),
        "total_charges": _mask(rng, total, 0.15),
        "age": _mask(rng, age, 0.10),
        "support_calls": _mask(rng, calls, 0.06),
        "income": _mask(rng, income, 0.20),
        "contract": _mask(rng, contract, 0.07),
        "payment_method": _mask(rng, payment, 0.12),
        "plan": _mask(rng, plan, 0.05),
        "region": _mask(rng, region, 0.10),
        "city": _mask(rng, _levels("city", n_city)[city_idx], 0.08),
        "data_source": "crm_export",                       # constant
        "churned": np.where(y, 1, 0),
    })
    return frame, "churned", "binary_classification"


def segments(seed: int = 0, n: int = 8_000) -> tuple[pd.DataFrame, str, str]:
    """Multiclass customer segment (4 string classes), money stored as text."""
    rng = np.random.default_rng(seed + 202)
    x = rng.normal(0, 1, (n, 6))
    spend = np.exp(rng.normal(6.5, 1.0, n))
    channel = rng.choice(["web", "store", "phone", "partner", "app"], n, p=[0.35, 0.25, 0.1, 0.1, 0.2])
    device = rng.choice(["ios", "android", "desktop"], n)
    n_country = 30
    country_idx = rng.choice(n_country, n, p=rng.dirichlet(np.full(n_country, 1.0)))
    country_eff = rng.normal(0, 0.8, (n_country, 4))
    channel_eff = {c: rng.normal(0, 0.7, 4) for c in ["web", "store", "phone", "partner", "app"]}
    ls = np.log(spend) - 6.5

    scores = np.zeros((n, 4))
    scores[:, 0] = 1.2 * np.sin(2 * x[:, 0]) + 0.8 * x[:, 1] * x[:, 2] - 0.6 * ls
    scores[:, 1] = 1.0 * ls + 0.7 * (device == "ios") * x[:, 3] + 0.5 * np.abs(x[:, 4])
    scores[:, 2] = -0.8 * x[:, 1] + 0.9 * (x[:, 5] > 0.8) + 0.6 * (device == "desktop") * ls
    scores[:, 3] = 0.7 * x[:, 0] ** 2 - 0.5 * x[:, 3] + 0.4 * ls * x[:, 2]
    scores += country_eff[country_idx] + np.stack([channel_eff[c] for c in channel])
    scores += np.array([0.4, 0.0, -0.2, -0.5])
    p = np.exp(scores - scores.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    cls = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    labels = np.array(["bronze", "silver", "gold", "platinum"], dtype=object)[cls]

    spend_text = np.array([f"${v:,.2f}" for v in spend], dtype=object)
    spend_text[rng.random(n) < 0.04] = "N/A"
    frame = pd.DataFrame({
        "account": rng.permutation(n) + 5_000,              # unique integers, not named like an id
        **{f"x{i}": _mask(rng, x[:, i], r) for i, r in enumerate([0.0, 0.05, 0.1, 0.0, 0.15, 0.08])},
        "spend": _mask(rng, spend_text, 0.06),
        "channel": _mask(rng, channel, 0.10),
        "device": _mask(rng, device, 0.05),
        "country": _mask(rng, _levels("CC", n_country)[country_idx], 0.12),
        "segment": labels,
    })
    return frame, "segment", "multiclass_classification"


def house_prices(seed: int = 0, n: int = 10_000) -> tuple[pd.DataFrame, str, str]:
    """Regression on a right-skewed price (RMSE on the raw price)."""
    rng = np.random.default_rng(seed + 303)
    n_hood = 50
    hood_idx = rng.choice(n_hood, n, p=rng.dirichlet(np.full(n_hood, 1.5)))
    hood_eff = rng.normal(0, 0.35, n_hood)
    hood_group = rng.integers(0, 3, n_hood)                 # urban / suburban / rural
    size = rng.lognormal(7.4, 0.35, n).round()               # sq ft
    rooms = np.clip(np.round(size / 400 + rng.normal(0, 1, n)), 1, 10)
    quality = rng.integers(1, 11, n).astype(float)
    year = rng.integers(1900, 2024, n).astype(float)
    lot = rng.lognormal(8.5, 0.6, n).round()
    dist = rng.gamma(2.0, 6.0, n).round(1)
    style = rng.choice(["ranch", "colonial", "victorian", "modern", "split-level"], n)
    garage = rng.choice(["attached", "detached", "none"], n, p=[0.55, 0.3, 0.15])
    grp = hood_group[hood_idx]
    age = 2024 - year
    log_price = (
        11.6 + hood_eff[hood_idx]
        + 0.75 * np.log(size / 1600) * (1 + 0.06 * (quality - 5))  # size x quality interaction
        + 0.07 * quality + 0.012 * quality ** 2
        - 0.004 * age + 0.00004 * age ** 2 + 0.25 * (age > 95)    # U-shape: old houses are "historic"
        + 0.2 * (style == "victorian") * (grp == 0) - 0.15 * (style == "modern") * (grp == 2)
        + 0.12 * (garage == "attached") - 0.1 * (garage == "none") * (grp != 0)
        - 0.25 * np.log1p(dist) * (grp != 2)
        + 0.05 * np.log(lot / 5000)
        + rng.normal(0, 0.18, n)
    )
    price = np.exp(log_price).round(-2)
    frame = pd.DataFrame({
        "listing_id": rng.permutation(n) + 1,
        "neighborhood": _mask(rng, _levels("hood", n_hood)[hood_idx], 0.05),
        "sqft": _mask(rng, size, 0.07),
        "rooms": _mask(rng, rooms, 0.10),
        "overall_quality": quality,
        "year_built": _mask(rng, year, 0.12),
        "lot_area": _mask(rng, lot, 0.18),
        "dist_to_center_km": _mask(rng, dist, 0.05),
        "style": _mask(rng, style, 0.08),
        "garage_type": _mask(rng, garage, 0.10),
        "country": "US",                                     # constant
        "sale_price": price,
    })
    return frame, "sale_price", "regression"


def noisy_signup(seed: int = 0, n: int = 15_000) -> tuple[pd.DataFrame, str, str]:
    """Hard binary: weak signal, label noise, noise features, a date stored as text."""
    rng = np.random.default_rng(seed + 404)
    X, y = make_classification(
        n_samples=n, n_features=24, n_informative=6, n_redundant=3, n_repeated=0, n_clusters_per_class=3,
        flip_y=0.2, class_sep=0.5, weights=[0.75, 0.25], random_state=seed + 404,
    )
    dates = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    weekend = dates.dayofweek >= 5
    december = dates.month == 12
    # the date carries signal: weekend sign-ups in December convert more, and a drift over time
    drift = (dates - pd.Timestamp("2022-01-01")).days.to_numpy() / 730
    p_flip = 0.15 * weekend + 0.25 * december + 0.1 * drift
    flip = (rng.random(n) < p_flip) & (y == 0)
    y = np.where(flip, 1, y)
    tier = np.where(X[:, 0] > 0.8, "high", np.where(X[:, 0] > -0.5, "mid", "low")).astype(object)
    referrer = rng.choice(_levels("ref", 40), n)
    frame = pd.DataFrame({f"f{i:02d}": _mask(rng, X[:, i], 0.1 if i % 5 == 0 else 0.0) for i in range(X.shape[1])})
    frame["tier"] = _mask(rng, tier, 0.1)
    frame["referrer"] = _mask(rng, referrer, 0.15)           # pure noise, 40 levels
    frame["signup_date"] = _mask(rng, dates.strftime("%Y-%m-%d").to_numpy(), 0.03)
    frame["session_uuid"] = [f"s-{v:08x}" for v in rng.permutation(n) * 7919 + 12345]
    frame["converted"] = y.astype(int)
    return frame, "converted", "binary_classification"


DATASETS: dict[str, Callable[..., tuple[pd.DataFrame, str, str]]] = {
    "churn": churn,
    "segments": segments,
    "house_prices": house_prices,
    "noisy_signup": noisy_signup,
}


def make_dataset(name: str, seed: int = 0) -> tuple[pd.DataFrame, str, str]:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name](seed)
