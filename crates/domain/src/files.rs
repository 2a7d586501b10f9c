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

/// Write `bytes` to `path`, readable by this user only (0600) from its first byte: they go to a
/// hidden temporary file created 0600 beside it, which is then renamed, so nobody ever sees the
/// file partial or with a wider mode (a file created first and restricted after is readable by
/// others in between).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("a file path has a name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
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
        // Written whole and private; rewritten likewise; no temporary file left.
        let mail = dir.join("a.eml");
        write_private(&mail, b"hello").unwrap();
        write_private(&mail, b"again").unwrap();
        assert_eq!(std::fs::read(&mail).unwrap(), b"again");
        assert_eq!(mode(&mail), 0o600);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a.eml", "db"]);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(shared_mode(&dir), Some(0o755));
        // An existing directory keeps its mode.
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o755);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
