//! `import`: users of an arcana-cloud-python deployment into this database, in batches (read
//! from the source, checked against arcana's rules, written in one transaction each), with a
//! report at the end. The same command in `arcana` and `arcana-repository`.
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use domain::{ConflictPolicy, ImportOutcome, check_legacy_user};
use repository::{Database, LegacySource};
use serde::Serialize;

use crate::config::describe;

/// What to do with a row whose username or email an arcana user has (or which changed in the
/// source since an earlier import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    /// Leave the arcana user alone; the row is reported as skipped.
    Skip,
    /// Overwrite the arcana user with the source row (its password hash included).
    Update,
    /// Write nothing at all and fail.
    Fail,
}

impl From<OnConflict> for ConflictPolicy {
    fn from(c: OnConflict) -> Self {
        match c {
            OnConflict::Skip => ConflictPolicy::Skip,
            OnConflict::Update => ConflictPolicy::Update,
            OnConflict::Fail => ConflictPolicy::Fail,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The database of the arcana-cloud-python deployment: its SQLAlchemy URL
    /// (`mysql+pymysql://user:pass@host/db`, `postgresql://…`, `sqlite:////abs/path/app.db`).
    /// A flag shows in the process list: give a URL with a password as ARCANA_IMPORT_FROM or
    /// in the file named by ARCANA_IMPORT_FROM_FILE instead.
    #[arg(long)]
    pub from: Option<String>,
    /// Report what would happen; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value = "skip")]
    pub on_conflict: OnConflict,
    /// Rows per transaction. On SQLite a batch holds the write lock while it is written
    /// (2,000 rows: about 0.4 s): a server on the same file waits that long at most.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub batch_size: u32,
    /// Print the report as JSON (every row that was not created or unchanged, with its reason).
    #[arg(long)]
    pub json: bool,
    /// Also write `legacy_id,user_id,outcome` of every row with an arcana user to this CSV file
    /// (the whole mapping stays in the `legacy_users` table).
    #[arg(long)]
    pub mapping_csv: Option<PathBuf>,
}

impl ImportArgs {
    /// The source URL: `--from`, else ARCANA_IMPORT_FROM(_FILE).
    fn source(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.from {
            return Ok(url.clone());
        }
        match crate::config::secret_env("ARCANA_IMPORT_FROM")? {
            Some(url) => Ok(secrecy::ExposeSecret::expose_secret(&url).to_owned()),
            None => anyhow::bail!(
                "name the arcana-cloud-python database: --from URL, ARCANA_IMPORT_FROM or ARCANA_IMPORT_FROM_FILE"
            ),
        }
    }
}

/// One row that was skipped or refused, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Noted {
    pub legacy_id: i64,
    pub username: String,
    pub reason: String,
}

/// What an import did (or, dry, would do).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub source: String,
    pub dry_run: bool,
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: Vec<Noted>,
    pub refused: Vec<Noted>,
    /// Conflicts under `--on-conflict fail` (then nothing was written).
    pub conflicts: Vec<Noted>,
    #[serde(skip)]
    mapping: Vec<(i64, uuid::Uuid, &'static str)>,
}

/// Run the import; `Err` when it could not run or `--on-conflict fail` met a conflict.
pub async fn run(db: &Database, args: &ImportArgs) -> anyhow::Result<()> {
    let policy = ConflictPolicy::from(args.on_conflict);
    // Under `fail`, a dry pass first: nothing is written unless no row conflicts.
    if policy == ConflictPolicy::Fail && !args.dry_run {
        let rehearsal = pass(db, args, true).await?;
        if !rehearsal.conflicts.is_empty() {
            print(&rehearsal, args)?;
            anyhow::bail!(
                "{} row(s) conflict with arcana users and --on-conflict is fail: nothing was imported",
                rehearsal.conflicts.len()
            );
        }
    }
    let report = pass(db, args, args.dry_run).await?;
    print(&report, args)?;
    if let Some(path) = &args.mapping_csv {
        write_mapping(path, &report)?;
    }
    match report.conflicts.len() {
        0 => {}
        n if args.dry_run => anyhow::bail!(
            "{n} row(s) conflict with arcana users and --on-conflict is fail: nothing would be imported"
        ),
        n => anyhow::bail!(
            "{n} row(s) conflicted with arcana users written meanwhile: their batches were not written"
        ),
    }
    Ok(())
}

/// One pass over the source, in id order.
async fn pass(db: &Database, args: &ImportArgs, dry_run: bool) -> anyhow::Result<Report> {
    let policy = ConflictPolicy::from(args.on_conflict);
    let mut source = LegacySource::open(&args.source()?)
        .await
        .map_err(describe)?;
    let total = source.count().await.map_err(describe)?;
    let progress = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:24}] {pos}/{len} rows, {rate} rows/s, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}", state.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    progress.set_message(if dry_run { "checking" } else { "importing" });
    let mut report = Report {
        source: source.redacted_url().to_owned(),
        dry_run,
        ..Report::default()
    };
    // Usernames and emails of the rows so far, as arcana compares them (ignoring case): a later
    // row repeating one is refused, in a dry run as in a real one.
    let mut seen_usernames = HashSet::new();
    let mut seen_emails = HashSet::new();
    let mut after = i64::MIN;
    loop {
        let batch = source
            .read_after(after, args.batch_size)
            .await
            .map_err(describe)?;
        let Some(last) = batch.last() else { break };
        after = last.legacy_id;
        report.rows += batch.len() as u64;
        let mut checked = Vec::with_capacity(batch.len());
        let mut names = Vec::with_capacity(batch.len());
        for row in &batch {
            let refuse = |reason: String| Noted {
                legacy_id: row.legacy_id,
                username: row.username.clone(),
                reason,
            };
            match check_legacy_user(row, crypto::check_hash_format, crypto::sha256_hex) {
                Err(reason) => report.refused.push(refuse(reason)),
                Ok(user) => {
                    let live = user.user.status != domain::Status::Deleted;
                    let (u, e) = (user.user.username.to_lowercase(), user.user.email.clone());
                    if live && (seen_usernames.contains(&u) || seen_emails.contains(&e)) {
                        report.refused.push(refuse(
                            "its username or email repeats an earlier row of the source (arcana ignores case)"
                                .into(),
                        ));
                        continue;
                    }
                    if live {
                        seen_usernames.insert(u);
                        seen_emails.insert(e);
                    }
                    names.push((row.legacy_id, row.username.clone()));
                    checked.push(user);
                }
            }
        }
        let outcomes = write_batch(db, checked, policy, dry_run).await?;
        for ((legacy_id, username), outcome) in names.into_iter().zip(outcomes) {
            let note = |reason: String| Noted {
                legacy_id,
                username: username.clone(),
                reason,
            };
            match outcome {
                ImportOutcome::Created(id) => {
                    report.created += 1;
                    report.mapping.push((legacy_id, id, "created"));
                }
                ImportOutcome::Updated(id) => {
                    report.updated += 1;
                    report.mapping.push((legacy_id, id, "updated"));
                }
                ImportOutcome::Unchanged(id) => {
                    report.unchanged += 1;
                    report.mapping.push((legacy_id, id, "unchanged"));
                }
                ImportOutcome::Skipped(reason) => report.skipped.push(note(reason)),
                ImportOutcome::Refused(reason) => report.refused.push(note(reason)),
                ImportOutcome::Conflict(reason) => report.conflicts.push(note(reason)),
            }
        }
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();
    Ok(report)
}

/// One batch; again (re-read against the database) when a concurrent write took a username or
/// email between the batch's checks and its inserts.
async fn write_batch(
    db: &Database,
    rows: Vec<domain::ImportedUser>,
    policy: ConflictPolicy,
    dry_run: bool,
) -> anyhow::Result<Vec<ImportOutcome>> {
    let mut attempt = 1;
    loop {
        match db.import_users(rows.clone(), policy, dry_run).await {
            Err(domain::Error::Conflict { .. }) if attempt < 3 => attempt += 1,
            result => return result.map_err(describe).context("writing a batch of users"),
        }
    }
}

fn print(report: &Report, args: &ImportArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "import from {}: {} rows read",
        report.source, report.rows
    )?;
    writeln!(out, "  created    {:>8}", report.created)?;
    writeln!(out, "  updated    {:>8}", report.updated)?;
    writeln!(
        out,
        "  unchanged  {:>8}  (imported before)",
        report.unchanged
    )?;
    writeln!(out, "  skipped    {:>8}", report.skipped.len())?;
    writeln!(out, "  refused    {:>8}", report.refused.len())?;
    if !report.conflicts.is_empty() {
        writeln!(out, "  conflicts  {:>8}", report.conflicts.len())?;
    }
    if report.dry_run {
        writeln!(
            out,
            "dry run: nothing was written; the counts say what an import would do"
        )?;
    }
    for (title, rows) in [
        ("conflicts", &report.conflicts),
        ("skipped", &report.skipped),
        ("refused", &report.refused),
    ] {
        if rows.is_empty() {
            continue;
        }
        writeln!(out, "{title}:")?;
        for n in rows {
            // Escaped: a source username may hold control characters (terminal escapes).
            writeln!(
                out,
                "  legacy id {} ({}): {}",
                n.legacy_id,
                n.username.escape_debug(),
                n.reason
            )?;
        }
    }
    Ok(())
}

fn write_mapping(path: &PathBuf, report: &Report) -> anyhow::Result<()> {
    let mut text = String::from("legacy_id,user_id,outcome\n");
    for (legacy_id, id, outcome) in &report.mapping {
        text.push_str(&format!("{legacy_id},{id},{outcome}\n"));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
