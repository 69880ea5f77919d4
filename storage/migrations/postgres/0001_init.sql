-- routekit schema v1 (PostgreSQL)
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    last_used_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);
CREATE TABLE master_keys (
    version TEXT PRIMARY KEY,
    key_check BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE data_keys (
    owner TEXT NOT NULL,
    generation BIGINT NOT NULL,
    master_version TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    active BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (owner, generation)
);
CREATE INDEX data_keys_master ON data_keys(master_version);
CREATE TABLE provider_configs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    label TEXT,
    api_key BYTEA,
    base_url TEXT,
    default_model TEXT,
    extra_headers BYTEA,
    options_json TEXT NOT NULL DEFAULT '{}',
    is_default BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'ok',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX provider_configs_one_default ON provider_configs(user_id, provider) WHERE is_default = 1;
CREATE TABLE mcp_servers (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    config_json TEXT NOT NULL,
    env BYTEA,
    headers BYTEA,
    status TEXT NOT NULL DEFAULT 'ok',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (owner, name)
);
CREATE TABLE oauth_tokens (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    server TEXT NOT NULL,
    tokens BYTEA,
    client_info BYTEA,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (owner, server)
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_config_id TEXT,
    model TEXT,
    title TEXT,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    message_count BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE messages (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    role TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE tool_calls (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    arguments_json TEXT NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT,
    is_error BIGINT NOT NULL DEFAULT 0,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    PRIMARY KEY (session_id, call_id)
);
CREATE TABLE usage (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_id TEXT,
    provider TEXT NOT NULL,
    config_id TEXT,
    model TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    streamed BIGINT NOT NULL,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cache_read_tokens BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens BIGINT,
    cost_nanousd BIGINT,
    latency_ms DOUBLE PRECISION,
    ttft_ms DOUBLE PRECISION,
    status TEXT NOT NULL,
    error_class TEXT,
    request_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    day TEXT NOT NULL
);
