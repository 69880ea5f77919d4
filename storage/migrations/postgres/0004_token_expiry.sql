-- routekit schema v4 (PostgreSQL): optional expiry of API tokens (unix seconds; NULL: never expires)
ALTER TABLE api_tokens ADD COLUMN expires_at DOUBLE PRECISION;
