-- 006: the phases of adaptive narrowing (SPEC F13), issue 12.3.
-- A study tuned with phases > 1 (src/mlops/narrowing.py) records, per phase, its number, first and
-- last trial, the numeric ranges it sampled from, its trial counts and its best trial: a JSON array
-- written with the study's summary. NULL: the study ran in one phase (no narrowing).

ALTER TABLE ml_hpo_studies ADD COLUMN phases JSONB
    CHECK (phases IS NULL OR jsonb_typeof(phases) = 'array');
