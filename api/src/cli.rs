//! Command-line interface: `check`, `fmt`, `graph`, `explain`, `serve`, `calendar check|add`,
//! `token create`.
//!
//! Exit codes: 0 success, 1 a policy has errors (or `fmt --check` found unformatted files),
//! 2 the command itself failed (unreadable file, bad arguments).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use civicflow_dsl::{compile, Code, Renderer};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "civicflow", version, about = "Run public-administration procedures written as policies", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check policy files and print every diagnostic; exits 1 if any file has an error.
    Check {
        /// Policy files (`.cf`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = DiagFormat::Text)]
        format: DiagFormat,
    },
    /// Rewrite policy files in the canonical layout (comments are kept).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Print the compiled state-machine graph of a policy.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Explain a diagnostic code, e.g. `civicflow explain E0402`.
    Explain { code: String },
    /// Run the HTTP server (API, timers); on first start, publish the bundled policies and
    /// print one admin token.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
        /// Run on a simulated clock from this instant (RFC 3339, e.g. `2012-03-21T09:00:00+08:00`);
        /// `POST /v1/admin/clock` moves it.
        #[arg(long)]
        simulated_clock: Option<String>,
        /// A directory of `YYYY.json` working-day calendar years to add at start (R0.2); each
        /// file's first notice needs its title and date.
        #[arg(long)]
        calendar_dir: Option<PathBuf>,
        /// Connections served at once; one more is answered 503 `TOO_MANY_CONNECTIONS` and closed.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max_connections: u32,
        /// Seconds a client has to send a request's headers (also how long an idle kept-alive
        /// connection stays open).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_timeout: u64,
        /// Seconds a client has to send a request's body.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        body_timeout: u64,
        /// Requests a second one address, and one principal, may sustain; past it and its burst
        /// the answer is 429 `RATE_LIMITED` with `Retry-After`.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
        requests_per_second: u32,
        /// Requests one address, and one principal, may send at once above that rate.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..))]
        request_burst: u32,
        /// Failed authentications (bad tokens, failed sign-ins) one address may make before it must
        /// wait 3 s for each further try.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        failed_auth_burst: u32,
        /// MiB of instance states the runtime keeps in memory for commands (estimated, least
        /// recently used evicted first); 0 reads every command's instance from the store.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=65536))]
        instance_cache_mib: u32,
        /// The file of the key the audit checkpoints are signed with; created on first start
        /// (mode 0600), refused when others may read it. Default: beside a SQLite file
        /// (`FILE.audit-key`), else `civicflow.audit-key` here. Keep it out of database backups.
        #[arg(long)]
        audit_key: Option<PathBuf>,
        /// The name a new audit key gets: the origin line of every checkpoint it signs.
        #[arg(long, default_value = crate::audit::key::DEFAULT_NAME)]
        audit_name: String,
        /// Sign a checkpoint once this many events were appended since the last …
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_events: u64,
        /// … or this many seconds after the last, whichever comes first (never when nothing was
        /// appended).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        checkpoint_seconds: u64,
    },
    /// The verifiable audit log (issue 12): export a bundle, verify one offline, witness a server.
    Audit {
        #[command(subcommand)]
        command: crate::audit::AuditCommand,
    },
    /// The working-day calendar (R0.2): check a year's file, or add it.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Move running instances to a new version of their policy (issue 11.5): plan, review, apply.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
}

#[derive(Subcommand, Debug)]
enum MigrateCommand {
    /// Compute and store a plan: how every running instance of the old version maps to the new
    /// one, or why it cannot (an approval lost, a done step reopened, a window broken), naming the
    /// step. Nothing changes yet; the plan's id is printed for `apply`.
    Plan {
        /// `POLICY@VERSION` the instances move from: a hash, a prefix of 8 or more digits, or a
        /// label, e.g. `election@2012.1`.
        #[arg(long)]
        from: String,
        /// `POLICY@VERSION` they move to, e.g. `election@2012.2`.
        #[arg(long)]
        to: String,
        /// A step renamed between the versions, `OLD=NEW` (step ids; a renamed phase's children
        /// follow it). Repeat for several.
        #[arg(long = "rename", value_name = "OLD=NEW")]
        renames: Vec<String>,
        /// Print the plan as JSON (as `POST /v1/migrations` answers) instead of text.
        #[arg(long)]
        json: bool,
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
    },
    /// Apply a stored plan: each instance it moves, in a commit of its own, decided again on the
    /// instance as it is now. Run it again to resume an application that stopped. Exits 1 when an
    /// instance the plan moves was refused as it is now.
    Apply {
        /// The plan's id (`mig-…`).
        id: String,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
    },
    /// Print a stored plan again.
    Show {
        /// The plan's id (`mig-…`).
        id: String,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
    },
}

#[derive(Subcommand, Debug)]
enum CalendarCommand {
    /// Validate a year's file and print what it holds; exits 1 with the errors if it is not
    /// one that can be added.
    Check { file: PathBuf },
    /// Add a year to the database: stored, and every running instance whose deadline waits for
    /// it gets its due date and timers. A running server loads it at its next start (or use
    /// `POST /v1/admin/calendars`, which applies it at once).
    Add {
        file: PathBuf,
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token for a principal (created, or its office and roles replaced) and print it
    /// once; only its SHA-256 is stored.
    Create {
        /// The principal's name (recorded as the actor of what it does).
        #[arg(long)]
        name: String,
        /// The office it belongs to.
        #[arg(long)]
        office: String,
        /// A role it may act in (a policy role, or `admin`); repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// When the token stops working: a span from now (`90d`, `12h`, `30m`) or an RFC 3339
        /// instant. Without it the token works until revoked.
        #[arg(long)]
        expires: Option<String>,
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
    },
    /// List every token (its id, never its text), whose it is and when it expires.
    List {
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
    },
    /// Revoke a principal's tokens (all, or the one `--id` names): refused at once, on every
    /// node, and the web sessions made from them end.
    Revoke {
        /// The principal's name.
        #[arg(long)]
        name: String,
        /// Only this token (its 12-digit id from `token list`).
        #[arg(long)]
        id: Option<String>,
        /// A SQLite file, or a `postgres://user@host/db` URL.
        #[arg(long, default_value = "civicflow.db")]
        database: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DiagFormat {
    /// rustc-like text with the source line and carets.
    Text,
    /// One JSON array of diagnostics per file, as the HTTP API returns them.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    /// The graph IR itself, with its content hash.
    Json,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files, format } => check(&files, format),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Graph { file, format } => graph(&file, format),
        Command::Explain { code } => explain(&code),
        Command::Serve {
            listen,
            database,
            simulated_clock,
            calendar_dir,
            max_connections,
            header_timeout,
            body_timeout,
            requests_per_second,
            request_burst,
            failed_auth_burst,
            instance_cache_mib,
            audit_key,
            audit_name,
            checkpoint_events,
            checkpoint_seconds,
        } => {
            let limits = crate::connections::Limits {
                max_connections: max_connections as usize,
                header_timeout: std::time::Duration::from_secs(header_timeout),
                body_timeout: std::time::Duration::from_secs(body_timeout),
            };
            let rates = crate::http::limits::RateConfig::default().with_requests(
                requests_per_second,
                request_burst,
                failed_auth_burst,
            );
            let cache_bytes = instance_cache_mib as usize * (1 << 20);
            let options = ServeOptions {
                calendar_dir,
                limits,
                rates,
                instance_cache_bytes: cache_bytes,
                audit_key,
                audit_name,
                checkpoints: civicflow_engine::runtime::CheckpointPolicy {
                    events: checkpoint_events,
                    interval: std::time::Duration::from_secs(checkpoint_seconds),
                },
            };
            serve(listen, &database, simulated_clock.as_deref(), options)
        }
        Command::Audit { command } => crate::audit::run(command),
        Command::Calendar { command: CalendarCommand::Check { file } } => crate::calendars::check(&file),
        Command::Calendar { command: CalendarCommand::Add { file, database } } => {
            crate::calendars::add(&file, &database)
        }
        Command::Token { command: TokenCommand::Create { name, office, roles, expires, database } } => {
            token_create(&name, &office, &roles, expires.as_deref(), &database)
        }
        Command::Token { command: TokenCommand::List { database } } => token_list(&database),
        Command::Migrate { command: MigrateCommand::Plan { from, to, renames, json, database } } => {
            crate::migrate::plan(&from, &to, &renames, json, &database)
        }
        Command::Migrate { command: MigrateCommand::Apply { id, json, database } } => {
            crate::migrate::apply(&id, json, &database)
        }
        Command::Migrate { command: MigrateCommand::Show { id, json, database } } => {
            crate::migrate::show(&id, json, &database)
        }
        Command::Token { command: TokenCommand::Revoke { name, id, database } } => {
            token_revoke(&name, id.as_deref(), &database)
        }
    }
}

/// What `serve` passes on to the server's [`crate::serve::Config`].
struct ServeOptions {
    calendar_dir: Option<PathBuf>,
    limits: crate::connections::Limits,
    rates: crate::http::limits::RateConfig,
    instance_cache_bytes: usize,
    audit_key: Option<PathBuf>,
    audit_name: String,
    checkpoints: civicflow_engine::runtime::CheckpointPolicy,
}

pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::from(2)
    })
}

/// Runs a one-shot command on `--database`: an async runtime, the store opened (exit code 2 with
/// the reason when either cannot be had), then `command`.
pub(crate) fn with_store<F, Fut>(database: &str, command: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<dyn civicflow_engine::store::Store>) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let runtime = match tokio_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        match open_store(database).await {
            Ok(store) => command(store).await,
            Err(code) => code,
        }
    })
}

/// Opens `--database` for a one-shot command; exit code 2 with the reason when it cannot.
pub(crate) async fn open_store(database: &str) -> Result<std::sync::Arc<dyn civicflow_engine::store::Store>, ExitCode> {
    crate::serve::Database::parse(database).open().await.map_err(|e| {
        eprintln!("error: the database `{database}`: {e}");
        ExitCode::from(2)
    })
}

fn serve(listen: SocketAddr, database: &str, simulated_clock: Option<&str>, options: ServeOptions) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let simulated = match simulated_clock.map(chrono::DateTime::parse_from_rfc3339).transpose() {
        Ok(t) => t.map(|t| t.with_timezone(&chrono::Utc)),
        Err(e) => {
            eprintln!("error: --simulated-clock takes an RFC 3339 instant such as 2012-03-21T09:00:00+08:00: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let database = crate::serve::Database::parse(database);
        let mut config = crate::serve::Config::new(listen, database.clone());
        config.simulated_clock = simulated;
        config.calendar_dir = options.calendar_dir;
        config.limits = options.limits;
        config.rates = options.rates;
        config.instance_cache_bytes = options.instance_cache_bytes;
        config.audit_key = options.audit_key;
        config.audit_name = options.audit_name;
        config.checkpoints = options.checkpoints;
        let server = match crate::serve::Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "civicflow listening on http://{}", server.addr);
        let _ = writeln!(out, "database: {}", database.describe());
        if let Some(at) = simulated_clock {
            let _ = writeln!(out, "simulated clock at {at} (POST /v1/admin/clock moves it)");
        }
        if !server.published.is_empty() {
            let _ = writeln!(out, "published the bundled policies: {}", server.published.join(", "));
        }
        if let Some(token) = &server.admin_token {
            let _ = writeln!(out, "admin token (shown once; only its hash is stored): {token}");
        }
        if let Some(path) = &server.audit_key_created {
            let _ = writeln!(
                out,
                "audit key created in {} (mode 0600; keep it, and out of database backups)",
                path.display()
            );
            let _ = writeln!(
                out,
                "audit public key (give it to the auditors; also at /v1/audit/key): {}",
                server.state.audit_key.to_key_text()
            );
        }
        let _ = out.flush();
        drop(out);
        crate::serve::shutdown_signal().await;
        eprintln!("shutting down: finishing requests in flight");
        server.stop().await;
        ExitCode::SUCCESS
    })
}

/// `--expires`: a span from `now` (`90d`, `12h`, `30m`) or an RFC 3339 instant, in the future.
pub fn parse_expiry(text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let text = text.trim();
    let at = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&chrono::Utc),
        Err(_) => {
            let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
            let n: i64 = number.parse().map_err(|_| {
                format!("`{text}` is neither a span such as `90d`, `12h`, `30m` nor an RFC 3339 instant")
            })?;
            let span = match unit {
                "d" => chrono::Duration::try_days(n),
                "h" => chrono::Duration::try_hours(n),
                "m" => chrono::Duration::try_minutes(n),
                _ => return Err(format!("`{text}`: the unit is `d`, `h` or `m`")),
            };
            span.and_then(|d| now.checked_add_signed(d)).ok_or_else(|| format!("`{text}` is too far"))?
        }
    };
    if at <= now {
        return Err(format!("`{text}` is not in the future"));
    }
    Ok(at)
}

fn token_create(name: &str, office: &str, roles: &[String], expires: Option<&str>, database: &str) -> ExitCode {
    let expires_at = match expires.map(|e| parse_expiry(e, chrono::Utc::now())).transpose() {
        Ok(at) => at,
        Err(e) => {
            eprintln!("error: --expires {e}");
            return ExitCode::from(2);
        }
    };
    with_store(database, |store| async move {
        match crate::http::auth::create_token_until(store.as_ref(), name, office, roles, expires_at).await {
            Ok(token) => {
                println!("{token}");
                let until = expires_at.map_or("never expires".to_string(), |at| format!("expires {}", at.to_rfc3339()));
                eprintln!(
                    "token for `{name}` ({office}; roles {}; {until}): shown once, only its hash is stored",
                    roles.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

fn token_list(database: &str) -> ExitCode {
    with_store(database, |store| async move {
        match store.list_tokens().await {
            Ok(tokens) => {
                let mut out = std::io::stdout().lock();
                let time = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                // Tab-separated: names are often Chinese, whose width no padding gets right.
                let _ = writeln!(out, "ID\tPRINCIPAL\tOFFICE\tCREATED\tEXPIRES\tROLES");
                for t in &tokens {
                    let expires = t.expires_at.map_or("never".to_string(), time);
                    let _ = writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        t.id,
                        t.principal,
                        t.office,
                        time(t.created_at),
                        expires,
                        t.roles.join(",")
                    );
                }
                eprintln!("{} token(s)", tokens.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

fn token_revoke(name: &str, id: Option<&str>, database: &str) -> ExitCode {
    with_store(database, |store| async move {
        match store.revoke_tokens(name, id).await {
            Ok(0) => {
                eprintln!("error: `{name}` has no such token (see `civicflow token list`)");
                ExitCode::from(1)
            }
            Ok(n) => {
                eprintln!("revoked {n} token(s) of `{name}`: refused from now on, its web sessions ended");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

fn read(path: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        ExitCode::from(2)
    })
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn check(files: &[PathBuf], format: DiagFormat) -> ExitCode {
    let mut failed = false;
    let mut unreadable = false;
    let mut json_out = serde_json::Map::new();
    for path in files {
        let Ok(source) = read(path) else {
            unreadable = true;
            continue;
        };
        let name = path.display().to_string();
        let renderer = Renderer::new(&name, &source);
        match compile(&source) {
            Ok(compiled) => {
                if let DiagFormat::Json = format {
                    json_out.insert(
                        name.clone(),
                        serde_json::to_value(renderer.json(&compiled.warnings)).unwrap_or_default(),
                    );
                } else {
                    eprint!("{}", renderer.text(&compiled.warnings, color()));
                    let steps = compiled.policy.nodes.len();
                    println!(
                        "ok: {name}: policy `{}`, {steps} phases and steps, version {}",
                        compiled.policy.name,
                        &compiled.hash[..12]
                    );
                }
            }
            Err(diagnostics) => {
                failed = true;
                match format {
                    DiagFormat::Json => {
                        json_out.insert(
                            name.clone(),
                            serde_json::to_value(renderer.json(diagnostics.as_slice())).unwrap_or_default(),
                        );
                    }
                    DiagFormat::Text => {
                        eprint!("{}", renderer.text(diagnostics.as_slice(), color()));
                        let n = diagnostics.as_slice().len();
                        eprintln!("error: {name}: {n} error{} found\n", if n == 1 { "" } else { "s" });
                    }
                }
            }
        }
    }
    if let DiagFormat::Json = format {
        println!("{}", serde_json::to_string_pretty(&json_out).unwrap_or_default());
    }
    if unreadable {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let mut unformatted = 0usize;
    for path in files {
        let Ok(source) = read(path) else {
            status = ExitCode::from(2);
            continue;
        };
        let name = path.display().to_string();
        let formatted = match civicflow_dsl::fmt::format_source(&source) {
            Ok(f) => f,
            Err(d) => {
                eprint!("{}", Renderer::new(&name, &source).text(std::slice::from_ref(&d), color()));
                status = ExitCode::from(1);
                continue;
            }
        };
        if formatted == source {
            continue;
        }
        if check_only {
            println!("{name}: not formatted");
            unformatted += 1;
        } else if let Err(e) = write_atomically(path, &formatted) {
            eprintln!("error: cannot write `{name}`: {e}");
            status = ExitCode::from(2);
        } else {
            println!("formatted {name}");
        }
    }
    if unformatted > 0 {
        eprintln!(
            "{unformatted} file{} would be reformatted; run `civicflow fmt` on them",
            if unformatted == 1 { "" } else { "s" }
        );
        return ExitCode::from(1);
    }
    status
}

/// Writes beside the file and renames over it, so an interrupted write loses nothing.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("cf.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn graph(path: &Path, format: GraphFormat) -> ExitCode {
    let Ok(source) = read(path) else { return ExitCode::from(2) };
    let name = path.display().to_string();
    match compile(&source) {
        Ok(compiled) => {
            let out = match format {
                GraphFormat::Dot => civicflow_dsl::render::dot(&compiled.policy),
                GraphFormat::Mermaid => civicflow_dsl::render::mermaid(&compiled.policy),
                GraphFormat::Json => {
                    let v = serde_json::json!({ "hash": compiled.hash, "policy": compiled.policy });
                    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
                }
            };
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprint!("{}", Renderer::new(&name, &source).text(diagnostics.as_slice(), color()));
            ExitCode::from(1)
        }
    }
}

fn explain(code: &str) -> ExitCode {
    let wanted = code.trim().to_ascii_uppercase();
    match Code::ALL.iter().find(|c| c.as_str() == wanted) {
        Some(c) => {
            println!("{}: {}\n\n{}", c.as_str(), c.title(), c.explanation());
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: no diagnostic code `{code}`; codes are E0001 … E0403 (see docs/diagnostics.md)");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn expiries_are_spans_from_now_or_instants_in_the_future() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_expiry("90d", now), Ok(at("2027-03-03T10:00:00Z")));
        assert_eq!(parse_expiry("12h", now), Ok(at("2026-12-03T22:00:00Z")));
        assert_eq!(parse_expiry("30m", now), Ok(at("2026-12-03T10:30:00Z")));
        assert_eq!(parse_expiry("2027-01-01T00:00:00+08:00", now), Ok(at("2026-12-31T16:00:00Z")));
        assert_eq!(
            parse_expiry("2026-01-01T00:00:00Z", now),
            Err("`2026-01-01T00:00:00Z` is not in the future".into())
        );
        assert_eq!(parse_expiry("0d", now), Err("`0d` is not in the future".into()));
        assert_eq!(parse_expiry("3w", now), Err("`3w`: the unit is `d`, `h` or `m`".into()));
        assert_eq!(
            parse_expiry("soon", now),
            Err("`soon` is neither a span such as `90d`, `12h`, `30m` nor an RFC 3339 instant".into())
        );
    }
}
