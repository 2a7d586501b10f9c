-- User search stays a scan on MySQL/MariaDB: the substring index used on the other backends needs
-- MySQL's ngram FULLTEXT parser, which MariaDB does not have, and a FULLTEXT word index cannot
-- answer "contains". This migration only keeps the three migration histories in step.
SELECT 1;
