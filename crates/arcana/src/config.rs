//! Command line and environment: every flag has an `ARCANA_*` env fallback, and every secret can
//! also come from a file named by `<ENV>_FILE` (Kubernetes Secrets).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(
    name = "arcana",
    version,
    about = "arcana: user management and authentication platform"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve REST (and gRPC) — the default.
    Serve,
    /// Run database migrations and exit.
    Migrate,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document and exit.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an active, verified admin. The password comes from ARCANA_ADMIN_PASSWORD(_FILE) or stdin.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Where the monolith keeps its SQLite file and generated signing key.
    #[arg(long, env = "ARCANA_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// sqlite://<path>, postgres://… or mysql://… (default: sqlite://<data-dir>/arcana.db).
    #[arg(
        long,
        env = "ARCANA_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Maximum database connections.
    #[arg(long, env = "ARCANA_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: u32,
    #[arg(long, env = "ARCANA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// PBKDF2 iterations for new password hashes.
    #[arg(
        long,
        env = "ARCANA_PASSWORD_ITERATIONS",
        default_value_t = 600_000,
        global = true
    )]
    pub password_iterations: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(
        long,
        global = true,
        env = "ARCANA_HTTP_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub http_addr: SocketAddr,
    #[arg(
        long,
        global = true,
        env = "ARCANA_GRPC_ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub grpc_addr: SocketAddr,
    /// HS256 secret (≥ 32 bytes). Generated in the data dir for the monolith when absent.
    #[arg(long, global = true, env = "ARCANA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Ed25519 private key (PKCS#8 PEM): sign with EdDSA instead of HS256.
    #[arg(
        long,
        global = true,
        env = "ARCANA_JWT_PRIVATE_KEY",
        hide_env_values = true
    )]
    pub jwt_private_key: Option<String>,
    /// Extra Ed25519 public keys (PEM, concatenated) still accepted for verification (rotation).
    #[arg(long, global = true, env = "ARCANA_JWT_PUBLIC_KEYS")]
    pub jwt_public_keys: Option<String>,
    /// Access-token lifetime in seconds.
    #[arg(long, global = true, env = "ARCANA_ACCESS_TTL", default_value_t = 900)]
    pub access_ttl: u64,
    /// Refresh-token lifetime in seconds.
    #[arg(long, global = true, env = "ARCANA_REFRESH_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_ttl: u64,
    /// Requests per minute per client IP on login, register and refresh (0 disables).
    #[arg(
        long,
        global = true,
        env = "ARCANA_AUTH_RATE_LIMIT",
        default_value_t = 60
    )]
    pub auth_rate_limit: u32,
    /// CIDRs whose X-Forwarded-For is believed for the client IP (comma-separated).
    #[arg(
        long,
        global = true,
        env = "ARCANA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins allowed by CORS (comma-separated; none by default).
    #[arg(
        long,
        global = true,
        env = "ARCANA_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Seconds a request may take before it answers 503.
    #[arg(
        long,
        global = true,
        env = "ARCANA_REQUEST_TIMEOUT",
        default_value_t = 30
    )]
    pub request_timeout: u64,
    /// Threads that compute password hashes (default: the number of cores).
    #[arg(long, global = true, env = "ARCANA_HASH_WORKERS")]
    pub hash_workers: Option<usize>,
}

impl Common {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("arcana.db").display()))
    }
}

/// A secret from `value` (flag or env), else from the file named by `<env>_FILE`.
pub fn secret(value: Option<&str>, env: &str) -> anyhow::Result<Option<SecretString>> {
    if let Some(v) = value {
        return Ok(Some(SecretString::from(v.to_owned())));
    }
    let file_var = format!("{env}_FILE");
    match std::env::var_os(&file_var) {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {file_var} ({})", Path::new(&path).display()))?;
            let text = text.trim_end_matches(['\n', '\r']).to_owned();
            if text.is_empty() {
                bail!("{file_var} names an empty file");
            }
            Ok(Some(SecretString::from(text)))
        }
    }
}

/// A secret only configurable through the environment: `<env>` or the file named by `<env>_FILE`.
pub fn secret_env(env: &str) -> anyhow::Result<Option<SecretString>> {
    let value = std::env::var(env).ok().filter(|v| !v.is_empty());
    secret(value.as_deref(), env)
}

/// The HS256 secret kept in the data dir: read it, or create it (0600) on first start.
pub fn data_dir_jwt_secret(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join("jwt-secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim().to_owned();
        if text.len() >= 32 {
            return Ok(SecretString::from(text));
        }
        bail!(
            "{} holds fewer than 32 bytes; delete it to generate a new one",
            path.display()
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
    let secret = hex::encode(bytes);
    write_private(&path, &secret)?;
    tracing::warn!(
        path = %path.display(),
        "generated a JWT signing secret in the data dir; production deployments must supply their own \
         (ARCANA_JWT_SECRET[_FILE] or ARCANA_JWT_PRIVATE_KEY[_FILE])"
    );
    Ok(SecretString::from(secret))
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// Split concatenated PEM blocks.
pub fn pem_blocks(text: &str) -> Vec<String> {
    text.split_inclusive("-----END PUBLIC KEY-----")
        .map(str::trim)
        .filter(|b| b.contains("-----BEGIN"))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secret_prefers_value_then_file() {
        assert_eq!(
            secret(Some("x"), "ARCANA_TEST_NOPE")
                .unwrap()
                .map(|s| s.expose_secret().to_owned()),
            Some("x".into())
        );
        assert!(secret(None, "ARCANA_TEST_NOPE").unwrap().is_none());
    }

    #[test]
    fn generated_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = data_dir_jwt_secret(dir.path()).unwrap();
        let b = data_dir_jwt_secret(dir.path()).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().len() >= 64);
    }

    #[test]
    fn splits_pem_blocks() {
        let two = "-----BEGIN PUBLIC KEY-----\nA\n-----END PUBLIC KEY-----\n-----BEGIN PUBLIC KEY-----\nB\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem_blocks(two).len(), 2);
    }
}
