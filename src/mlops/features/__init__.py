"""Cleaning tabular data for the HPO engine: problem-type inference and model-ready features.

Everything here is a pure function or a plain dataclass; nothing prints. Problems with the data raise
:class:`~src.mlops.errors.DataValidationError` with a message that names the input, the rule it
broke and what to do instead.

* :func:`infer_problem_type` decides between binary/multiclass classification and regression.
* :func:`prepare_features` turns a messy frame into model-ready ``X``/``y``: rows with a missing
  target are dropped, identifier/constant/empty/free-text columns are dropped (each with a reason in
  ``dropped_columns``), numbers hidden in text are parsed, text becomes pandas ``category``, booleans
  become 0/1, datetimes are expanded to numeric parts (``<col>_year``, ``_month``, ``_day``,
  ``_dayofweek``, and ``_hour`` when the values carry a time of day). Its decisions per column are
  kept as a :class:`FeaturePreparer` (``PreparedData.preparer``; ``fit`` / ``transform``), which
  applies the same cleaning to new raw rows and is stored as JSON (:func:`save_preparer` /
  :func:`load_preparer`).

Layout: ``_text.py`` reads values out of text (numbers, money, percentages, booleans, dates);
``_rules.py`` holds the column rules (identifiers, constants, free text, the target and its problem
type); ``_convert.py`` converts one raw column (the same code for fit and transform); ``preparer.py``
is the :class:`FeaturePreparer`; ``_leaks.py`` names columns that alone predict the target (likely
leaks, warned about, never dropped); ``prepare.py`` is :func:`prepare_features`, which orchestrates them.
Loading lives in :mod:`src.mlops.datasets`; splitting in :mod:`src.mlops.splits`.
"""

from ._rules import infer_problem_type
from .prepare import PreparedData, prepare_features
from .preparer import FeaturePreparer, FitReport, load_preparer, save_preparer

__all__ = [
    "PreparedData",
    "FeaturePreparer",
    "FitReport",
    "infer_problem_type",
    "prepare_features",
    "save_preparer",
    "load_preparer",
]
