//! The overwrite engine: one pass over the whole file in place (never
//! truncating first), with large blocks, fsync at the end; random data from
//! ChaCha12 generated on a second thread ahead of the writer; the written data
//! hashed as it is written (no extra copy); and read-back from the device
//! after dropping the page cache (fsync + posix_fadvise DONTNEED).

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
/// handing each to `sink` with its offset. Two buffers circulate, so
/// generation overlaps the write.
fn random_blocks(
    size: u64,
    block: usize,
    mut sink: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    if size == 0 {
        return Ok(());
    }
    let block = block.min(size as usize);
    let (full_tx, full_rx) = mpsc::sync_channel::<PageBuf>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<PageBuf>(3);
    for _ in 0..3 {
        empty_tx
            .send(PageBuf::new(block))
            .expect("channel has room");
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut rng =
                rand_chacha::ChaCha12Rng::from_rng(rand::rngs::OsRng).expect("OS random source");
            let mut left = size;
            while left > 0 {
                let Ok(mut buf) = empty_rx.recv() else { return };
                let n = left.min(block as u64) as usize;
                buf.set_len(n);
                rng.fill_bytes(&mut buf);
                left -= n as u64;
                if full_tx.send(buf).is_err() {
                    return;
                }
            }
        });
        let mut off = 0u64;
        while off < size {
            let buf = full_rx
                .recv()
                .expect("generator sends until size is reached");
            let r = sink(&buf, off);
            off += buf.len() as u64;
            let mut buf = buf;
            buf.set_len(block);
            let _ = empty_tx.send(buf);
            r?;
        }
        drop(empty_tx);
        Ok(())
    })
}

/// Drop the file's pages from the cache and read it back from the device,
/// returning the SHA-256 of what is there.
pub fn read_back(
    file: &File,
    path: &Path,
    size: u64,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> Result<String> {
    file.sync_all().at(path)?;
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed).at(path)?;
    let mut f = file;
    f.seek(SeekFrom::Start(0)).at(path)?;
    let (sha, n) =
        crate::hash::hash_reader(f, Some(cancel), |n| progress.bytes(n)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::Interrupted {
                Error::Interrupted
            } else {
                Error::io(path, e)
            }
        })?;
    if n != size {
        return Err(Error::io(
            path,
            std::io::Error::other(format!("read back {n} bytes, expected {size}")),
        ));
    }
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn roundtrip(size: u64, pass: Pass, block: usize) {
        let dir = tempfile::tempdir().unwrap();
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
        let r = read_back(&f, &p, size, &cancel, &Silent).unwrap();
        assert_eq!(w, r);
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
