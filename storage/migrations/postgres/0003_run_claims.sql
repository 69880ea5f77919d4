-- routekit schema v3 (PostgreSQL): a run's claim on its session, and model calls that may be in flight
-- One run per session, across instances: the claim (run id, owner, lease expiry in epoch seconds of the
-- server's clock) is taken with one conditional UPDATE, renewed while the run lives, cleared when it ends.
ALTER TABLE sessions ADD COLUMN run_id TEXT;
ALTER TABLE sessions ADD COLUMN run_owner TEXT;
ALTER TABLE sessions ADD COLUMN run_lease_until DOUBLE PRECISION;
-- A model call about to be made, written in the commit before it and removed in the commit that records its
-- usage: one left behind by a killed process becomes a usage row with status 'interrupted' (same id).
CREATE TABLE open_attempts (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_id TEXT,
    run_id TEXT,
    provider TEXT NOT NULL,
    config_id TEXT,
    model TEXT NOT NULL,
    streamed BIGINT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX open_attempts_session ON open_attempts(session_id);
