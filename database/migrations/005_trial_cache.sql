-- 005: the trial cache (SPEC F12) and the schema lookup of warm starts (SPEC F11), issue 12.
-- A configuration evaluated once on the same data, by the same rules, is not trained again: its result
-- is stored under a key (SHA-256) that hashes the model family, problem type, metric, evaluation
-- scheme, data fingerprint, library versions and the fitted params (src/mlops/trial_cache.py). The
-- first result stored under a key stays (INSERT ... ON CONFLICT DO NOTHING). Rows are not tied to a
-- study: a result stays valid when the study it came from is deleted (study_name is provenance only).

CREATE TABLE ml_hpo_trial_cache (
    cache_key           TEXT PRIMARY KEY CHECK (cache_key ~ '^[0-9a-f]{64}$'),
    value               DOUBLE PRECISION NOT NULL CHECK (value NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)),
    params              JSONB NOT NULL DEFAULT '{}'::jsonb,     -- the trial's sampled params
    user_attrs          JSONB NOT NULL DEFAULT '{}'::jsonb,     -- fit seconds, fold scores, round count...
    intermediate_values JSONB NOT NULL DEFAULT '{}'::jsonb,     -- {"step": value}
    key_parts           JSONB NOT NULL DEFAULT '{}'::jsonb,     -- what the key hashes, but the params (for people)
    study_name          TEXT,
    trial_number        INTEGER,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- warm start's fallback: earlier studies of a table with the same columns and types (a study tag)
CREATE INDEX ml_hpo_studies_schema_idx
    ON ml_hpo_studies (algorithm_name, problem_type, (tags->>'schema_fingerprint'));
