//! Files on disk: bounded reads, the CA folder's lock, and sets of files
//! written whole or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::PkiError;

/// Largest certificate, key, CSR or CRL file read: far above any real one
/// (a chain of ten RSA-8192 certificates is under 30 KiB).
pub(crate) const MAX_PEM_FILE: u64 = 1024 * 1024;
/// Largest records file read: room for about 50,000 certificates.
pub(crate) const MAX_RECORDS_FILE: u64 = 16 * 1024 * 1024;

/// Reads `path` whole, refusing files larger than `limit`.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, PkiError> {
    let file = File::open(path).map_err(PkiError::io("read", path))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(PkiError::io("read", path))?;
    let size = bytes.len() as u64;
    if size > limit {
        let size = fs::metadata(path).map_or(size, |m| m.len());
        return Err(PkiError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    Ok(bytes)
}

/// Who may read a file written by a [`FileSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// A certificate, chain or CRL: mode 0644.
    Public,
    /// A private key: mode 0600 from the moment it exists, never wider.
    Secret,
}

/// What to do when a file of a [`FileSet`] already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Refuse, naming the file (a certificate or key the user asked for).
    Refuse,
    /// Replace it atomically (the CA's own records and CRL, or `--force`).
    Replace,
}

struct Staged {
    target: PathBuf,
    temporary: PathBuf,
    existing: Existing,
}

/// Files written together: each is first written in full to a temporary
/// file beside its target, then all are moved into place. Every file is
/// whole or absent, never half-written. If a step fails, the new files
/// moved in already are removed again; a file that replaced another (the
/// CA's records and CRL, or `--force`) stays, since the old one is gone.
#[derive(Default)]
pub(crate) struct FileSet {
    files: Vec<(PathBuf, Vec<u8>, Access, Existing)>,
}

impl FileSet {
    pub(crate) fn new() -> FileSet {
        FileSet::default()
    }

    /// Adds a file to write.
    pub(crate) fn add(
        &mut self,
        path: PathBuf,
        contents: impl Into<Vec<u8>>,
        access: Access,
        existing: Existing,
    ) {
        self.files.push((path, contents.into(), access, existing));
    }

    /// The paths of the set, in the order they were added.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(path, ..)| path.clone()).collect()
    }

    /// Writes every file, or none. A file that exists and may not be
    /// replaced is reported before anything is written.
    pub(crate) fn commit(self) -> Result<Vec<PathBuf>, PkiError> {
        for (path, _, _, existing) in &self.files {
            if *existing == Existing::Refuse && fs::symlink_metadata(path).is_ok() {
                return Err(PkiError::Exists { path: path.clone() });
            }
        }
        let mut staged: Vec<Staged> = Vec::with_capacity(self.files.len());
        for (target, contents, access, existing) in &self.files {
            match stage(target, contents, *access) {
                Ok(temporary) => staged.push(Staged {
                    target: target.clone(),
                    temporary,
                    existing: *existing,
                }),
                Err(err) => {
                    discard(&staged);
                    return Err(err);
                }
            }
        }
        let mut placed: Vec<&Path> = Vec::new();
        for file in &staged {
            if let Err(err) = place(file) {
                for placed_file in staged.iter().take(placed.len()) {
                    if placed_file.existing == Existing::Refuse {
                        let _ = fs::remove_file(&placed_file.target);
                    }
                }
                discard(&staged);
                return Err(err);
            }
            placed.push(&file.target);
        }
        sync_folders(&placed);
        Ok(self.files.into_iter().map(|(path, ..)| path).collect())
    }
}

/// Writes `contents` to a new temporary file beside `target`, flushed to disk.
fn stage(target: &Path, contents: &[u8], access: Access) -> Result<PathBuf, PkiError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut nonce = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| PkiError::content(target, "no randomness for a temporary file name"))?;
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = target.with_file_name(format!(".{name}.{nonce}.tmp"));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match access {
            Access::Public => 0o644,
            Access::Secret => 0o600,
        });
    }
    #[cfg(not(unix))]
    let _ = access;
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(source) = written {
        let _ = fs::remove_file(&temporary);
        return Err(PkiError::Io {
            action: "write",
            path: target.to_path_buf(),
            source,
        });
    }
    Ok(temporary)
}

/// Moves a staged file into place: a hard link when the target must not
/// exist (atomic: it fails if another process created it meanwhile), else
/// a rename over it.
fn place(file: &Staged) -> Result<(), PkiError> {
    let moved = match file.existing {
        Existing::Refuse => match fs::hard_link(&file.temporary, &file.target) {
            Ok(()) => fs::remove_file(&file.temporary),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(err),
            // FAT and exFAT (a USB stick holding an offline CA) and some
            // network shares have no hard links: check, then rename. Not
            // atomic against a second writer, which the folder lock keeps out
            // of the CA's own files.
            Err(_) if fs::symlink_metadata(&file.target).is_ok() => {
                Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
            }
            Err(_) => fs::rename(&file.temporary, &file.target),
        },
        Existing::Replace => fs::rename(&file.temporary, &file.target),
    };
    moved.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists {
                path: file.target.clone(),
            }
        } else {
            PkiError::Io {
                action: "write",
                path: file.target.clone(),
                source,
            }
        }
    })
}

/// Flushes the folders the files were placed in, so that the new names
/// survive a power cut (best effort: not every system can sync a folder).
fn sync_folders(placed: &[&Path]) {
    let mut folders: Vec<&Path> = placed.iter().filter_map(|path| path.parent()).collect();
    folders.dedup();
    for folder in folders {
        if let Ok(handle) = File::open(folder) {
            let _ = handle.sync_all();
        }
    }
}

fn discard(staged: &[Staged]) {
    for file in staged {
        let _ = fs::remove_file(&file.temporary);
    }
}

/// An exclusive lock on a CA folder, held while its records change, so two
/// commands run at once cannot issue the same serial or lose a record.
pub(crate) struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Waits for and takes the lock of `dir` (the file `dir/pki.lock`).
    pub(crate) fn take(dir: &Path) -> Result<FolderLock, PkiError> {
        let path = dir.join("pki.lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(PkiError::io("create", &path))?;
        file.lock().map_err(PkiError::io("lock", &path))?;
        Ok(FolderLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mbaps-pki-files-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_set_with_an_existing_file_writes_nothing() {
        let dir = folder("exists");
        fs::write(dir.join("b.pem"), "old").unwrap();
        let mut set = FileSet::new();
        set.add(dir.join("a.pem"), "a", Access::Public, Existing::Refuse);
        set.add(dir.join("b.pem"), "b", Access::Public, Existing::Refuse);
        let err = set.commit().unwrap_err();
        assert!(matches!(err, PkiError::Exists { ref path } if path.ends_with("b.pem")));
        assert!(!dir.join("a.pem").exists());
        assert_eq!(fs::read_to_string(dir.join("b.pem")).unwrap(), "old");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn secrets_are_owner_only_and_replace_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = folder("secret");
        let mut set = FileSet::new();
        set.add(dir.join("k.key"), "key", Access::Secret, Existing::Refuse);
        set.commit().unwrap();
        let mode = fs::metadata(dir.join("k.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut set = FileSet::new();
        set.add(dir.join("k.key"), "new", Access::Secret, Existing::Replace);
        set.commit().unwrap();
        assert_eq!(fs::read_to_string(dir.join("k.key")).unwrap(), "new");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_are_bounded() {
        let dir = folder("bounded");
        fs::write(dir.join("big"), vec![b'x'; 11]).unwrap();
        let err = read_bounded(&dir.join("big"), 10).unwrap_err();
        assert!(err.to_string().contains("11 bytes; at most 10"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
