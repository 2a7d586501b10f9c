//! Files that hold secrets (the SQLite database, its WAL, mails with live links, the generated
//! JWT secret): created readable by this user only, and a warning when their directory is not.
use std::path::Path;

/// Create `dir` (and missing parents) readable by this user only (0700); an existing directory
/// keeps its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Create `path` empty and readable by this user only (0600) unless it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Make an existing file readable by this user only (0600).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// The permission bits of `dir` that let its group or others in (`None`: private, or unknown).
pub fn shared_mode(dir: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Warn at start when `dir` (holding `what`) is open to its group or to others.
pub fn warn_if_shared(dir: &Path, what: &str) {
    if let Some(mode) = shared_mode(dir) {
        tracing::warn!(
            dir = %dir.display(),
            mode = format_args!("{mode:o}"),
            "{what} is accessible to other users (group/world permissions); it holds password \
             hashes and tokens: chmod 700 it"
        );
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_dirs_and_files_and_the_shared_check() {
        let root = std::env::temp_dir().join(format!("arcana-files-{}", std::process::id()));
        let dir = root.join("a").join("b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.join("a")), 0o700);
        assert_eq!(shared_mode(&dir), None);
        let f = dir.join("db");
        create_private_file(&f).unwrap();
        create_private_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        make_private(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(shared_mode(&dir), Some(0o755));
        // An existing directory keeps its mode.
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o755);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
