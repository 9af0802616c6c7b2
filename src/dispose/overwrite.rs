//! The overwrite engine: one pass over the whole file in place (never
//! truncating first), with large blocks, fsync at the end; random data from
//! ChaCha12 generated on a second thread ahead of the writer; the written data
//! hashed as it is written (no extra copy); and read-back from the device
//! with O_DIRECT in 4 MiB requests read ahead of the hasher (or, where the
//! filesystem refuses direct I/O, after dropping the page cache).

use crate::error::{Error, IoContext, Result};
use crate::hash::{PageBuf, Running};
use crate::profile::Pass;
use crate::progress::Progress;
use rand::{RngCore, SeedableRng};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Write one pass over `size` bytes of `file` from offset 0, then fsync.
/// Returns the SHA-256 of what was written when `hash` is set.
#[allow(clippy::too_many_arguments)]
pub fn write_pass(
    file: &File,
    path: &Path,
    size: u64,
    pass: Pass,
    block: usize,
    hash: bool,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> Result<Option<String>> {
    let mut hasher = hash.then(Running::default);
    let mut write_block = |buf: &[u8], offset: u64| -> Result<()> {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        // Hash and write in cache-sized pieces: SHA-256 pulls each piece
        // into L2 and the kernel's copy into the page cache finds it there
        // (one pass over memory instead of two).
        let mut at = offset;
        for piece in buf.chunks(crate::hash::READ_BLOCK) {
            if let Some(h) = hasher.as_mut() {
                h.update(piece);
            }
            file.write_all_at(piece, at).at(path)?;
            at += piece.len() as u64;
        }
        // Start writeback of this block now (DONTNEED on dirty pages queues
        // them for writing without waiting), so the disk writes while the
        // next block is generated and hashed, and the final fsync has little
        // left to do.
        if let Some(len) = std::num::NonZeroU64::new(buf.len() as u64) {
            rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed).at(path)?;
        }
        progress.bytes(buf.len() as u64);
        Ok(())
    };
    match pass.fill() {
        Some(byte) => {
            let mut buf = PageBuf::new(block.min(size as usize).max(1));
            buf.fill(byte);
            let mut off = 0u64;
            while off < size {
                let n = (size - off).min(buf.len() as u64) as usize;
                write_block(&buf[..n], off)?;
                off += n as u64;
            }
        }
        None => random_blocks(size, block, |buf, off| write_block(buf, off))?,
    }
    file.sync_all().at(path)?;
    Ok(hasher.map(Running::finish))
}

/// Produce `size` bytes of ChaCha12 output in blocks on a generator thread,
/// handing each to `sink` with its offset.
fn random_blocks(
    size: u64,
    block: usize,
    sink: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    let mut rng = rand_chacha::ChaCha12Rng::from_rng(rand::rngs::OsRng).expect("OS random source");
    let mut left = size;
    let produced = pipeline(
        block.min(size as usize),
        move |buf, _| {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_bytes(&mut buf[..n]);
            left -= n as u64;
            Ok(n)
        },
        sink,
    )?;
    debug_assert_eq!(produced, size);
    Ok(())
}

/// Fill blocks of up to `block` bytes with `produce` on a second thread and
/// hand each to `consume`, with its offset, on this one. Three page-aligned
/// buffers circulate, so producing the next block (generating random data,
/// reading the device) overlaps consuming this one (writing, hashing).
/// `produce` returns how many bytes it filled; 0 ends the stream. Returns
/// the bytes consumed.
fn pipeline(
    block: usize,
    mut produce: impl FnMut(&mut [u8], u64) -> Result<usize> + Send,
    mut consume: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<u64> {
    if block == 0 {
        return Ok(0);
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<PageBuf>>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<PageBuf>(3);
    for _ in 0..3 {
        empty_tx
            .send(PageBuf::new(block))
            .expect("channel has room");
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut off = 0u64;
            while let Ok(mut buf) = empty_rx.recv() {
                buf.set_len(block);
                let r = produce(&mut buf, off).map(|n| {
                    buf.set_len(n);
                    buf
                });
                let end = r.as_ref().map_or(true, |b| b.is_empty());
                if let Ok(b) = &r {
                    off += b.len() as u64;
                }
                if full_tx.send(r).is_err() || end {
                    return;
                }
            }
        });
        let mut off = 0u64;
        loop {
            let buf = full_rx
                .recv()
                .expect("the producer ends with an empty block or an error")?;
            if buf.is_empty() {
                return Ok(off);
            }
            let r = consume(&buf, off);
            off += buf.len() as u64;
            let _ = empty_tx.send(buf);
            r?;
        }
    })
}

/// How a read-back reached the data.
pub use crate::journal::ReadVia;

/// Size of each O_DIRECT read-back request (dd's `bs=4M`).
pub const DIRECT_BLOCK: usize = 4 << 20;

/// Read the file back from the device and return the SHA-256 of what is
/// there: with O_DIRECT (4 MiB requests, read ahead of the hasher on a
/// second thread) where the filesystem allows it, else through the page
/// cache after dropping the file's pages (fsync + posix_fadvise DONTNEED).
pub fn read_back(
    file: &File,
    path: &Path,
    size: u64,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> Result<(String, ReadVia)> {
    file.sync_all().at(path)?;
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed).at(path)?;
    let (sha, n, via) = match read_direct(file, path, cancel, progress)? {
        Some((sha, n)) => (sha, n, ReadVia::Direct),
        None => {
            let (sha, n) = read_cached(file, path, cancel, progress)?;
            (sha, n, ReadVia::CacheDropped)
        }
    };
    if n != size {
        return Err(Error::io(
            path,
            std::io::Error::other(format!("read back {n} bytes, expected {size}")),
        ));
    }
    Ok((sha, via))
}

/// SHA-256 and length of the file read through the page cache (whose pages
/// of this file the caller has dropped).
fn read_cached(
    file: &File,
    path: &Path,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    let mut f = file;
    f.seek(SeekFrom::Start(0)).at(path)?;
    crate::hash::hash_reader(f, Some(cancel), |n| progress.bytes(n)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Interrupted {
            Error::Interrupted
        } else {
            Error::io(path, e)
        }
    })
}

/// SHA-256 and length of the file read with O_DIRECT, or None when the
/// filesystem refuses direct I/O (the flag, or the first read, fails with
/// EINVAL). The file's flags are restored afterwards.
fn read_direct(
    file: &File,
    path: &Path,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> Result<Option<(String, u64)>> {
    use rustix::fs::OFlags;
    let flags = rustix::fs::fcntl_getfl(file).at(path)?;
    if rustix::fs::fcntl_setfl(file, flags | OFlags::DIRECT).is_err() {
        return Ok(None);
    }
    let mut hasher = Running::default();
    let mut consumed = 0u64;
    let mut eof = false;
    let r = pipeline(
        DIRECT_BLOCK,
        |buf, off| {
            if eof {
                return Ok(0);
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            // Direct reads of a regular file come back whole or short at
            // the end; a short one is the end (the next offset would not
            // be aligned).
            let n = loop {
                match file.read_at(buf, off) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            }
            .at(path)?;
            eof = n < buf.len();
            Ok(n)
        },
        |data, _| {
            hasher.update(data);
            consumed += data.len() as u64;
            progress.bytes(data.len() as u64);
            Ok(())
        },
    );
    let restored = rustix::fs::fcntl_setfl(file, flags).at(path);
    let n = match r {
        Err(Error::Io { source, .. })
            if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
                && consumed == 0 =>
        {
            restored?;
            return Ok(None);
        }
        r => r?,
    };
    restored?;
    Ok(Some((hasher.finish(), n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn roundtrip(size: u64, pass: Pass, block: usize) {
        // The temp dir is ext4 here: O_DIRECT. tmpfs takes it since Linux 6.6.
        roundtrip_in(&std::env::temp_dir(), size, pass, block, true);
        roundtrip_in(Path::new("/dev/shm"), size, pass, block, false);
    }

    fn roundtrip_in(base: &Path, size: u64, pass: Pass, block: usize, direct: bool) {
        let dir = tempfile::tempdir_in(base).unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; size as usize]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let cancel = AtomicBool::new(false);
        let w = write_pass(&f, &p, size, pass, block, true, &cancel, &Silent)
            .unwrap()
            .unwrap();
        let (r, via) = read_back(&f, &p, size, &cancel, &Silent).unwrap();
        assert_eq!(w, r);
        if direct {
            assert_eq!(via, ReadVia::Direct);
        }
        // The fallback reads the same bytes.
        let (c, n) = read_cached(&f, &p, &cancel, &Silent).unwrap();
        assert_eq!((c, n), (w.clone(), size));
        let data = std::fs::read(&p).unwrap();
        assert_eq!(data.len() as u64, size);
        assert_eq!(crate::hash::sha256_hex(&data), w);
        if let Some(b) = pass.fill() {
            assert!(data.iter().all(|x| *x == b));
        } else if size > 64 {
            assert!(data.iter().any(|x| *x != 7));
        }
    }

    #[test]
    fn overwrite_then_read_back_verifies() {
        for size in [0u64, 1, 4095, 4096, 100_000, 1 << 20] {
            roundtrip(size, Pass::Random, 4096);
            roundtrip(size, Pass::Byte(0xA5), 8192);
        }
    }

    #[test]
    fn cancel_stops_the_pass() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 100_000]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let cancel = AtomicBool::new(true);
        let e = write_pass(&f, &p, 100_000, Pass::Zero, 4096, false, &cancel, &Silent).unwrap_err();
        assert!(matches!(e, Error::Interrupted));
    }
}
