//! `civicflow audit witness URL --store DIR`: oversight staff keep the checkpoints a server signs
//! and check each new one against the last they kept. A server that rewrote or cut its history
//! (or shows this witness another tree than others) cannot give a consistency proof from the
//! kept tree to its new one, and is caught at the next run.
//!
//! The store directory holds `key` (the server's public key: the one given with `--key`, or the
//! one served at the first run, trusted from then on), `checkpoint` (the latest kept signed
//! note) and `checkpoints/SIZE.note` (every one kept). Plain HTTP is enough: what is fetched is
//! signed and proved; a forged answer fails the checks.

use std::path::{Path, PathBuf};

use civicflow_engine::audit::merkle::{verify_consistency, Hash};
use civicflow_engine::audit::note::{base64_decode, Checkpoint, NoteVerifier};

/// What a witness run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witnessed {
    /// The first checkpoint kept in this store.
    First(Checkpoint),
    /// A larger tree, proved to extend the one kept before.
    Extended { from: u64, to: Checkpoint },
    /// The same tree as kept before.
    Unchanged(Checkpoint),
}

/// Why a run failed; the first ones are what a witness is for.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("rolled back: the server's checkpoint signs {now} leaves, fewer than the {kept} kept before")]
    RolledBack { kept: u64, now: u64 },
    #[error("forked: the server signs another root for the {size} leaves kept before")]
    Forked { size: u64 },
    #[error("rewritten: the server cannot prove its tree of {now} leaves extends the {kept} kept before")]
    Inconsistent { kept: u64, now: u64 },
    #[error("the server's key is not the one kept in {path}: {served}")]
    KeyChanged { path: PathBuf, served: String },
    #[error("the checkpoint: {0}")]
    Note(#[from] civicflow_engine::audit::note::NoteError),
    #[error("{url}: {error}")]
    Http { url: String, error: String },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WitnessError + '_ {
    move |error| WitnessError::Io { path: path.to_path_buf(), error }
}

/// The checkpoint kept in a witness store (or a saved note file), opened with `key`.
pub fn kept_checkpoint(path: &Path, key: &NoteVerifier) -> Result<Option<Checkpoint>, WitnessError> {
    let file = if path.is_dir() { path.join("checkpoint") } else { path.to_path_buf() };
    match std::fs::read_to_string(&file) {
        Ok(note) => Ok(Some(Checkpoint::open(&note, key)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&file)(e)),
    }
}

async fn get(client: &reqwest::Client, url: String, token: Option<&str>) -> Result<String, WitnessError> {
    let mut request = client.get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let fail = |error: String| WitnessError::Http { url: url.clone(), error };
    let response = request.send().await.map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("{status}: {}", body.trim())));
    }
    Ok(body)
}

/// One witness run against the server at `base` (e.g. `http://127.0.0.1:8080`).
pub async fn witness(
    base: &str,
    dir: &Path,
    key: Option<NoteVerifier>,
    token: Option<&str>,
) -> Result<Witnessed, WitnessError> {
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::new();
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(io(dir))?;
    let key_file = dir.join("key");
    let served = NoteVerifier::parse(&get(&client, format!("{base}/v1/audit/key"), None).await?)?;
    let key = match (key, std::fs::read_to_string(&key_file)) {
        (_, Ok(kept)) => NoteVerifier::parse(&kept)?,
        (Some(given), Err(_)) => given,
        (None, Err(_)) => served.clone(),
    };
    if served != key {
        return Err(WitnessError::KeyChanged { path: key_file, served: served.to_key_text() });
    }
    if !key_file.exists() {
        std::fs::write(&key_file, format!("{}\n", key.to_key_text())).map_err(io(&key_file))?;
    }
    let note = get(&client, format!("{base}/v1/audit/checkpoint"), None).await?;
    let now = Checkpoint::open(&note, &key)?;
    let outcome = match kept_checkpoint(dir, &key)? {
        None => Witnessed::First(now.clone()),
        Some(kept) if kept.size > now.size => return Err(WitnessError::RolledBack { kept: kept.size, now: now.size }),
        Some(kept) if kept.size == now.size => {
            if kept.root != now.root {
                return Err(WitnessError::Forked { size: kept.size });
            }
            return Ok(Witnessed::Unchanged(now));
        }
        Some(kept) if kept.size == 0 => Witnessed::Extended { from: 0, to: now.clone() },
        Some(kept) => {
            let url = format!("{base}/v1/audit/proof/consistency?first={}&second={}", kept.size, now.size);
            let body = get(&client, url.clone(), token).await?;
            let proof: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| WitnessError::Http { url: url.clone(), error: e.to_string() })?;
            let hashes: Option<Vec<Hash>> = proof["hashes"].as_array().and_then(|a| {
                a.iter().map(|h| h.as_str().and_then(base64_decode).and_then(|b| Hash::try_from(b).ok())).collect()
            });
            let holds = hashes.is_some_and(|h| verify_consistency(kept.size, now.size, &h, &kept.root, &now.root));
            if !holds {
                return Err(WitnessError::Inconsistent { kept: kept.size, now: now.size });
            }
            Witnessed::Extended { from: kept.size, to: now.clone() }
        }
    };
    let one = dir.join("checkpoints").join(format!("{}.note", now.size));
    std::fs::write(&one, &note).map_err(io(&one))?;
    // The latest replaced whole (written beside, then renamed: never half a note).
    let latest = dir.join("checkpoint");
    let tmp = dir.join("checkpoint.tmp");
    std::fs::write(&tmp, &note).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &latest).map_err(io(&latest))?;
    Ok(outcome)
}
