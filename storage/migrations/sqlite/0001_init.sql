-- routekit schema v1 (SQLite)
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
CREATE TABLE master_keys (
    version TEXT PRIMARY KEY,
    key_check BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE data_keys (
    owner TEXT NOT NULL,
    generation INTEGER NOT NULL,
    master_version TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    active INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (owner, generation)
);
CREATE INDEX data_keys_master ON data_keys(master_version);
CREATE TABLE provider_configs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    label TEXT,
    api_key BLOB,
    base_url TEXT,
    default_model TEXT,
    extra_headers BLOB,
    options_json TEXT NOT NULL DEFAULT '{}',
    is_default INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'ok',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX provider_configs_one_default ON provider_configs(user_id, provider) WHERE is_default = 1;
CREATE TABLE mcp_servers (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    config_json TEXT NOT NULL,
    env BLOB,
    headers BLOB,
    status TEXT NOT NULL DEFAULT 'ok',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (owner, name)
);
CREATE TABLE oauth_tokens (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    server TEXT NOT NULL,
    tokens BLOB,
    client_info BLOB,
    updated_at REAL NOT NULL,
    UNIQUE (owner, server)
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_config_id TEXT,
    model TEXT,
    title TEXT,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    message_count INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE messages (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE tool_calls (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    arguments_json TEXT NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT,
    is_error INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (session_id, call_id)
);
CREATE TABLE usage (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_id TEXT,
    provider TEXT NOT NULL,
    config_id TEXT,
    model TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    streamed INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost_nanousd INTEGER,
    latency_ms REAL,
    ttft_ms REAL,
    status TEXT NOT NULL,
    error_class TEXT,
    request_id TEXT,
    created_at REAL NOT NULL,
    day TEXT NOT NULL
);
