"""The one secret redactor of the code base: DSNs, URLs and ``key=value`` secrets in free text.

* :func:`redact_secrets` -- any text (log lines, error messages, MLflow tags): the password of every
  ``scheme://user:password@host`` URL and the value of every ``password=`` / ``token:`` /
  ``secret=`` / ``api_key=`` ... pair become ``***`` (quoted values too).
* :func:`redact_dsn` -- a PostgreSQL DSN (URL or ``key=value`` form) for display; the password that
  libpq itself would parse (:func:`psycopg.conninfo.conninfo_to_dict`) is removed even where the
  patterns above would miss it.
* :func:`scrub_dsn` -- text (e.g. a driver message) without the DSN and its password.
* :func:`is_secret_key` -- whether a name (``database_url``, ``api-key``, ``DB_PASSWORD``...) holds a
  secret, so its whole value is hidden.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

__all__ = ["redact_secrets", "redact_dsn", "dsn_password", "scrub_dsn", "is_secret_key"]

_SECRET_WORDS = r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
#: ``scheme://user:password@`` (greedy up to the last ``@`` of the authority: a raw ``@`` in a password).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@?#\s]*:)(?P<pw>[^/?#\s]+)(?P<at>@)")
#: ``password=...``, ``token: ...``, ``'password': '...'`` (the key may be a suffix: ``db_password``).
_KV_SECRET = re.compile(
    rf"(?i)(?P<key>(?<![A-Za-z0-9])(?:{_SECRET_WORDS})['\"]?\s*[=:]\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&'\",;)}\]]+)"
)
_SECRET_KEY = re.compile(
    rf"(?i)(?:^|[._\-\s])(?:{_SECRET_WORDS}|credentials?|dsn|database[_-]?url|db[_-]?url|"
    r"connection[_-]?string|conn[_-]?str)(?:$|[._\-\s])"
)


def redact_secrets(value: Any) -> str:
    """``str(value)`` with credentials replaced by ``***``.

    >>> redact_secrets("postgresql://alice:s3cr3t@db:5432/hpo and token=abc")
    'postgresql://alice:***@db:5432/hpo and token=***'
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***{m.group('at')}", str(value))
    return _KV_SECRET.sub(lambda m: f"{m.group('key')}***", text)


def dsn_password(dsn: str) -> str | None:
    """The password libpq would use for ``dsn`` (URL or ``key=value`` form), or ``None``."""
    from psycopg import conninfo

    try:
        return conninfo.conninfo_to_dict(dsn).get("password") or None  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - not a DSN libpq can parse: nothing to scrub
        return None


def scrub_dsn(text: str, dsn: str) -> str:
    """``text`` without ``dsn`` (shown redacted) and without its password in any encoding."""
    text = redact_secrets(text.replace(dsn, redact_dsn(dsn)))
    password = dsn_password(dsn)
    if password:
        text = text.replace(quote(password, safe=""), "***").replace(password, "***")
    return text


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password (user info, ``password=`` query or key/value) replaced by ``***``.

    >>> redact_dsn("postgresql://alice:s3cr3t@db:5432/hpo")
    'postgresql://alice:***@db:5432/hpo'
    """
    if not isinstance(dsn, str):
        return "<not a string>"
    text = redact_secrets(dsn)
    password = dsn_password(dsn)
    if password and (password in text or quote(password, safe="") in text):
        text = text.replace(quote(password, safe=""), "***").replace(password, "***")
    return text


def is_secret_key(key: Any) -> bool:
    """Whether the name ``key`` holds a secret (``password``, ``api_key``, ``database_url``, ``DB_DSN``...)."""
    return bool(_SECRET_KEY.search(f"_{key}_"))
