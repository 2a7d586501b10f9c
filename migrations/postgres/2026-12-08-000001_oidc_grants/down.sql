DROP TABLE oidc_consents;
DROP TABLE oidc_grants;
DROP TABLE oidc_codes;
