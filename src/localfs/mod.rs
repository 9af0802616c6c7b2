//! Local filesystem access that never follows a symbolic link.
//!
//! Every destructive operation on a local artifact goes through an
//! [`Anchor`]: the location's root directory, opened from `/` one component
//! at a time with `O_NOFOLLOW | O_DIRECTORY`, and then each parent directory
//! of an artifact opened the same way relative to it (`openat`). The final
//! name is opened, renamed and unlinked relative to its parent's handle, so a
//! symlink swapped into any component after approval makes the operation
//! fail instead of reaching outside the location. Crossing into another
//! filesystem is refused unless the location allows it.
//!
//! This module knows nothing of plans or profiles: it is the seam between
//! decom and the kernel for local storage.

pub mod media;

use crate::error::{Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What identifies a file at execute time (compared with the plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub kind: Kind,
    pub device: u64,
    pub inode: u64,
    pub nlink: u64,
    pub size: u64,
    pub mtime: String,
    pub ctime: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

#[allow(clippy::unnecessary_cast)]
pub fn identity(st: &rustix::fs::Stat) -> Identity {
    let kind = match FileType::from_raw_mode(st.st_mode as _) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    };
    Identity {
        kind,
        device: st.st_dev as u64,
        inode: st.st_ino as u64,
        nlink: st.st_nlink as u64,
        size: st.st_size as u64,
        mtime: crate::util::timestamp_ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: crate::util::timestamp_ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

/// The same identity from `std::fs::Metadata` (used by the walk in trace).
pub fn identity_of(meta: &std::fs::Metadata) -> Identity {
    use std::os::unix::fs::MetadataExt;
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    Identity {
        kind,
        device: meta.dev(),
        inode: meta.ino(),
        nlink: meta.nlink(),
        size: meta.size(),
        mtime: crate::util::timestamp_ns(meta.mtime(), meta.mtime_nsec()),
        ctime: crate::util::timestamp_ns(meta.ctime(), meta.ctime_nsec()),
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A location root opened without following links.
pub struct Anchor {
    root: OwnedFd,
    root_path: PathBuf,
    device: u64,
    cross_filesystems: bool,
}

/// The directory that holds an artifact, opened safely, and the artifact's name.
pub struct Parent {
    pub dir: OwnedFd,
    pub name: OsString,
    pub dir_path: PathBuf,
}

fn os_err(path: &Path, e: rustix::io::Errno) -> Error {
    let io: std::io::Error = e.into();
    if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
        return Error::io(
            path,
            std::io::Error::new(
                io.kind(),
                "a component is a symbolic link or not a directory; refusing to follow it",
            ),
        );
    }
    Error::io(path, io)
}

impl Anchor {
    /// Open `root` (absolute, normalised) from `/`, component by component,
    /// refusing symlinks anywhere on the way.
    pub fn open(root: &Path, cross_filesystems: bool) -> Result<Anchor> {
        if !root.is_absolute() {
            return Err(Error::input(format!(
                "{}: location root is not absolute",
                root.display()
            )));
        }
        let mut fd = rustix::fs::open("/", DIR_FLAGS, Mode::empty())
            .map_err(|e| os_err(Path::new("/"), e))?;
        let mut so_far = PathBuf::from("/");
        for c in root.components() {
            match c {
                Component::RootDir => continue,
                Component::Normal(name) => {
                    so_far.push(name);
                    fd = rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty())
                        .map_err(|e| os_err(&so_far, e))?;
                }
                _ => {
                    return Err(Error::input(format!(
                        "{}: location root is not normalised",
                        root.display()
                    )));
                }
            }
        }
        let st = rustix::fs::fstat(&fd).map_err(|e| os_err(root, e))?;
        Ok(Anchor {
            device: identity(&st).device,
            root: fd,
            root_path: root.to_path_buf(),
            cross_filesystems,
        })
    }

    pub fn device(&self) -> u64 {
        self.device
    }

    pub fn inode(&self) -> Result<u64> {
        let st = rustix::fs::fstat(&self.root).map_err(|e| os_err(&self.root_path, e))?;
        Ok(identity(&st).inode)
    }

    /// Open the parent directory of `rel` (relative to the root, only normal
    /// components), each step with `O_NOFOLLOW`.
    pub fn parent(&self, rel: &Path) -> Result<Parent> {
        let parts: Vec<&OsStr> = rel
            .components()
            .map(|c| match c {
                Component::Normal(n) => Ok(n),
                _ => Err(Error::input(format!(
                    "{}: not a plain relative path",
                    rel.display()
                ))),
            })
            .collect::<Result<_>>()?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(Error::input("empty artifact path"));
        };
        let mut fd = rustix::io::dup(&self.root).map_err(|e| os_err(&self.root_path, e))?;
        let mut dir_path = self.root_path.clone();
        for d in dirs {
            dir_path.push(d);
            fd = rustix::fs::openat(&fd, *d, DIR_FLAGS, Mode::empty())
                .map_err(|e| os_err(&dir_path, e))?;
            if !self.cross_filesystems {
                let st = rustix::fs::fstat(&fd).map_err(|e| os_err(&dir_path, e))?;
                if identity(&st).device != self.device {
                    return Err(Error::io(
                        &dir_path,
                        std::io::Error::other(
                            "is on another filesystem than the location; refusing to cross",
                        ),
                    ));
                }
            }
        }
        Ok(Parent {
            dir: fd,
            name: name.to_os_string(),
            dir_path,
        })
    }
}

impl Parent {
    pub fn path(&self) -> PathBuf {
        self.dir_path.join(&self.name)
    }

    /// lstat of the entry (never follows a link).
    pub fn stat(&self, name: &OsStr) -> Result<Option<Identity>> {
        match rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(identity(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(os_err(&self.dir_path.join(name), e)),
        }
    }

    /// Open a regular file for in-place writing, refusing links and
    /// non-blocking on FIFOs (a FIFO then fails the identity check).
    pub fn open_file(&self, name: &OsStr, write: bool) -> Result<File> {
        let mode = if write { OFlags::RDWR } else { OFlags::RDONLY };
        let flags = mode | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = rustix::fs::openat(&self.dir, name, flags, Mode::empty())
            .map_err(|e| os_err(&self.dir_path.join(name), e))?;
        Ok(File::from(fd))
    }

    pub fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
        // RENAME_NOREPLACE: a random name that happens to exist is never clobbered.
        rustix::fs::renameat_with(
            &self.dir,
            from,
            &self.dir,
            to,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| os_err(&self.dir_path.join(from), e))
    }

    pub fn unlink(&self, name: &OsStr) -> Result<()> {
        rustix::fs::unlinkat(&self.dir, name, AtFlags::empty())
            .map_err(|e| os_err(&self.dir_path.join(name), e))
    }

    pub fn rmdir(&self, name: &OsStr) -> Result<()> {
        rustix::fs::unlinkat(&self.dir, name, AtFlags::REMOVEDIR)
            .map_err(|e| os_err(&self.dir_path.join(name), e))
    }

    pub fn readlink(&self, name: &OsStr) -> Result<OsString> {
        let target = rustix::fs::readlinkat(&self.dir, name, Vec::new())
            .map_err(|e| os_err(&self.dir_path.join(name), e))?;
        Ok(OsStr::from_bytes(target.as_bytes()).to_os_string())
    }

    /// fsync the directory so renames and unlinks are durable.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.dir).map_err(|e| os_err(&self.dir_path, e))
    }
}

/// Filesystem type name of the filesystem holding `fd`.
pub fn fs_type(fd: impl AsFd) -> Option<String> {
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(fd)
        .ok()
        .map(|s| media::fs_name(s.f_type as u64))
}

/// How many bytes of the open file share their blocks with another file
/// or a snapshot: FIEMAP's shared flag, as `filefrag -v` shows it (btrfs,
/// xfs, ocfs2, bcachefs reflinks and snapshots). A reflinked copy keeps
/// those blocks whatever is written through this file. `None` when the
/// filesystem cannot map its extents (tmpfs, network filesystems).
pub fn shared_bytes(f: &std::fs::File) -> Option<u64> {
    use fiemap::{FiemapExtentFlags, FiemapFlags};
    let mut n = 0u64;
    // SYNC: delayed allocation would otherwise hide extents not yet written.
    for e in fiemap::Fiemap::with_flags(f, FiemapFlags::SYNC) {
        let e = e.ok()?;
        if e.fe_flags.contains(FiemapExtentFlags::SHARED) {
            n += e.fe_length;
        }
    }
    Some(n)
}

/// Other processes holding a file open for writing, as `/proc/*/fd` and
/// `fdinfo` tell: (device, inode) → "pid N (command)" for each. Such a
/// process can go on writing into the inode after its disposal. Processes
/// decom may not look into are not seen (run as root to see them all).
pub fn open_for_writing() -> std::collections::HashMap<(u64, u64), Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut out: std::collections::HashMap<(u64, u64), Vec<String>> = Default::default();
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        for fd in fds.flatten() {
            let info = std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                .unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            // O_WRONLY or O_RDWR.
            if flags & 0o3 == 0 {
                continue;
            }
            if let Ok(m) = std::fs::metadata(fd.path())
                && m.is_file()
            {
                out.entry((m.dev(), m.ino()))
                    .or_default()
                    .push(format!("pid {pid} ({})", comm.trim()));
            }
        }
    }
    out
}

/// Why the block device behind `device` (st_dev) is a virtual disk.
pub fn virtual_disk(device: u64) -> Option<String> {
    media::virtual_disk(rustix::fs::major(device), rustix::fs::minor(device))
}

/// Whether the block device behind `device` (st_dev) is rotational.
pub fn rotational(device: u64) -> Option<bool> {
    media::rotational(rustix::fs::major(device), rustix::fs::minor(device))
}
