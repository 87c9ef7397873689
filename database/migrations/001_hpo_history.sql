-- 001: study and trial history of the HPO engine (SPEC F15, F16).
-- Applied by src/mlops/persistence/migrations.py in one transaction with its schema_migrations row.
-- Never edit this file once applied anywhere: add a new numbered file instead.

CREATE TABLE ml_experiments (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        TEXT NOT NULL UNIQUE CHECK (name <> ''),
    description TEXT,
    tags        JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE ml_hpo_studies (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    study_name          TEXT NOT NULL UNIQUE CHECK (study_name <> ''),
    experiment_id       UUID REFERENCES ml_experiments (id) ON DELETE SET NULL,
    algorithm_name      TEXT,
    problem_type        TEXT,
    -- first objective's direction (the one single-objective code reads) and all of them
    direction           TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
    directions          TEXT[] NOT NULL,
    metric              TEXT,
    metric_names        TEXT[] NOT NULL DEFAULT '{}',
    sampler_name        TEXT,
    pruner_name         TEXT,
    search_space        JSONB,
    n_trials            INTEGER CHECK (n_trials >= 0),          -- requested budget
    n_completed         INTEGER NOT NULL DEFAULT 0 CHECK (n_completed >= 0),
    n_pruned            INTEGER NOT NULL DEFAULT 0 CHECK (n_pruned >= 0),
    n_failed            INTEGER NOT NULL DEFAULT 0 CHECK (n_failed >= 0),
    best_trial_number   INTEGER CHECK (best_trial_number >= 0),
    best_value          DOUBLE PRECISION,
    best_values         DOUBLE PRECISION[],                     -- multi-objective: one point of the front
    best_params         JSONB,
    dataset_fingerprint TEXT,
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    stop_reason         TEXT,
    duration_seconds    DOUBLE PRECISION,
    tags                JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at        TIMESTAMPTZ,
    CONSTRAINT ml_hpo_studies_directions_check CHECK (
        cardinality(directions) >= 1
        AND directions <@ ARRAY['minimize', 'maximize']::TEXT[]
        AND directions[1] = direction
    )
);

-- warm start / history lookups: same algorithm, problem type and dataset
CREATE INDEX ml_hpo_studies_lookup_idx
    ON ml_hpo_studies (algorithm_name, problem_type, dataset_fingerprint);
CREATE INDEX ml_hpo_studies_experiment_idx ON ml_hpo_studies (experiment_id);
CREATE INDEX ml_hpo_studies_created_idx ON ml_hpo_studies (created_at DESC);

CREATE TABLE ml_hpo_trials (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    study_id            UUID NOT NULL REFERENCES ml_hpo_studies (id) ON DELETE CASCADE,
    trial_number        INTEGER NOT NULL CHECK (trial_number >= 0),
    state               TEXT NOT NULL CHECK (state IN ('RUNNING', 'WAITING', 'COMPLETE', 'PRUNED', 'FAIL')),
    params              JSONB NOT NULL DEFAULT '{}'::jsonb,
    distributions       JSONB NOT NULL DEFAULT '{}'::jsonb,     -- Optuna distribution JSON per param
    value               DOUBLE PRECISION,                       -- single-objective value
    objective_values    DOUBLE PRECISION[],                     -- every objective ("values" is reserved)
    intermediate_values JSONB NOT NULL DEFAULT '{}'::jsonb,     -- {"step": value}
    duration_seconds    DOUBLE PRECISION,
    fail_reason         TEXT,
    user_attrs          JSONB NOT NULL DEFAULT '{}'::jsonb,
    datetime_start      TIMESTAMPTZ,
    datetime_complete   TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ml_hpo_trials_study_number_key UNIQUE (study_id, trial_number)
);

-- best-trials query: completed trials of the matching studies, ordered by value
CREATE INDEX ml_hpo_trials_complete_value_idx
    ON ml_hpo_trials (study_id, value) WHERE state = 'COMPLETE';
CREATE INDEX ml_hpo_trials_state_idx ON ml_hpo_trials (study_id, state);
