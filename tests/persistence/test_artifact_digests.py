"""The history database keeps the digests of the model artifacts a run wrote (issue 9.1); one
contract suite for every HistoryRepository (in-memory fake and PostgreSQL)."""

from __future__ import annotations

import hashlib

import pytest

from src.mlops.errors import ConfigurationError
from src.mlops.persistence import HistoryRepository

MODEL = hashlib.sha256(b"model").hexdigest()
PREPARER = hashlib.sha256(b"preparer").hexdigest()


async def test_record_and_get_artifact_digests(repo: HistoryRepository) -> None:
    path = "/runs/r1/model"
    assert await repo.get_artifact_digests(path) is None
    await repo.record_artifact(path, {"model.skops": MODEL, "preparer.json": PREPARER}, run_id="r1", study_name="s")
    await repo.record_artifact(path, {"model.skops": MODEL, "preparer.json": PREPARER}, run_id="r1", study_name="s")
    assert await repo.get_artifact_digests(path) == {"model.skops": MODEL, "preparer.json": PREPARER}
    refit = hashlib.sha256(b"refit").hexdigest()
    await repo.record_artifact(path, {"model.skops": refit}, run_id="r1")  # saved again: the new digests
    assert await repo.get_artifact_digests(path) == {"model.skops": refit}
    assert await repo.get_artifact_digests("/runs/r1/model/") is None  # exact folder only


@pytest.mark.parametrize(("path", "digests", "fragment"), [
    ("runs/r1/model", {"model.skops": MODEL}, "absolute folder path"),
    ("/runs/r1/model", {}, "non-empty"),
    ("/runs/r1/model", {"../outside.pkl": MODEL}, "plain file name"),
    ("/runs/r1/model", {"model.skops": "abc"}, "64 lowercase hex"),
])
async def test_bad_artifact_records_are_refused(repo: HistoryRepository, path, digests, fragment) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        await repo.record_artifact(path, digests, run_id="r1")
    assert await repo.get_artifact_digests(path) is None
