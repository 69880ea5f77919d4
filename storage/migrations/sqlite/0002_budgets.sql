-- routekit schema v2 (SQLite): per-user monthly budgets, and indexes for usage reports
CREATE TABLE budgets (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    monthly_nanousd INTEGER,
    monthly_tokens INTEGER,
    updated_at REAL NOT NULL
);
CREATE INDEX usage_user_day ON usage(user_id, day);
CREATE INDEX usage_session ON usage(session_id);
