//! Issue 12.2: the key the server signs its audit checkpoints with, kept in a file outside the
//! database (a database copied or restored without it cannot sign in the log's name).
//!
//! The file holds the signer-key text of the signed-note format (`PRIVATE+KEY+NAME+HASH+DATA`)
//! and a newline. It is created on first start with 32 random bytes from the operating system,
//! mode 0600, and refused when group or others may read it, as ssh refuses a private key.

use std::io::Write;
use std::path::{Path, PathBuf};

use civicflow_engine::audit::note::{NoteError, NoteSigner};

/// The name of a key created without `--audit-name`: the checkpoints' origin line.
pub const DEFAULT_NAME: &str = "civicflow.local/audit";

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {error}")]
    Malformed { path: PathBuf, error: NoteError },
    #[error("{path} may be read by others (mode {mode:04o}); run `chmod 600 {path}`")]
    Readable { path: PathBuf, mode: u32 },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// The key, and whether this start created it (its public half is then shown once).
pub struct LoadedKey {
    pub signer: NoteSigner,
    pub created: bool,
}

/// Reads the key at `path`, or creates it there with `name` when there is no file.
pub fn load_or_create(path: &Path, name: &str) -> Result<LoadedKey, KeyFileError> {
    let io = |error| KeyFileError::Io { path: path.to_path_buf(), error };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            check_mode(path)?;
            let signer = NoteSigner::parse(&text)
                .map_err(|error| KeyFileError::Malformed { path: path.to_path_buf(), error })?;
            Ok(LoadedKey { signer, created: false })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
            let signer = NoteSigner::from_seed(name, seed)
                .map_err(|error| KeyFileError::Malformed { path: path.to_path_buf(), error })?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            file.write_all(format!("{}\n", signer.to_key_text()).as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(LoadedKey { signer, created: true })
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|error| KeyFileError::Io { path: path.to_path_buf(), error })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Readable { path: path.to_path_buf(), mode: mode & 0o777 });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<(), KeyFileError> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let created = load_or_create(&path, "test.local/log").unwrap();
        assert!(created.created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = load_or_create(&path, "another name").unwrap();
        assert!(!again.created);
        assert_eq!(again.signer.verifier(), created.signer.verifier());
        assert_eq!(again.signer.name(), "test.local/log");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let refused = load_or_create(&path, "x").err().unwrap().to_string();
            assert_eq!(refused, format!("{0} may be read by others (mode 0644); run `chmod 600 {0}`", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "PRIVATE+KEY+x+00000000+AQ==\n").unwrap();
        let malformed = load_or_create(&path, "x").err().unwrap().to_string();
        assert_eq!(malformed, format!("{}: malformed key: an Ed25519 seed is 32 bytes", path.display()));
    }
}
