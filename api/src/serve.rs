//! `civicflow serve`: the store, the runtime, the timer service and the HTTP server, started
//! together and stopped together.
//!
//! On first start (an empty store) the bundled policies are published and one admin token is
//! made (stored hashed; shown once by the caller). Shutdown is graceful: the listener stops
//! accepting, requests in flight (commands included) finish and are answered, the event streams
//! end, the timer service stops between firings, and the group committer drains its queue before
//! the store is let go.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use civicflow_engine::audit::note::NoteSigner;
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::{Clock, SimulatedClock, SystemClock};
use civicflow_engine::runtime::{CheckpointPolicy, Runtime, RuntimeError};
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, Store, StoreError};

use crate::http::auth::{create_token, TokenError, ADMIN_ROLE};
use crate::http::{self, AppState};
use crate::metrics::{MeteredStore, Metrics};

/// Where the data lives.
#[derive(Clone)]
pub enum Database {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A URL: `postgres://…` or `sqlite://…`.
    Url(String),
    /// A store opened by the caller (tests: a PostgreSQL schema of their own).
    Store(Arc<dyn Store>),
}

impl Database {
    /// Reads `--database`: a `postgres://`, `postgresql://` or `sqlite:` URL, or a file path.
    pub fn parse(text: &str) -> Database {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") || text.starts_with("sqlite:") {
            Database::Url(text.to_string())
        } else {
            Database::Sqlite(PathBuf::from(text))
        }
    }

    /// Opens (and migrates) the store.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Database::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            Database::Url(url) if url.starts_with("sqlite:") => Arc::new(SqliteStore::open_url(url).await?),
            Database::Url(url) => Arc::new(PgStore::connect(url).await?),
            Database::Store(store) => store.clone(),
        })
    }

    /// How to name it to a person (no password).
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("SQLite {}", path.display()),
            Database::Url(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                format!("{scheme}://{host}")
            }
            Database::Store(_) => "a store given by the caller".into(),
        }
    }
}

/// What to start.
pub struct Config {
    pub listen: SocketAddr,
    pub database: Database,
    /// Run on a simulated clock starting at this instant (`POST /v1/admin/clock` moves it).
    pub simulated_clock: Option<DateTime<Utc>>,
    /// Publish the bundled policies when the store has none.
    pub publish_bundled: bool,
    /// How often the timer service looks for due timers.
    pub timer_interval: Duration,
    /// R0.2: a directory of `YYYY.json` calendar years to add at start (`--calendar-dir`).
    pub calendar_dir: Option<PathBuf>,
    /// Connections at once, header and body timeouts (issue 9.2).
    pub limits: crate::connections::Limits,
    /// Rate limits and caps per address and principal (issue 9.3).
    pub rates: crate::http::limits::RateConfig,
    /// The runtime's instance cache, in estimated bytes (issue 10.1; `--instance-cache-mib`).
    pub instance_cache_bytes: usize,
    /// How long a token's principal is trusted without asking the store (issue 10.4).
    pub token_cache_ttl: Duration,
    /// Issue 12.2: the file of the key the audit checkpoints are signed with (`--audit-key`);
    /// `None`: beside a SQLite file (`FILE.audit-key`), else `civicflow.audit-key` in the working
    /// directory; a store given by the caller gets a key of this run only.
    pub audit_key: Option<PathBuf>,
    /// The name a created key gets: the checkpoints' origin (`--audit-name`).
    pub audit_name: String,
    /// When checkpoints are signed (`--checkpoint-events`, `--checkpoint-seconds`).
    pub checkpoints: CheckpointPolicy,
}

impl Config {
    pub fn new(listen: SocketAddr, database: Database) -> Self {
        Config {
            listen,
            database,
            simulated_clock: None,
            publish_bundled: true,
            timer_interval: Duration::from_secs(1),
            calendar_dir: None,
            limits: crate::connections::Limits::default(),
            rates: crate::http::limits::RateConfig::default(),
            instance_cache_bytes: civicflow_engine::runtime::DEFAULT_CACHE_BYTES,
            token_cache_ttl: crate::http::token_cache::TOKEN_CACHE_TTL,
            audit_key: None,
            audit_name: crate::audit::key::DEFAULT_NAME.into(),
            checkpoints: CheckpointPolicy::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the database: {0}")]
    Store(#[from] StoreError),
    #[error("the working-day calendar: {0}")]
    Calendar(String),
    #[error("publishing the bundled policy `{name}`: {error}")]
    Publish { name: &'static str, error: RuntimeError },
    #[error("the admin token: {0}")]
    Token(#[from] TokenError),
    #[error("listening on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
    #[error("building the table of open steps from the instances: {0}")]
    OpenSteps(RuntimeError),
    #[error("appending the earlier events to the audit tree: {0}")]
    AuditLog(RuntimeError),
    #[error("building the lateness index from the histories: {0}")]
    LateSteps(RuntimeError),
    #[error("the audit key: {0}")]
    AuditKey(#[from] crate::audit::key::KeyFileError),
}

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when started on port 0).
    pub addr: SocketAddr,
    /// The admin token made on first start (shown once; only its hash is stored).
    pub admin_token: Option<String>,
    /// The bundled policies published by this start.
    pub published: Vec<&'static str>,
    /// Issue 12.2: the file of the audit key, when this start created it (its public key is
    /// then shown once).
    pub audit_key_created: Option<PathBuf>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    serve: JoinHandle<()>,
    timers: JoinHandle<()>,
    checkpoints: JoinHandle<()>,
    committer: JoinHandle<()>,
}

impl Server {
    /// Opens the store, prepares the first start, binds and starts serving.
    pub async fn start(config: Config) -> Result<Server, ServeError> {
        let inner = config.database.open().await?;
        let metrics = Arc::new(Metrics::new());
        let (committed, _) = broadcast::channel(4096);
        let (clock, simulated): (Arc<dyn Clock>, Option<Arc<SimulatedClock>>) = match config.simulated_clock {
            Some(at) => {
                // Issue 9.6: one simulated time for every node on this database; a node joining
                // a rehearsal already under way starts from its time.
                let at = inner.advance_simulated_clock(at).await?;
                let c = Arc::new(SimulatedClock::new(at));
                (c.clone(), Some(c))
            }
            None => (Arc::new(SystemClock), None),
        };
        let metered = Arc::new(MeteredStore::new(inner, metrics.clone(), clock.clone(), committed.clone()));
        let store: Arc<dyn Store> = metered.clone();
        let (committer, committer_task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
        let calendar = Arc::new(Calendar::chinese().map_err(|e| ServeError::Calendar(e.to_string()))?);
        let node = format!("node-{}-{}", std::process::id(), short_random());
        let runtime = Arc::new(
            Runtime::new(store.clone(), committer, clock, calendar, node).with_cache_bytes(config.instance_cache_bytes),
        );
        crate::calendars::load_at_start(&runtime, config.calendar_dir.as_deref()).await?;
        // Issue 10.6: a database from before the open-step table gets it once, before serving.
        let built = runtime
            .build_open_steps(|done, all| tracing::info!(done, all, "building the table of open steps"))
            .await
            .map_err(ServeError::OpenSteps)?;
        if built > 0 {
            tracing::info!(instances = built, "the table of open steps is built");
        }
        // Issue 12.1: a database from before the global audit tree has its events appended once.
        let appended = runtime
            .build_audit_log(|done| tracing::info!(done, "appending the earlier events to the audit tree"))
            .await
            .map_err(ServeError::AuditLog)?;
        if appended > 0 {
            tracing::info!(events = appended, "the audit tree covers every event");
        }
        // Issue 12.6: a database from before the lateness index has it built from the histories.
        let read = runtime
            .build_late_steps(|done, all| tracing::info!(done, all, "building the lateness index"))
            .await
            .map_err(ServeError::LateSteps)?;
        if read > 0 {
            tracing::info!(instances = read, "the lateness index covers the earlier breaches");
        }

        let mut published = Vec::new();
        if config.publish_bundled && store.list_policies().await?.is_empty() {
            for b in civicflow_policies::BUNDLED {
                runtime.publish(b.source).await.map_err(|error| ServeError::Publish { name: b.name, error })?;
                published.push(b.name);
            }
        }
        // Issue 12.2: the checkpoint signer, and a checkpoint of the tree as it stands.
        let (signer, audit_key_created) = audit_signer(&config)?;
        let signer = Arc::new(signer);
        if let Err(e) = runtime.make_checkpoint(&signer).await {
            tracing::error!(error = %e, "the audit log does not extend its last signed checkpoint; none is signed");
        }
        let admin_token = if store.list_principals().await?.is_empty() {
            Some(create_token(store.as_ref(), "admin", "admin", &[ADMIN_ROLE.to_string()]).await?)
        } else {
            None
        };

        let listener =
            TcpListener::bind(config.listen).await.map_err(|error| ServeError::Bind { addr: config.listen, error })?;
        let addr = listener.local_addr().map_err(|error| ServeError::Bind { addr: config.listen, error })?;
        let (stop, stopped) = watch::channel(false);
        let state = AppState::new(crate::http::Shared {
            runtime: runtime.clone(),
            store,
            simulated,
            committed,
            metrics,
            inflight: Default::default(),
            shutdown: stopped.clone(),
            limiter: Arc::new(crate::http::limits::Limiter::new(config.rates)),
            tokens: Arc::new(crate::http::token_cache::TokenCache::with_ttl(config.token_cache_ttl)),
            audit_key: Arc::new(signer.verifier()),
        });
        // Idle limiter keys are forgotten every minute.
        let limiter = state.limiter.clone();
        let mut tidy_stop = stopped.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => limiter.tidy(),
                    _ = tidy_stop.wait_for(|s| *s) => break,
                }
            }
        });
        let app = http::app(state.clone());
        let serve = tokio::spawn(crate::connections::serve(
            listener,
            app,
            config.limits,
            stopped.clone(),
            Duration::from_secs(30),
        ));
        // Issue 10.4: a revocation or a change of roles made anywhere on this database (another
        // node, the CLI) reaches this node's token cache at once (PostgreSQL).
        if let Some(changed) = state.store.principal_changes().await? {
            let tokens = state.tokens.clone();
            forward(changed, stopped.clone(), move |name: String| {
                tokens.forget_principal(&name);
                std::future::ready(())
            });
        }
        // Issue 9.6: what other nodes commit reaches this node's event stream (PostgreSQL).
        if let Some(hints) = metered.commit_hints().await? {
            forward(hints, stopped.clone(), move |hint| {
                let metered = metered.clone();
                async move { metered.publish_hinted(&hint).await }
            });
        }
        // Issue 9.6: the simulated time another node moved to reaches this node's clock.
        if let Some(clock) = state.simulated.clone() {
            let store = state.store.clone();
            let mut clock_stop = stopped.clone();
            let every = config.timer_interval;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = clock_stop.wait_for(|s| *s) => break,
                    }
                    if let Ok(Some(shared)) = store.simulated_clock().await {
                        if shared > clock.now() {
                            let _ = clock.advance_to(shared);
                        }
                    }
                }
            });
        }
        let checkpoints = tokio::spawn(runtime.clone().checkpoint_loop(signer, config.checkpoints, stopped.clone()));
        let timers = tokio::spawn(runtime.timer_loop(config.timer_interval, stopped));
        Ok(Server {
            addr,
            admin_token,
            published,
            audit_key_created,
            state,
            stop,
            serve,
            timers,
            checkpoints,
            committer: committer_task,
        })
    }

    /// Stops gracefully: answers what is in flight, then lets the store go.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.serve.await {
            tracing::error!(error = %e, "the HTTP server task failed");
        }
        let _ = self.timers.await;
        let _ = self.checkpoints.await;
        // The last handle of the runtime (and with it the group committer's queue) goes here;
        // the committer answers what is queued, then ends.
        drop(self.state);
        if tokio::time::timeout(Duration::from_secs(30), self.committer).await.is_err() {
            tracing::error!("the commit queue did not drain within 30 s");
        }
    }
}

/// The audit key from its file (created there on first start), or one of this run only for a
/// store given by the caller without a file.
fn audit_signer(config: &Config) -> Result<(NoteSigner, Option<PathBuf>), ServeError> {
    let path = match (&config.audit_key, &config.database) {
        (Some(path), _) => path.clone(),
        (None, Database::Sqlite(file)) => {
            let mut name = file.clone().into_os_string();
            name.push(".audit-key");
            PathBuf::from(name)
        }
        (None, Database::Url(_)) => PathBuf::from("civicflow.audit-key"),
        (None, Database::Store(_)) => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| crate::audit::key::KeyFileError::Random(e.to_string()))?;
            let signer = NoteSigner::from_seed(&config.audit_name, seed).map_err(|error| {
                crate::audit::key::KeyFileError::Malformed { path: PathBuf::from("(this run)"), error }
            })?;
            return Ok((signer, None));
        }
    };
    let loaded = crate::audit::key::load_or_create(&path, &config.audit_name)?;
    Ok((loaded.signer, loaded.created.then_some(path)))
}

fn short_random() -> String {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => "0".into(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Hands what another node's store notifies (`received`) to `handle`, one at a time, until the
/// server stops or the store's listener ends.
fn forward<T, F, Fut>(mut received: tokio::sync::mpsc::Receiver<T>, mut stopped: watch::Receiver<bool>, mut handle: F)
where
    T: Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = received.recv() => next,
                _ = stopped.wait_for(|s| *s) => None,
            };
            match next {
                Some(item) => handle(item).await,
                None => break,
            }
        }
    });
}
