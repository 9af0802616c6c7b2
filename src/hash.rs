//! The one SHA-256 loop. Every content hash decom computes (trace, re-hash
//! before overwrite, read-back verification, recheck) goes through
//! [`hash_reader`], so buffer size and CPU acceleration are decided here once.
//! sha2 picks SHA-NI / AVX2 at run time.

use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

/// Read size for hashing (and for read-back where O_DIRECT is refused):
/// 128 KiB stays in L2 between the kernel's copy and SHA-256; kernel
/// readahead keeps the reads sequential and large on the device. See
/// [`PageBuf`] for the alignment.
pub const READ_BLOCK: usize = 128 << 10;

/// A zeroed byte buffer whose start is page-aligned (safe code: an
/// over-allocated Vec and an aligned window into it). The kernel copies file
/// data into and out of a page-aligned buffer much faster: hashing 1 GiB
/// from the page cache took 0.15 s of system time with an aligned 128 KiB
/// buffer and 0.61-0.66 s with the same buffer 1 or 16 bytes off
/// (`_copy_to_iter` was 47 % of the profile).
pub struct PageBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageBuf {
    const PAGE: usize = 4096;

    pub fn new(len: usize) -> PageBuf {
        let raw = vec![0u8; len + Self::PAGE];
        let start = raw.as_ptr().align_offset(Self::PAGE).min(Self::PAGE);
        PageBuf { raw, start, len }
    }

    /// Use the first `len` bytes (at most the capacity given to `new`).
    pub fn set_len(&mut self, len: usize) {
        assert!(self.start + len <= self.raw.len(), "within capacity");
        self.len = len;
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// Hash everything `reader` yields. `on_bytes` is told how many bytes each
/// read added (for progress). Stops with `Interrupted` when `cancel` is set.
pub fn hash_reader(
    mut reader: impl Read,
    cancel: Option<&AtomicBool>,
    mut on_bytes: impl FnMut(u64),
) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = PageBuf::new(READ_BLOCK);
    let mut total = 0u64;
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        on_bytes(n as u64);
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// SHA-256 of a byte slice, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An incremental hasher for data produced elsewhere (the overwrite writer).
#[derive(Default, Clone)]
pub struct Running(Sha256);

impl Running {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// SHA-256 of each file, in parallel on all cores, each read once (never
/// following a symlink as the final component). Results in input order.
pub fn hash_files(paths: &[std::path::PathBuf]) -> Vec<io::Result<String>> {
    use rayon::prelude::*;
    use std::os::unix::fs::OpenOptionsExt;
    paths
        .par_iter()
        .map(|p| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(
                    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
                )
                .open(p)?;
            if !f.metadata()?.is_file() {
                return Err(io::Error::other("not a regular file"));
            }
            Ok(hash_reader(f, None, |_| {})?.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_buffers_start_on_a_page() {
        for len in [1, 4096, 128 << 10, 3 << 20] {
            let mut b = super::PageBuf::new(len);
            assert_eq!(b.as_ptr() as usize % 4096, 0);
            assert_eq!(b.len(), len);
            b.set_len(len / 2);
            assert_eq!(b.len(), len / 2);
            assert!(b.iter().all(|x| *x == 0));
        }
    }

    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Streaming equals one-shot whatever the chunking.
        #[test]
        fn streaming_hash_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..3_000_000usize)) {
            let (h, n) = hash_reader(&data[..], None, |_| {}).unwrap();
            prop_assert_eq!(n, data.len() as u64);
            prop_assert_eq!(h, sha256_hex(&data));
        }
    }

    #[test]
    fn known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
