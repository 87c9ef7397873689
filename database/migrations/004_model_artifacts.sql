-- 004: the SHA-256 of the files of every model artifact a run wrote (issue 9.1).
-- A file beside a model cannot vouch for it (whoever swaps the model can rewrite that file too), so
-- the digests are kept where the run's other records are: load_model_artifact checks a folder against
-- them before reading any file (src/agents/ml_foundation/model_trainer/artifacts.py). Written by the
-- graph's register_model node through HistoryRepository.record_artifact; a folder saved again (e.g. a
-- refit) replaces its row.

CREATE TABLE ml_model_artifacts (
    path        TEXT PRIMARY KEY CHECK (path LIKE '/%'),      -- the artifact folder, absolute
    run_id      TEXT NOT NULL,
    study_name  TEXT,
    digests     JSONB NOT NULL CHECK (jsonb_typeof(digests) = 'object'),  -- file name -> SHA-256 (hex)
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX ml_model_artifacts_run_id_idx ON ml_model_artifacts (run_id);
