-- routekit schema v2 (PostgreSQL): per-user monthly budgets, and indexes for usage reports
CREATE TABLE budgets (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    monthly_nanousd BIGINT,
    monthly_tokens BIGINT,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX usage_user_day ON usage(user_id, day);
CREATE INDEX usage_session ON usage(session_id);
