-- Substring search over username / email / first and last name without a full scan: trigram GIN
-- indexes (pg_trgm) on the lower-cased columns the search's LIKE filters compare, one per column
-- (PostgreSQL combines them with a BitmapOr). pg_trgm is a trusted extension (PostgreSQL 13+): a
-- database owner may create it. Where it cannot be created the migration still succeeds, with a
-- warning, and search scans the table as before.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX users_username_trgm ON users USING gin (lower(username) gin_trgm_ops);
    CREATE INDEX users_email_trgm ON users USING gin (lower(email) gin_trgm_ops);
    CREATE INDEX users_first_name_trgm ON users USING gin (lower(first_name) gin_trgm_ops);
    CREATE INDEX users_last_name_trgm ON users USING gin (lower(last_name) gin_trgm_ops);
EXCEPTION WHEN insufficient_privilege OR undefined_file OR undefined_object OR feature_not_supported THEN
    RAISE WARNING 'pg_trgm is not available (%): user search will scan the users table', SQLERRM;
END
$$;
