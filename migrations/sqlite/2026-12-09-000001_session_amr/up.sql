-- How a session's login was authenticated: its OpenID Connect "amr" (Authentication Methods
-- References, RFC 8176) values, space-separated ("pwd", "pwd otp"). Every session opened before
-- second factors existed was opened with a password alone: the DEFAULT gives them 'pwd'.
ALTER TABLE sessions ADD COLUMN amr VARCHAR(64) NOT NULL DEFAULT 'pwd';
