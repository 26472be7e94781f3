//! The on-disk compile cache: machine code per component content hash, and
//! an index that remembers a file's content hash by its identity on disk.
//!
//! Loading a cached component must be cheap even for a 20 MB Python guest
//! (40 MB of machine code), so a cache hit neither reads nor hashes the
//! `.wasm` nor copies the machine code into memory:
//!
//! - `index/NAME` remembers, for one component path, the file's identity
//!   (device, inode, size, modification and change times in ns) and its
//!   SHA-256. A file whose identity still matches is not read again; any
//!   write to it changes its change time, which no user can set.
//! - The machine code is mapped, not read: from a private copy that is
//!   unlinked once mapped, so no other process can truncate or rewrite what
//!   this one executes (a mapped file changed in place would fault the
//!   process).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileIdentity(String);

impl FileIdentity {
    /// The identity of `meta`'s file.
    #[cfg(unix)]
    pub(super) fn of(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity(format!(
            "{} {} {} {}.{} {}.{}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        ))
    }

    /// Elsewhere: size and modification time only.
    #[cfg(not(unix))]
    pub(super) fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity(format!("{} {:?}", meta.len(), meta.modified().ok()))
    }
}

/// `sha256:HEX` of `bytes`.
pub(super) fn content_hash(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The index entry of component `path` under cache `dir`.
fn index_file(dir: &Path, path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let key = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    dir.join("index").join(hex::encode(&key[..16]))
}

/// The content hash remembered for `path`, if its identity is unchanged.
pub(super) fn indexed_hash(dir: &Path, path: &Path, identity: &FileIdentity) -> Option<String> {
    let text = std::fs::read_to_string(index_file(dir, path)).ok()?;
    let (id, hash) = text.trim_end().rsplit_once('\n')?;
    (id == identity.0 && hash.starts_with("sha256:") && hash.len() == 71).then(|| hash.to_string())
}

/// Remembers `hash` for `path` at `identity` (best effort: a cache that
/// cannot be written only costs the next load a hash).
pub(super) fn remember_hash(dir: &Path, path: &Path, identity: &FileIdentity, hash: &str) {
    let _ = crate::perf::write_atomically(
        &index_file(dir, path),
        format!("{}\n{hash}\n", identity.0).as_bytes(),
    );
}

/// The machine-code file for content `hash` under engine configuration
/// `config_key`.
pub(super) fn code_file(dir: &Path, hash: &str, config_key: u64) -> PathBuf {
    let digest = hash.trim_start_matches("sha256:");
    dir.join(format!(
        "{}-{config_key:016x}.cwasm",
        &digest[..32.min(digest.len())]
    ))
}

/// Maps machine code this runtime compiled earlier, from a private copy
/// unlinked once mapped (see the module docs).
#[allow(unsafe_code)]
pub(super) fn map_cached(engine: &Engine, file: &Path) -> wasmtime::Result<Component> {
    static COPIES: AtomicU64 = AtomicU64::new(0);
    let private = file.with_extension(format!(
        "{}-{}.map",
        std::process::id(),
        COPIES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::copy(file, &private)?;
    // SAFETY: the code was produced by `Engine::precompile_component` of an
    // engine with the same configuration (the file name carries the engine's
    // compatibility hash, and wasmtime re-checks the header and version),
    // written atomically into the user's own cache directory, so it is
    // trusted like the thermoroute binary itself; and the mapped copy is
    // private to this process and unlinked below, so it cannot change while
    // mapped.
    let component = unsafe { Component::deserialize_file(engine, &private) };
    let _ = std::fs::remove_file(&private);
    component
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_forgets_a_file_once_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"one").unwrap();
        let id = FileIdentity::of(&std::fs::metadata(&file).unwrap());
        let hash = content_hash(b"one");
        remember_hash(dir.path(), &file, &id, &hash);
        assert_eq!(indexed_hash(dir.path(), &file, &id), Some(hash));
        std::fs::write(&file, b"two").unwrap();
        let changed = FileIdentity::of(&std::fs::metadata(&file).unwrap());
        assert_ne!(changed, id);
        assert_eq!(indexed_hash(dir.path(), &file, &changed), None);
        // A corrupt entry is no entry.
        std::fs::write(index_file(dir.path(), &file), "garbage").unwrap();
        assert_eq!(indexed_hash(dir.path(), &file, &changed), None);
    }
}
