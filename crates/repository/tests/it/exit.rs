//! A process that ends while its pool is still opening connections ends cleanly. r2d2 opens
//! connections on worker threads of its own; a process that returned from `main` meanwhile ran
//! the client libraries' exit-time cleanup under them: OpenSSL's atexit handler freed what a
//! TLS handshake to PostgreSQL was using (SIGSEGV), Kerberos' destructor destroyed a mutex
//! libpq's GSSAPI probe held (SIGABRT), after every assertion had passed.
use std::process::Command;

use domain::UserRepository;
use repository::Backend;
use repository::testing::TestDb;

const CHILD: &str = "exit::child_ends_while_the_pool_connects";
const CHILD_URL: &str = "ARCANA_EXIT_CHILD_URL";
const CHILD_DELAY: &str = "ARCANA_EXIT_CHILD_DELAY_US";
const RUNS: u64 = 60;

/// The child process of `*_process_ends_cleanly` (ignored otherwise): opens a pool, asks for
/// more connections than it holds, and returns while the pool is still opening them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by exit::*_process_ends_cleanly"]
async fn child_ends_while_the_pool_connects() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let db = repository::Database::connect(&url, 8).unwrap();
    for _ in 0..8 {
        let db = db.clone();
        tokio::spawn(async move { db.ping().await });
    }
    let delay = std::env::var(CHILD_DELAY).unwrap().parse().unwrap();
    tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
}

fn process_ends_cleanly(backend: Backend) {
    let Some(t) = TestDb::from_env(backend) else {
        let reason = TestDb::skip_reason(backend).unwrap_or_default();
        repository::testing::skipped(&format!("process_ends_cleanly on {backend}"), &reason);
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let mut failures = Vec::new();
    for run in 0..RUNS {
        // From at once to 30 ms later: the pool's connections are at every stage of opening.
        let out = Command::new(&exe)
            .args(["--exact", CHILD, "--ignored", "--test-threads=1"])
            .env(CHILD_URL, t.url())
            .env(CHILD_DELAY, (run * 500).to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("1 passed") {
            failures.push(format!(
                "run {run}: {}\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {RUNS} processes did not end cleanly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn postgres_process_ends_cleanly() {
    process_ends_cleanly(Backend::Postgres);
}

#[test]
fn mysql_process_ends_cleanly() {
    process_ends_cleanly(Backend::Mysql);
}
