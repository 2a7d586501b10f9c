//! `--database-url` parsing: which backend, what the driver is given, and a printable form
//! without the password.
use std::fmt;
use std::path::PathBuf;

use domain::{Error, Result};

const FIELD: &str = "database_url";

/// Which database server a URL names (and a `Database` talks to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq waits forever for an unreachable host unless told otherwise.
const PG_CONNECT_TIMEOUT_SECS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqliteTarget {
    File(PathBuf),
    Memory,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DatabaseUrl {
    pub backend: Backend,
    /// What the driver is given (`establish`).
    pub target: String,
    /// The URL with its password replaced by `***`, for logs.
    pub redacted: String,
    /// For SQLite: the file (or memory) the URL names.
    pub sqlite: Option<SqliteTarget>,
    password: Option<String>,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("backend", &self.backend)
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let (scheme, rest) = url.split_once(':').ok_or_else(unknown_scheme)?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                // sqlite://path, sqlite:path, sqlite::memory:, sqlite://:memory:
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let target = match path {
                    "" => return Err(Error::validation(FIELD, "names no SQLite database file")),
                    ":memory:" => SqliteTarget::Memory,
                    p => SqliteTarget::File(PathBuf::from(p)),
                };
                let driver = match &target {
                    SqliteTarget::Memory => ":memory:".to_owned(),
                    SqliteTarget::File(p) => p.to_string_lossy().into_owned(),
                };
                Ok(Self {
                    backend: Backend::Sqlite,
                    target: driver,
                    redacted: url.to_owned(),
                    sqlite: Some(target),
                    password: None,
                })
            }
            "postgres" | "postgresql" => {
                let (redacted, password) = redact(url);
                let mut target = url.to_owned();
                if !target.contains("connect_timeout=") {
                    target.push(if target.contains('?') { '&' } else { '?' });
                    target.push_str(&format!("connect_timeout={PG_CONNECT_TIMEOUT_SECS}"));
                }
                Ok(Self {
                    backend: Backend::Postgres,
                    target,
                    redacted,
                    sqlite: None,
                    password,
                })
            }
            "mysql" | "mariadb" => {
                if !cfg!(feature = "mysql") {
                    return Err(Error::validation(
                        FIELD,
                        "MySQL/MariaDB support is not compiled into this build (cargo feature `mysql`)",
                    ));
                }
                let (redacted, password) = redact(url);
                let rest = rest.strip_prefix("//").ok_or_else(unknown_scheme)?;
                Ok(Self {
                    backend: Backend::Mysql,
                    target: format!("mysql://{rest}"),
                    redacted,
                    sqlite: None,
                    password,
                })
            }
            _ => Err(unknown_scheme()),
        }
    }

    /// `message` with the URL's password (if any, and long enough to be recognisable) removed:
    /// driver errors should not contain it, but nothing printed may.
    pub fn scrub(&self, message: &str) -> String {
        match &self.password {
            Some(p) if p.len() >= 4 => message.replace(p.as_str(), "***"),
            _ => message.to_owned(),
        }
    }
}

fn unknown_scheme() -> Error {
    Error::validation(
        FIELD,
        "must start with sqlite:, postgres://, postgresql://, mysql:// or mariadb://",
    )
}

/// Split `scheme://authority/path?query` at the end of the authority.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

/// The URL with the password in its user info (and a `password=` query parameter) replaced by
/// `***`, and the password that was removed.
fn redact(url: &str) -> (String, Option<String>) {
    let Some((scheme, authority, tail)) = split_authority(url) else {
        return (url.to_owned(), None);
    };
    let mut password = None;
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pw)) => {
                password = Some(pw.to_owned());
                format!("{user}:***@{host}")
            }
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if k.eq_ignore_ascii_case("password") => {
                        password.get_or_insert_with(|| v.to_owned());
                        format!("{k}=***")
                    }
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    (format!("{scheme}://{authority}{tail}"), password)
}

/// The same server URL naming database `name` instead of the one it names (used by the test
/// helper to create one database per test).
#[cfg(feature = "testing")]
pub(crate) fn with_database(url: &str, name: &str) -> Option<String> {
    let (scheme, authority, tail) = split_authority(url)?;
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    Some(format!("{scheme}://{authority}/{name}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_error(r: Result<DatabaseUrl>) -> bool {
        matches!(r, Err(Error::Validation(f)) if f.0.contains_key("database_url"))
    }

    #[test]
    fn sqlite_forms() {
        let u = DatabaseUrl::parse("sqlite://./data/arcana.db").unwrap();
        assert_eq!(u.backend, Backend::Sqlite);
        assert_eq!(u.target, "./data/arcana.db");
        assert_eq!(
            u.sqlite,
            Some(SqliteTarget::File(PathBuf::from("./data/arcana.db")))
        );
        let u = DatabaseUrl::parse("sqlite:///var/lib/arcana/a.db").unwrap();
        assert_eq!(u.target, "/var/lib/arcana/a.db");
        let u = DatabaseUrl::parse("sqlite:data/a.db").unwrap();
        assert_eq!(u.target, "data/a.db");
        let u = DatabaseUrl::parse("SQLITE:data/a.db").unwrap();
        assert_eq!(u.backend, Backend::Sqlite);
        for mem in ["sqlite::memory:", "sqlite://:memory:"] {
            let u = DatabaseUrl::parse(mem).unwrap();
            assert_eq!(u.sqlite, Some(SqliteTarget::Memory));
            assert_eq!(u.target, ":memory:");
        }
        assert!(field_error(DatabaseUrl::parse("sqlite://")));
        assert!(field_error(DatabaseUrl::parse("sqlite:")));
    }

    #[test]
    fn postgres_forms_get_a_connect_timeout() {
        let u = DatabaseUrl::parse("postgres://u:secretpw@db:5432/arcana").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(
            u.target,
            "postgres://u:secretpw@db:5432/arcana?connect_timeout=5"
        );
        assert_eq!(u.redacted, "postgres://u:***@db:5432/arcana");
        let u = DatabaseUrl::parse("postgresql://db/arcana?sslmode=require").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(
            u.target,
            "postgresql://db/arcana?sslmode=require&connect_timeout=5"
        );
        let u = DatabaseUrl::parse("postgres://db/a?connect_timeout=1").unwrap();
        assert_eq!(u.target, "postgres://db/a?connect_timeout=1");
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_and_mariadb() {
        let u = DatabaseUrl::parse("mysql://root:pw1234@127.0.0.1:3306/test").unwrap();
        assert_eq!(u.backend, Backend::Mysql);
        assert_eq!(u.target, "mysql://root:pw1234@127.0.0.1:3306/test");
        assert_eq!(u.redacted, "mysql://root:***@127.0.0.1:3306/test");
        let u = DatabaseUrl::parse("mariadb://root@127.0.0.1/test").unwrap();
        assert_eq!(u.backend, Backend::Mysql);
        assert_eq!(u.target, "mysql://root@127.0.0.1/test");
    }

    #[cfg(not(feature = "mysql"))]
    #[test]
    fn mysql_without_the_feature_is_a_validation_error() {
        assert!(field_error(DatabaseUrl::parse(
            "mysql://root@127.0.0.1/test"
        )));
    }

    #[test]
    fn unknown_schemes_are_validation_errors() {
        for bad in [
            "",
            "arcana.db",
            "redis://localhost",
            "http://x",
            "mysql:nohost",
        ] {
            let r = DatabaseUrl::parse(bad);
            if cfg!(not(feature = "mysql")) && bad.starts_with("mysql") {
                continue;
            }
            assert!(field_error(r), "{bad}");
        }
    }

    #[test]
    fn redaction_never_keeps_the_password() {
        let (r, pw) = redact("postgres://user:p%40ss:word@host/db?password=other&x=1");
        assert_eq!(pw.as_deref(), Some("p%40ss:word"));
        assert_eq!(r, "postgres://user:***@host/db?password=***&x=1");
        assert!(!r.contains("p%40ss") && !r.contains(":word") && !r.contains("other"));
        let (r, pw) = redact("postgres://host/db?user=u&password=hunter22");
        assert_eq!(pw.as_deref(), Some("hunter22"));
        assert_eq!(r, "postgres://host/db?user=u&password=***");
        let (r, pw) = redact("postgres://user@host/db");
        assert_eq!((r.as_str(), pw), ("postgres://user@host/db", None));
        let u = DatabaseUrl::parse("postgres://u:hunter22@h/db").unwrap();
        assert_eq!(u.scrub("auth failed for hunter22"), "auth failed for ***");
        assert!(!format!("{u:?}").contains("hunter22"));
    }

    #[test]
    #[cfg(feature = "testing")]
    fn database_name_replacement() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "arcana_t_1").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/arcana_t_1")
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x").as_deref(),
            Some("mysql://root@127.0.0.1:3306/x")
        );
        assert_eq!(
            with_database("postgres://h/test?sslmode=disable", "x").as_deref(),
            Some("postgres://h/x?sslmode=disable")
        );
    }
}
