DROP INDEX IF EXISTS users_last_name_trgm;
DROP INDEX IF EXISTS users_first_name_trgm;
DROP INDEX IF EXISTS users_email_trgm;
DROP INDEX IF EXISTS users_username_trgm;
