//! The data dir as a private place with one owner: an exclusive lock held for the life of
//! the process (two servers on one log and database would corrupt both), files `0600` and
//! directories `0700` (events, keys' hashes and the audit trail are nobody else's to read).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file inside the data dir; it names its holder.
pub const LOCK_FILE: &str = "antibody.lock";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "the data dir {} is in use by another antibody process ({holder}); stop it first, \
         or point this one at another directory with --data-dir",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: String },
    #[error(
        "cannot write to the data dir {} ({source}); give this user write access to it \
         (chown/chmod) or choose a writable directory with --data-dir or ANTIBODY_DATA_DIR",
        dir.display()
    )]
    Unwritable { dir: PathBuf, source: io::Error },
}

/// Held while the process uses the data dir; dropping it (or the process dying, even by
/// kill -9) releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates the data dir if needed and takes its lock for `what` (e.g. `antibody serve`),
    /// recording this process's id; fails naming the holder when another process has it.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self, DataDirError> {
        let unwritable = |source| DataDirError::Unwritable {
            dir: dir.to_path_buf(),
            source,
        };
        create_private_dir(dir).map_err(unwritable)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(unwritable)?;
        if !try_lock(&file).map_err(unwritable)? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "its process id is not recorded yet".to_owned(),
                h => h.to_owned(),
            };
            return Err(DataDirError::Locked {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        let me = format!("pid {}, `{what}`\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(unwritable)?;
        Ok(Self { _file: file })
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `false` when another open file description holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor this `File` owns for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(false);
        }
        Err(e)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(true)
    }
}

/// Files and directories this process creates from now on are its user's only (umask
/// 077): the database, its WAL, log segments, snapshots, keys. Call once at start, before
/// any thread that creates files.
pub fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Tightens what an older build (or a looser umask) left: the data dir and every
/// directory below it to `0700`, every file to `0600`. Symbolic links are left alone, and
/// so is what they point to. Returns how many modes changed.
pub fn make_private(dir: &Path) -> io::Result<usize> {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        changed += usize::from(restrict(&d, 0o700)?);
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                changed += usize::from(restrict(&entry.path(), 0o600)?);
            }
        }
    }
    Ok(changed)
}

fn restrict(path: &Path, mode: u32) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = fs::symlink_metadata(path)?.permissions().mode() & 0o777;
        if current & !mode == 0 {
            return Ok(false);
        }
        fs::set_permissions(path, fs::Permissions::from_mode(current & mode))?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let first = DataDirLock::acquire(&dir, "antibody serve").unwrap();
        let err = DataDirLock::acquire(&dir, "antibody keys create").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DataDirError::Locked { .. }));
        assert!(
            text.contains(&format!("pid {}", std::process::id())) && text.contains("serve"),
            "{text}"
        );
        drop(first);
        DataDirLock::acquire(&dir, "antibody keys create").unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn make_private_tightens_files_and_dirs_below_but_not_beyond_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        fs::create_dir_all(dir.join("log")).unwrap();
        fs::write(dir.join("antibody.db"), b"x").unwrap();
        fs::write(dir.join("log/0.seg"), b"x").unwrap();
        let outside = tmp.path().join("shared.yml");
        fs::write(&outside, b"x").unwrap();
        for p in [&dir, &dir.join("log")] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for p in [&dir.join("antibody.db"), &dir.join("log/0.seg"), &outside] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::os::unix::fs::symlink(&outside, dir.join("link.yml")).unwrap();
        assert_eq!(make_private(&dir).unwrap(), 4);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("log")), 0o700);
        assert_eq!(mode(&dir.join("antibody.db")), 0o600);
        assert_eq!(mode(&dir.join("log/0.seg")), 0o600);
        assert_eq!(
            mode(&outside),
            0o644,
            "a link's target is not ours to change"
        );
        assert_eq!(make_private(&dir).unwrap(), 0, "idempotent");
    }
}
