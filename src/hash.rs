//! The one hashing loop. Every content hash decom computes (trace, re-hash
//! before overwrite, read-back verification, recheck) goes through
//! [`digest_reader`] ([`hash_reader`] for SHA-256 alone), so buffer size and
//! CPU acceleration are decided here once; SHA-384, SHA-512 and the git blob
//! SHA-1 are computed only when asked, from the same bytes.
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

/// Digests a read computes besides SHA-256 (which it always computes):
/// only what some known component or store layout needs, in the same read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extra {
    pub sha384: bool,
    pub sha512: bool,
    /// The git blob SHA-1 (`git hash-object`) of content this many bytes
    /// long: the name the Hugging Face cache gives small files.
    pub git_blob: Option<u64>,
}

/// The digests of one read, lowercase hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub sha384: Option<String>,
    pub sha512: Option<String>,
    pub git_blob: Option<String>,
}

/// Hash everything `reader` yields. `on_bytes` is told how many bytes each
/// read added (for progress). Stops with `Interrupted` when `cancel` is set.
pub fn hash_reader(
    reader: impl Read,
    cancel: Option<&AtomicBool>,
    on_bytes: impl FnMut(u64),
) -> io::Result<(String, u64)> {
    digest_reader(reader, Extra::default(), cancel, on_bytes).map(|(d, n)| (d.sha256, n))
}

/// [`hash_reader`] with the `extra` digests computed from the same bytes.
pub fn digest_reader(
    mut reader: impl Read,
    extra: Extra,
    cancel: Option<&AtomicBool>,
    mut on_bytes: impl FnMut(u64),
) -> io::Result<(Digests, u64)> {
    let mut sha256 = Sha256::new();
    let mut sha384 = extra.sha384.then(sha2::Sha384::new);
    let mut sha512 = extra.sha512.then(sha2::Sha512::new);
    let mut git = extra.git_blob.map(|len| {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {len}\0").as_bytes());
        h
    });
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
        let bytes = &buf[..n];
        sha256.update(bytes);
        if let Some(h) = &mut sha384 {
            h.update(bytes);
        }
        if let Some(h) = &mut sha512 {
            h.update(bytes);
        }
        if let Some(h) = &mut git {
            h.update(bytes);
        }
        total += n as u64;
        on_bytes(n as u64);
    }
    // A git blob hash over a length that turned out wrong names nothing.
    let git_blob = match (git, extra.git_blob) {
        (Some(h), Some(len)) if len == total => Some(hex::encode(h.finalize())),
        _ => None,
    };
    Ok((
        Digests {
            sha256: hex::encode(sha256.finalize()),
            sha384: sha384.map(|h| hex::encode(h.finalize())),
            sha512: sha512.map(|h| hex::encode(h.finalize())),
            git_blob,
        },
        total,
    ))
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
    paths
        .par_iter()
        .map(|p| hash_file(p).map(|(sha, _)| sha))
        .collect()
}

/// SHA-256 and size of one regular file, never following a symlink as the
/// final component (a link is an error, as is anything but a file).
pub fn hash_file(p: &std::path::Path) -> io::Result<(String, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    hash_reader(f, None, |_| {})
}

/// A reader or writer that hashes what passes through it: SHA-256 unless
/// another digest is named (`Hashing::<_, Sha512>::with_digest`).
pub struct Hashing<T, D = Sha256> {
    inner: T,
    digest: D,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Self::with_digest(inner)
    }

    /// The SHA-256 of everything that went through, as lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.digest.clone().finalize())
    }
}

impl<T, D: Digest> Hashing<T, D> {
    pub fn with_digest(inner: T) -> Self {
        Hashing {
            inner,
            digest: D::new(),
        }
    }

    /// The inner reader or writer, and the digest of what went through.
    pub fn finish(self) -> (T, Vec<u8>) {
        (self.inner, self.digest.finalize().to_vec())
    }
}

impl<R: std::io::Read, D: Digest> std::io::Read for Hashing<R, D> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: std::io::Write, D: Digest> std::io::Write for Hashing<W, D> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
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
    fn extra_digests_come_from_the_same_read() {
        let (d, n) = digest_reader(
            &b"abc"[..],
            Extra {
                sha384: true,
                sha512: true,
                git_blob: Some(3),
            },
            None,
            |_| {},
        )
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(d.sha256, sha256_hex(b"abc"));
        assert_eq!(
            d.sha384.unwrap(),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
        );
        assert!(d.sha512.unwrap().starts_with("ddaf35a193617aba"));
        // `printf abc | git hash-object --stdin`
        assert_eq!(
            d.git_blob.unwrap(),
            "f2ba8f84ab5c1bce84a7b441cb1959cfc7093b7f"
        );
        let (d, _) = digest_reader(
            &b"abc"[..],
            Extra {
                git_blob: Some(4),
                ..Extra::default()
            },
            None,
            |_| {},
        )
        .unwrap();
        assert_eq!(d.git_blob, None, "a wrong length names nothing");
    }

    #[test]
    fn known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
