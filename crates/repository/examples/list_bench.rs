//! How listing users behaves at scale.
//!
//! ```text
//! cargo run --release -p repository --example list_bench -- [database-url] [rows]
//! ```
//! Defaults: `sqlite://target/list_bench/arcana.db`, 1,000,000 rows. Seeds the users table with
//! multi-row INSERTs inside large transactions (skipped when it already holds enough rows), then
//! times the list queries the admin API runs, through the `UserRepository` port.
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::Connection;
use diesel::connection::SimpleConnection;
use domain::{Cursor, PageInfo, PageRequest, Role, SortOrder, UserQuery, UserRepository, UserSort};
use repository::{Backend, Database};

const ROWS_PER_INSERT: u64 = 500;
const INSERTS_PER_TRANSACTION: u64 = 100;
const RUNS: usize = 7;
const WORDS: [&str; 16] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];
const FIRST: [&str; 8] = [
    "Ann", "Bob", "Cleo", "Dmitri", "Eva", "Farid", "Gus", "Hana",
];
const LAST: [&str; 8] = [
    "Smith", "Jones", "Garcia", "Kim", "Novak", "Okafor", "Rossi", "Tanaka",
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite://target/list_bench/arcana.db".into());
    let rows: u64 = match args.next() {
        Some(n) => n
            .replace('_', "")
            .parse()
            .context("rows must be a number")?,
        None => 1_000_000,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(&url, rows))
}

async fn bench(url: &str, rows: u64) -> anyhow::Result<()> {
    let db = Database::connect(url, 4).map_err(|e| anyhow::anyhow!("connect: {e}"))?;
    db.run_migrations()
        .await
        .map_err(|e| anyhow::anyhow!("migrate: {e}"))?;
    let everyone = UserQuery {
        per_page: 1,
        status: None,
        ..UserQuery::default()
    };
    let present = total(&db, &everyone).await?;
    if present == 0 {
        let started = Instant::now();
        seed(db.backend(), url, rows)?;
        println!(
            "seeded {rows} users in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing the {present} users already in {url}");
    }
    println!(
        "backend {}, {} listable users (+ soft-deleted), per_page 20, median of {RUNS} runs (min)",
        db.backend(),
        total(&db, &everyone).await?
    );

    let newest = UserQuery::default();
    time("offset page 1 + total, created_at desc", || {
        list(&db, newest.clone())
    })
    .await?;
    let keyset_first = UserQuery {
        page: PageRequest::Keyset { after: None },
        ..UserQuery::default()
    };
    time("keyset first page, created_at desc", || {
        list(&db, keyset_first.clone())
    })
    .await?;

    // A cursor 90% into the set, found with a (timed) deep offset page.
    let deep_page = u32::try_from(total(&db, &newest).await? * 9 / 10 / 20)?.max(1);
    let deep_offset = UserQuery {
        page: PageRequest::Offset { page: deep_page },
        ..UserQuery::default()
    };
    let page = time(
        &format!("offset page {deep_page} + total (90% deep), created_at desc"),
        || list(&db, deep_offset.clone()),
    )
    .await?;
    let last = page.items.last().context("the deep page is empty")?;
    let cursor = Cursor::after(last, UserSort::CreatedAt, SortOrder::Desc);
    let keyset_deep = UserQuery {
        page: PageRequest::Keyset { after: cursor },
        ..UserQuery::default()
    };
    time("keyset page 90% deep (cursor), created_at desc", || {
        list(&db, keyset_deep.clone())
    })
    .await?;

    let by_name = UserQuery {
        page: PageRequest::Keyset { after: None },
        sort: UserSort::Username,
        order: SortOrder::Asc,
        ..UserQuery::default()
    };
    let first = time("keyset first page, username asc", || {
        list(&db, by_name.clone())
    })
    .await?;
    if let PageInfo::Keyset {
        next_cursor: Some(c),
        ..
    } = &first.pagination
    {
        let next = UserQuery {
            page: PageRequest::Keyset {
                after: Some(Cursor::decode(c).map_err(anyhow::Error::msg)?),
            },
            ..by_name.clone()
        };
        time("keyset second page, username asc", || {
            list(&db, next.clone())
        })
        .await?;
    }
    let admins = UserQuery {
        role: Some(Role::Admin),
        ..UserQuery::default()
    };
    time("offset page 1 + total, role=admin", || {
        list(&db, admins.clone())
    })
    .await?;
    let search = UserQuery {
        search: Some("lima_0012".into()),
        ..UserQuery::default()
    };
    let found = time("search \"lima_0012\" page 1 + total", || {
        list(&db, search.clone())
    })
    .await?;
    if let PageInfo::Offset { total, .. } = found.pagination {
        println!("    (search matched {total} users)");
    }
    let search_name = UserQuery {
        search: Some("tanaka".into()),
        ..UserQuery::default()
    };
    time(
        "search \"tanaka\" (last name, 1/8 of rows) page 1 + total",
        || list(&db, search_name.clone()),
    )
    .await?;
    let search_keyset = UserQuery {
        page: PageRequest::Keyset { after: None },
        ..search_name.clone()
    };
    time("search \"tanaka\" keyset first page (no total)", || {
        list(&db, search_keyset.clone())
    })
    .await?;
    Ok(())
}

async fn list(db: &Database, q: UserQuery) -> anyhow::Result<domain::UserPage> {
    db.list(&q).await.map_err(|e| anyhow::anyhow!("list: {e}"))
}

async fn total(db: &Database, q: &UserQuery) -> anyhow::Result<u64> {
    match list(db, q.clone()).await?.pagination {
        PageInfo::Offset { total, .. } => Ok(total),
        PageInfo::Keyset { .. } => bail!("asked for an offset page"),
    }
}

async fn time<T, F, Fut>(label: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut samples = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        last = Some(f().await?);
        samples.push(started.elapsed());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<60} {:>9.3} ms  (min {:.3} ms)",
        ms(samples[RUNS / 2]),
        ms(samples[0])
    );
    last.context("no runs")
}

/// Insert `rows` users with literal multi-row INSERTs (generated data only, nothing to escape).
fn seed(backend: Backend, url: &str, rows: u64) -> anyhow::Result<()> {
    let mut conn: Box<dyn SimpleConnection> = match backend {
        Backend::Sqlite => {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .context("not a sqlite URL")?;
            let mut c = diesel::SqliteConnection::establish(path)?;
            c.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
            Box::new(c)
        }
        Backend::Postgres => Box::new(diesel::PgConnection::establish(url)?),
        Backend::Mysql => bail!("seeding MySQL is not implemented in this example"),
    };
    let base_us: i64 = 1_600_000_000_000_000;
    let mut sql = String::with_capacity(256 * ROWS_PER_INSERT as usize);
    let mut i: u64 = 0;
    while i < rows {
        conn.batch_execute("BEGIN")?;
        for _ in 0..INSERTS_PER_TRANSACTION {
            if i >= rows {
                break;
            }
            sql.clear();
            sql.push_str(
                "INSERT INTO users (id, username, username_key, email, email_key, password_hash, \
                 first_name, last_name, role, status, is_verified, failed_login_count, \
                 created_at, updated_at, last_login_at) VALUES ",
            );
            let end = (i + ROWS_PER_INSERT).min(rows);
            for n in i..end {
                let h = n.wrapping_mul(2_654_435_761) % 4_294_967_291;
                let word = WORDS[(h % 16) as usize];
                let username = format!("{word}_{n:07}");
                let email = format!(
                    "{}.{n}@{}",
                    WORDS[((h >> 4) % 16) as usize],
                    ["example.com", "mail.test", "corp.example"][(h % 3) as usize]
                );
                let role = match n % 1000 {
                    0 => "admin",
                    1..=99 => "guest",
                    _ => "user",
                };
                let status = match n % 100 {
                    3 => "deleted",
                    7 => "inactive",
                    9 => "suspended",
                    _ => "active",
                };
                let keys = if status == "deleted" {
                    "NULL, ".to_owned() + "'" + &email + "', NULL"
                } else {
                    format!("'{username}', '{email}', '{email}'")
                };
                // pairs of users share a creation time: keyset must break ties on id
                let created = base_us + i64::try_from(n / 2)? * 1_000_000;
                let login = if n % 4 == 0 {
                    "NULL".to_owned()
                } else {
                    (created + i64::try_from(h % 1_000_000)? * 1_000_000).to_string()
                };
                if n > i {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "('{}', '{username}', {keys}, 'pbkdf2:sha256:600000$salt$hash', '{}', '{}', \
                     '{role}', '{status}', {}, 0, {created}, {created}, {login})",
                    uuid::Uuid::new_v4(),
                    FIRST[((h >> 8) % 8) as usize],
                    LAST[((h >> 12) % 8) as usize],
                    if n % 2 == 0 { "TRUE" } else { "FALSE" },
                ));
            }
            conn.batch_execute(&sql)?;
            i = end;
        }
        conn.batch_execute("COMMIT")?;
    }
    // What a database reaches on its own after a bulk load (autovacuum, SQLite's automatic FTS
    // merges), done at once: statistics, PostgreSQL's GIN pending lists merged (VACUUM), the
    // SQLite search index's segments merged (`optimize`).
    if backend == Backend::Sqlite {
        conn.batch_execute("INSERT INTO users_search(users_search) VALUES ('optimize'); ANALYZE")?;
    } else {
        conn.batch_execute("VACUUM ANALYZE users")?;
    }
    Ok(())
}
