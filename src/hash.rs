//! The one SHA-256 loop. Every content hash decom computes (trace, re-hash
//! before overwrite, read-back verification, recheck) goes through
//! [`hash_reader`], so buffer size and CPU acceleration are decided here once.
//! sha2 picks SHA-NI / AVX2 at run time.

use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

/// Read size for hashing and read-back: large sequential reads.
pub const READ_BLOCK: usize = 1 << 20;

/// Hash everything `reader` yields. `on_bytes` is told how many bytes each
/// read added (for progress). Stops with `Interrupted` when `cancel` is set.
pub fn hash_reader(
    mut reader: impl Read,
    cancel: Option<&AtomicBool>,
    mut on_bytes: impl FnMut(u64),
) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BLOCK];
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
