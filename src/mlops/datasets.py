"""Tabular data for the HPO engine: problem types and loading.

Everything here is a pure function or a plain dataclass; nothing prints. Problems with the data raise
:class:`~src.mlops.errors.DataValidationError` with a message that names the input, the rule it
broke and what to do instead.

* :data:`BINARY`, :data:`MULTICLASS`, :data:`REGRESSION`, :data:`ANOMALY` (:data:`PROBLEM_TYPES`) are
  re-exported from :mod:`src.mlops.problems`, where the problem types are defined.
* :func:`load_dataset` reads a CSV/TSV/TXT (optionally compressed) or Parquet file, a dataset bundled
  with scikit-learn (offline: ``breast_cancer``, ``iris``, ``wine``, ``diabetes``, ``digits``) or an
  in-memory DataFrame, and resolves the target column.
* :func:`write_atomically` writes a file so that readers never see a partial one (used for stored
  frames and preparers).

Problem-type inference and cleaning live in :mod:`src.mlops.features`; splitting and by-reference
storage in :mod:`src.mlops.splits`.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DataValidationError
from .problems import ANOMALY, BINARY, MULTICLASS, PROBLEM_TYPES, REGRESSION

__all__ = [
    "BINARY",
    "MULTICLASS",
    "REGRESSION",
    "ANOMALY",
    "PROBLEM_TYPES",
    "BUNDLED_DATASETS",
    "LoadedDataset",
    "load_dataset",
]

#: Datasets shipped inside scikit-learn (no download needed): name -> loader function name.
BUNDLED_DATASETS: dict[str, str] = {
    "breast_cancer": "load_breast_cancer",
    "iris": "load_iris",
    "wine": "load_wine",
    "diabetes": "load_diabetes",
    "digits": "load_digits",
}

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}
#: Strings read as missing in CSV files (in addition to pandas' defaults such as "NaN", "NULL", "None").
CSV_NA_VALUES: tuple[str, ...] = ("", "NA", "N/A", "null", "?")
#: Column names (case-insensitive) used as the target when ``target=None``.
_DEFAULT_TARGET_NAMES = ("target", "label", "class", "y")


# --------------------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------------------


@dataclass
class LoadedDataset:
    """A raw table and the name of its target column, as read from ``source``."""

    frame: pd.DataFrame
    target: str
    name: str
    source: str

    @property
    def n_rows(self) -> int:
        return int(self.frame.shape[0])


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _preview(items: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(str(c)) for c in list(items)[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _clean_column_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Strip whitespace from (string) column names and make them unique (``a``, ``a.1``...)."""
    names: list[Any] = []
    seen: set[Any] = set()
    for i, c in enumerate(frame.columns):
        name: Any = c.strip() if isinstance(c, str) else c
        if isinstance(name, str) and name == "":
            name = f"Unnamed: {i}"
        base, k = name, 1
        while name in seen:
            name = f"{base}.{k}"
            k += 1
        seen.add(name)
        names.append(name)
    if names != list(frame.columns):
        frame = frame.copy(deep=False)
        frame.columns = names
    return frame


def _split_suffix(path: Path) -> tuple[str | None, str | None]:
    """Return (format suffix, compression) of ``path``, e.g. ("".csv", "gzip") for ``x.csv.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if not suffixes:
        return None, None
    compression = None
    if suffixes[-1] in _COMPRESSION_SUFFIXES:
        compression = _COMPRESSION_SUFFIXES[suffixes[-1]]
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else None), compression


def _supported_extensions() -> str:
    return ", ".join(_TEXT_SUFFIXES + _PARQUET_SUFFIXES) + " (text formats may end in .gz/.bz2/.zip/.xz/.zst)"


def _read_text_table(path: Path, fmt: str, compression: str | None) -> pd.DataFrame:
    base_kwargs: dict[str, Any] = dict(
        na_values=list(CSV_NA_VALUES), keep_default_na=True, skipinitialspace=True, compression=compression or "infer"
    )
    sep = "\t" if fmt == ".tsv" else ","
    last_error: Exception | None = None
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(path, sep=sep, encoding=encoding, low_memory=False, **base_kwargs)
        except UnicodeDecodeError as e:
            last_error = e
            continue
        except pd.errors.EmptyDataError as e:
            raise DataValidationError(
                f"Dataset file {str(path)!r} is empty (no header and no rows); pass a file with a header line and data rows."
            ) from e
        except pd.errors.ParserError as e:
            # Often a file with another delimiter whose fields contain commas: let pandas sniff.
            frame = _read_sniffed(path, encoding, base_kwargs, e)
            return frame
        if frame.shape[1] == 1 and _header_has_other_delimiter(path, encoding, compression, sep):
            frame = _read_sniffed(path, encoding, base_kwargs, None)
        return frame
    raise DataValidationError(
        f"Cannot decode dataset file {str(path)!r} as UTF-8 or Latin-1 ({last_error}); re-save it as UTF-8 CSV."
    )


def _header_has_other_delimiter(path: Path, encoding: str, compression: str | None, sep: str) -> bool:
    try:
        if compression:
            import pandas.io.common as pio

            with pio.get_handle(str(path), "r", encoding=encoding, compression=compression) as handles:
                first = handles.handle.readline()
        else:
            with open(path, encoding=encoding, errors="replace") as fh:
                first = fh.readline()
    except Exception:  # pragma: no cover - a read problem shows up again in the real read
        return False
    return any(d in first for d in (";", "\t", "|", ",") if d != sep)


def _read_sniffed(path: Path, encoding: str, base_kwargs: dict[str, Any], cause: Exception | None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=None, engine="python", encoding=encoding, **base_kwargs)
    except (pd.errors.ParserError, csv.Error, ValueError) as e:
        detail = cause or e
        raise DataValidationError(
            f"Cannot parse dataset file {str(path)!r} as a delimited table ({detail}); check the delimiter and "
            "quoting, or convert it to a regular CSV or Parquet file."
        ) from e


def _read_file(path: Path) -> pd.DataFrame:
    fmt, compression = _split_suffix(path)
    if fmt not in _TEXT_SUFFIXES + _PARQUET_SUFFIXES:
        raise DataValidationError(
            f"Unknown dataset file extension for {str(path)!r}: supported are {_supported_extensions()}."
        )
    if path.stat().st_size == 0:
        raise DataValidationError(f"Dataset file {str(path)!r} is empty (0 bytes); pass a file with data.")
    if fmt in _PARQUET_SUFFIXES:
        if compression:
            raise DataValidationError(
                f"Dataset file {str(path)!r}: Parquet files are compressed internally; "
                "decompress the outer archive and pass the .parquet file."
            )
        try:
            frame = pd.read_parquet(path)
        except Exception as e:
            raise DataValidationError(f"Cannot read Parquet file {str(path)!r}: {e}") from e
    else:
        frame = _read_text_table(path, fmt, compression)
    if frame.shape[1] == 0:
        raise DataValidationError(f"Dataset file {str(path)!r} has no columns; pass a table with a header line.")
    if frame.shape[0] == 0:
        raise DataValidationError(
            f"Dataset file {str(path)!r} has a header ({frame.shape[1]} columns) but no data rows."
        )
    return frame


def _load_bundled(key: str) -> tuple[pd.DataFrame, str]:
    import sklearn.datasets as skd

    loader = getattr(skd, BUNDLED_DATASETS[key])
    bunch = loader(as_frame=True)
    frame = bunch.frame
    target = bunch.target.name if isinstance(bunch.target, pd.Series) else "target"
    return frame, str(target)


def _resolve_target(frame: pd.DataFrame, target: str | None, where: str) -> str:
    columns = [str(c) for c in frame.columns]
    if target is None:
        candidates = [c for c in frame.columns if str(c).lower() in _DEFAULT_TARGET_NAMES]
        if len(candidates) == 1:
            return candidates[0]
        raise DataValidationError(
            f"No target column given for {where}: pass target=<column name> "
            f"(columns: {_preview(columns)})."
        )
    if target in frame.columns:
        return target
    stripped = target.strip()
    if stripped in frame.columns:
        return stripped
    same_case = [c for c in columns if c.lower() == stripped.lower()]
    close = same_case or difflib.get_close_matches(stripped, columns, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise DataValidationError(
        f"Target column {target!r} is not in {where} (columns: {_preview(columns)}).{hint} "
        "Pass the exact column name as target."
    )


def load_dataset(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    target: str | None = None,
    name: str | None = None,
) -> LoadedDataset:
    """Load a table and resolve its target column.

    Args:
        source: a path to a ``.csv``/``.tsv``/``.txt`` file (optionally ``.gz``/``.bz2``/``.zip``/
            ``.xz``/``.zst``) or a ``.parquet``/``.pq`` file; the name of a dataset bundled with
            scikit-learn (see :data:`BUNDLED_DATASETS`); or an in-memory DataFrame.
        target: the target column. When ``None``, a bundled dataset uses its own target and a file
            uses the single column named ``target``/``label``/``class``/``y`` (any case), if any.
        name: a display name (default: the file stem, the bundled name, or ``"dataframe"``).

    CSV reading: comma separated unless the file is ``.tsv``; when that yields a single column and
    the header contains another delimiter, pandas sniffs it (``sep=None, engine="python"``).
    ``""``, ``NA``, ``N/A``, ``null``, ``?`` (and pandas' default NA strings) are read as missing;
    spaces after delimiters are skipped; UTF-8 (with or without BOM) then Latin-1 is tried.
    Column names are stripped of surrounding whitespace and made unique.

    Raises:
        DataValidationError: missing/empty/unreadable file, unknown extension, unknown bundled
            name, target column missing, or a target without a single non-missing value.
    """
    bundled_target: str | None = None
    if isinstance(source, pd.DataFrame):
        if target is None:
            raise DataValidationError(
                "An in-memory DataFrame needs target=<column name> "
                f"(columns: {_preview([str(c) for c in source.columns])})."
            )
        if source.shape[1] == 0 or source.shape[0] == 0:
            raise DataValidationError(
                f"The DataFrame passed as dataset is empty (shape {source.shape}); pass rows and columns."
            )
        frame = source
        src, display = "<dataframe>", name or "dataframe"
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text).expanduser()
        key = text.strip().lower().replace("-", "_")
        if path.is_file():
            frame = _read_file(path)
            stem = path.name
            for suf in reversed(path.suffixes):
                stem = stem[: -len(suf)] if stem.endswith(suf) else stem
            src, display = str(path.resolve()), name or stem or path.name
        elif path.is_dir():
            raise DataValidationError(
                f"Dataset source {text!r} is a directory; pass a CSV or Parquet file inside it."
            )
        elif key in BUNDLED_DATASETS:
            frame, bundled_target = _load_bundled(key)
            src, display = f"sklearn:{key}", name or key
        elif path.suffix or os.sep in text or "/" in text:
            raise DataValidationError(
                f"Dataset file {str(path.resolve())!r} does not exist; check the path "
                f"(supported extensions: {_supported_extensions()})."
            )
        else:
            raise DataValidationError(
                f"Unknown bundled dataset {text!r}: known names are {', '.join(sorted(BUNDLED_DATASETS))}; "
                "or pass the path of a CSV/Parquet file."
            )
    else:
        raise DataValidationError(
            f"Dataset source must be a file path, a bundled dataset name or a pandas DataFrame, "
            f"got {type(source).__name__}."
        )

    frame = _clean_column_names(frame)
    where = f"dataset {display!r}"
    target_col = _resolve_target(frame, target if target is not None else bundled_target, where)
    if frame[target_col].notna().sum() == 0:
        raise DataValidationError(
            f"Target column {target_col!r} of {where} has no non-missing value; choose another target column."
        )
    return LoadedDataset(frame=frame, target=str(target_col), name=str(display), source=src)


# --------------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------------


def _safe_file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return stem[:80] or "data"


def write_atomically(path: Path, write: Callable[[str], Any]) -> None:
    """``write(tmp)`` to a temporary file next to ``path``, then rename it to ``path`` (readers see
    the old file or the new one, never a partial one)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
