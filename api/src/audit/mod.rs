//! Issue 12: the verifiable audit log outside the server: the key file the checkpoints are signed
//! with, and `civicflow audit export|verify|witness` (docs/audit.md describes the formats).
//!
//! Exit codes: 0 when everything holds, 1 when a bundle or a server fails a check (the findings
//! are printed, each naming its place), 2 when the command itself failed (an unreadable file, a
//! database or server that cannot be reached, bad arguments).

pub mod export;
pub mod key;
pub mod witness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use civicflow_engine::audit::bundle::{self, Kept, Scope};
use civicflow_engine::audit::note::NoteVerifier;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Write a self-contained bundle of the log — everything, one instance, or a time range —
    /// with the latest signed checkpoint and the proofs, for `audit verify` (no server needed).
    Export {
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
        /// Only this instance's events.
        #[arg(long)]
        instance: Option<String>,
        /// Only events from this instant (RFC 3339, inclusive) …
        #[arg(long)]
        from: Option<String>,
        /// … to this one (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Add a consistency proof from this earlier tree size (the one the auditor kept), so
        /// `verify --kept` can check the bundle's checkpoint extends it.
        #[arg(long)]
        since: Option<u64>,
        /// The bundle file to write (JSON Lines).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a bundle offline against the log's public key; exits 0 only when all holds, else
    /// prints each fault (which event, which field; a deleted or missing event; a cut end; a bad
    /// signature; a checkpoint older than one kept before).
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// The log's public key: a file holding `NAME+HASH+BASE64` (as `/v1/audit/key` serves
        /// it), or that text itself.
        #[arg(long)]
        key: String,
        /// A checkpoint kept before: a witness's store directory, or a saved signed note. The
        /// bundle's checkpoint must not be older than it nor fork from it.
        #[arg(long)]
        kept: Option<PathBuf>,
    },
    /// Fetch a server's latest checkpoint, check it extends the last one kept in `--store`
    /// (a consistency proof), and keep it. Run it regularly: a server that rewrote its history
    /// is caught at the next run. Exits 1 when the server fails the check.
    Witness {
        /// The server, e.g. `http://127.0.0.1:8080`.
        url: String,
        /// The directory of kept checkpoints (created on first use).
        #[arg(long)]
        store: PathBuf,
        /// The log's public key (file or text); without it the key served at the first run is
        /// trusted from then on.
        #[arg(long)]
        key: Option<String>,
        /// A token for the proofs (any principal's); default `$CIVICFLOW_TOKEN`.
        #[arg(long, env = "CIVICFLOW_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

/// Runs an `audit` subcommand.
pub fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Export { database, instance, from, to, since, out } => {
            export_command(&database, instance, from.as_deref(), to.as_deref(), since, &out)
        }
        AuditCommand::Verify { file, key, kept } => verify_command(&file, &key, kept.as_deref()),
        AuditCommand::Witness { url, store, key, token } => witness_command(&url, &store, key.as_deref(), token),
    }
}

/// `--key`: a file's content, or the key text itself.
fn read_key(arg: &str) -> Result<NoteVerifier, String> {
    let text = match std::fs::read_to_string(arg) {
        Ok(t) => t,
        Err(_) if arg.contains('+') => arg.to_string(),
        Err(e) => return Err(format!("--key {arg}: {e}")),
    };
    NoteVerifier::parse(&text).map_err(|e| format!("--key {arg}: {e}"))
}

fn instant(arg: Option<&str>, flag: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    arg.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| format!("--{flag} takes an RFC 3339 instant such as 2026-03-02T09:00:00+08:00: {e}"))
    })
    .transpose()
}

fn export_command(
    database: &str,
    instance: Option<String>,
    from: Option<&str>,
    to: Option<&str>,
    since: Option<u64>,
    out: &Path,
) -> ExitCode {
    let scope = match (instant(from, "from"), instant(to, "to")) {
        (Ok(from), Ok(to)) => Scope { instance, from, to },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(f), Some(t)) = (scope.from, scope.to) {
        if f >= t {
            eprintln!("error: --from must be before --to");
            return ExitCode::from(2);
        }
    }
    crate::cli::with_store(database, |store| async move {
        let clock = Arc::new(civicflow_engine::clock::SystemClock);
        let (committer, _task) = civicflow_engine::store::GroupCommitter::spawn(
            store.clone(),
            civicflow_engine::store::GroupCommitConfig::default(),
        );
        let calendar = match civicflow_engine::calendar::Calendar::chinese() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                eprintln!("error: the calendar: {e}");
                return ExitCode::from(2);
            }
        };
        let rt = civicflow_engine::runtime::Runtime::new(store.clone(), committer, clock, calendar, "audit".into());
        // Written beside, renamed when whole: a failed export leaves no half bundle behind.
        let tmp = out.with_extension("partial");
        let file = match std::fs::File::create(&tmp) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {}: {e}", tmp.display());
                return ExitCode::from(2);
            }
        };
        let mut writer = std::io::BufWriter::new(file);
        let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let result = export::export(&rt, store.as_ref(), scope, since, &mut writer, |n| {
            if show {
                eprint!("\r{n} leaves written");
            }
        })
        .await;
        if show {
            eprintln!();
        }
        drop(writer);
        match result {
            Ok(done) => {
                if let Err(e) = std::fs::rename(&tmp, out) {
                    eprintln!("error: {}: {e}", out.display());
                    return ExitCode::from(2);
                }
                println!(
                    "{}: {} leaves{} against the checkpoint of {} leaves",
                    out.display(),
                    done.leaves,
                    if done.complete { " (the whole log)" } else { " with their proofs" },
                    done.size
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

fn verify_command(file: &Path, key: &str, kept: Option<&Path>) -> ExitCode {
    let key = match read_key(key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let kept = match kept.map(|p| witness::kept_checkpoint(p, &key)).transpose() {
        Ok(k) => k.flatten().map(|c| Kept { size: c.size, root: c.root }),
        Err(e) => {
            eprintln!("error: --kept: {e}");
            return ExitCode::from(2);
        }
    };
    let report = bundle::verify(&text, &key, kept.as_ref());
    let mut out = std::io::stdout().lock();
    for f in &report.findings {
        let _ = writeln!(out, "FAIL {f}");
    }
    match (&report.checkpoint, report.ok()) {
        (Some(cp), true) => {
            let _ = writeln!(
                out,
                "ok: {} events of {} instance(s) verify against the checkpoint of {} leaves signed by {}{}",
                report.events,
                report.instances,
                cp.size,
                key.name(),
                kept.map_or(String::new(), |k| format!(", which extends the {} kept before", k.size))
            );
            ExitCode::SUCCESS
        }
        _ => {
            let _ = writeln!(out, "{} fault(s) found", report.findings.len());
            ExitCode::from(1)
        }
    }
}

fn witness_command(url: &str, store: &Path, key: Option<&str>, token: Option<String>) -> ExitCode {
    let key = match key.map(read_key).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match crate::cli::tokio_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(witness::witness(url, store, key, token.as_deref())) {
        Ok(witness::Witnessed::First(cp)) => {
            println!("kept the first checkpoint: {} leaves, signed by {}", cp.size, cp.origin);
            ExitCode::SUCCESS
        }
        Ok(witness::Witnessed::Extended { from, to }) => {
            println!("ok: the tree of {} leaves extends the {from} kept before; kept", to.size);
            ExitCode::SUCCESS
        }
        Ok(witness::Witnessed::Unchanged(cp)) => {
            println!("ok: unchanged since the last run ({} leaves)", cp.size);
            ExitCode::SUCCESS
        }
        Err(
            e @ (witness::WitnessError::RolledBack { .. }
            | witness::WitnessError::Forked { .. }
            | witness::WitnessError::Inconsistent { .. }
            | witness::WitnessError::KeyChanged { .. }
            | witness::WitnessError::Note(_)),
        ) => {
            println!("FAIL {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
