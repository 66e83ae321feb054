//! Directory backend: one file per secret, named by its reference (`OPENAI_API_KEY`), as a
//! Kubernetes Secret volume mounts them (files are symlinks into `..data/`, which is swapped
//! atomically on update; we follow the links and skip the dot entries).

use super::{clean, SecretValue, Snapshot};
use aigw_core::config::is_valid_secret_ref;
use std::path::Path;

/// Larger files are not secrets we know how to use; refuse rather than read them.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

pub fn load(dir: &Path) -> std::io::Result<Snapshot> {
    let mut snap = Snapshot::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_valid_secret_ref(name) {
            continue;
        }
        let path = entry.path();
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            _ => continue, // dangling link or a directory
        };
        if meta.len() > MAX_SECRET_BYTES {
            tracing::warn!(secret = name, "secret file larger than 64 KiB ignored");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(v) => {
                snap.insert(name.to_string(), SecretValue::new(clean(&v)));
            }
            // Replaced between listing and reading: the next refresh sees it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(secret = name, error = %e, "secret file unreadable");
            }
        }
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_by_reference_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("OPENAI_API_KEY"), "sk-1\n").unwrap();
        std::fs::write(d.path().join("lowercase"), "x").unwrap();
        std::fs::write(d.path().join("..data"), "x").unwrap();
        std::fs::create_dir(d.path().join("SUBDIR")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.path().join("OPENAI_API_KEY"), d.path().join("LINKED"))
            .unwrap();
        let s = load(d.path()).unwrap();
        assert_eq!(s.get("OPENAI_API_KEY").unwrap().expose(), "sk-1");
        assert!(!s.contains_key("lowercase"));
        assert!(!s.contains_key("SUBDIR"));
        #[cfg(unix)]
        assert_eq!(s.get("LINKED").unwrap().expose(), "sk-1");
    }
}
