//! Small shared helpers: RFC 3339 UTC times, deterministic JSON, hex checks,
//! random names. Nothing here touches artifacts.

use crate::error::{Error, IoContext, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use time::OffsetDateTime;
use time::macros::format_description;

/// Current time as RFC 3339 UTC with whole seconds, e.g. `2026-11-29T07:33:33Z`.
/// The value of a scoped thread, or its panic carried on in the caller.
pub fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .expect("a UTC time always formats")
}

/// A file timestamp (seconds, nanoseconds since the epoch) as RFC 3339 UTC with
/// nanoseconds, so that re-identification compares it exactly.
pub fn timestamp_ns(secs: i64, nanos: i64) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    match OffsetDateTime::from_unix_timestamp_nanos(total) {
        Ok(t) => t.format(&fmt).expect("a UTC time always formats"),
        Err(_) => format!("@{secs}.{nanos:09}"),
    }
}

/// Parse an RFC 3339 time (as written by this tool, or any RFC 3339 time).
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::input(format!("invalid RFC 3339 time {s:?}: {e}")))
}

/// Deterministic JSON: struct fields in declaration order, maps sorted
/// (BTreeMap), two-space indentation, trailing newline. The same value always
/// gives the same bytes; signed files are never re-serialized after writing.
pub fn to_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(&mut out, value).expect("plan and certificate types serialize");
    out
}

/// [`to_json_bytes`], written to `w` as it is serialized.
pub fn write_json<T: Serialize>(mut w: &mut dyn Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut w, value).map_err(std::io::Error::other)?;
    w.write_all(b"\n")
}

/// Write bytes to `path` atomically: a temporary file beside it, fsync,
/// rename, fsync of the directory. Refuses to follow a symlink at `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// The folder of `path` and a fresh temporary name in it.
fn temporary_beside(path: &Path) -> Result<(&Path, std::path::PathBuf)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), random_hex(6)));
    Ok((dir, tmp))
}

/// [`write_atomic`] for output made piece by piece: `fill` writes into a
/// buffered writer on the temporary file. Returns what `fill` returned.
pub fn write_atomic_with<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
) -> Result<T> {
    let (dir, tmp) = temporary_beside(path)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .at(&tmp)?;
    let out = {
        let mut w = std::io::BufWriter::new(&mut f);
        let out = fill(&mut w);
        let flushed = w.flush();
        match (out, flushed) {
            (Ok(t), Ok(())) => Ok(t),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    let out = match out.and_then(|t| f.sync_all().map(|()| t)) {
        Ok(t) => t,
        Err(e) => {
            drop(f);
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
    };
    drop(f);
    std::fs::rename(&tmp, path).at(path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(out)
}

/// [`write_atomic`] without the fsyncs, for many files written together:
/// the caller makes them durable at once with [`sync_filesystem`].
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let (_, tmp) = temporary_beside(path)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)
}

/// One `syncfs` of the filesystem holding `dir`: everything written there
/// so far is durable.
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).at(dir)?;
    rustix::fs::syncfs(&d).map_err(|e| Error::io(dir, e.into()))
}

/// Write bytes to a new file; refuse if anything exists at `path`.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::refused(format!(
                    "{}: already exists; refusing to overwrite",
                    path.display()
                ))
            } else {
                Error::io(path, e)
            }
        })?;
    f.write_all(bytes).at(path)?;
    f.sync_all().at(path)?;
    Ok(())
}

/// `n` random bytes as lowercase hex, from the OS generator.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Validate and normalise a SHA-256 hex digest (64 hex digits, any case).
pub fn parse_sha256(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not a SHA-256 digest (64 hex digits)"));
    }
    Ok(t.to_ascii_lowercase())
}

/// The host name, for plans and certificates.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Read a whole input file with a size limit, so junk or a device node can't
/// exhaust memory. Errors name the file.
pub fn read_input(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = open_input(path, what, limit)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).at(path)?;
    if buf.len() as u64 > limit {
        return Err(too_large(path, what, limit));
    }
    Ok(buf)
}

/// [`read_input`]'s checks, for a file read as a stream: it opens, is a
/// regular file, and is not larger than `limit` bytes.
pub fn open_input(path: &Path, what: &str, limit: u64) -> Result<std::fs::File> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::input(format!("cannot read {what} {}: {e}", path.display())))?;
    let meta = f.metadata().at(path)?;
    if !meta.is_file() {
        return Err(Error::input(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > limit {
        return Err(too_large(path, what, limit));
    }
    Ok(f)
}

fn too_large(path: &Path, what: &str, limit: u64) -> Error {
    Error::input(format!(
        "{what} {} is larger than {limit} bytes; refusing to read it",
        path.display()
    ))
}

/// Check that `dir` is a folder or missing (then [`ensure_dir`] can create
/// it). Returns whether it exists. Something else at that path is an input
/// error.
pub fn check_dir(dir: &Path, what: &str) -> Result<bool> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(Error::input(format!(
            "{what} {}: not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Make sure `dir` is a folder, creating it (and its parents) when missing.
pub fn ensure_dir(dir: &Path, what: &str) -> Result<()> {
    if !check_dir(dir, what)? {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::input(format!("{what} {}: cannot create it: {e}", dir.display()))
        })?;
    }
    Ok(())
}

/// Read an input file as UTF-8 text (see [`read_input`]).
pub fn read_text(path: &Path, what: &str, limit: u64) -> Result<String> {
    let bytes = read_input(path, what, limit)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::input(format!("{what} {} is not UTF-8 text", path.display())))
}

/// Format a byte count for people (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Collapse a multi-line message (TOML and SDK errors) into one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An absolute path with no `.`, `..`, empty components, or trailing slash,
/// valid UTF-8 and without NUL or newline.
pub fn check_normalised(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("not absolute".into());
    }
    if path.contains('\0') || path.contains('\n') {
        return Err("contains a NUL or newline".into());
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err("has a trailing slash".into());
    }
    for part in path.split('/').skip(1) {
        match part {
            "" if path != "/" => return Err("has an empty component (\"//\")".into()),
            "." | ".." => return Err(format!("contains {part:?}")),
            _ => {}
        }
    }
    Ok(())
}

/// The real path of `p`: its folder resolved (the file itself may not
/// exist yet, as a plan about to be written).
pub fn real_path(p: &Path) -> std::path::PathBuf {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match (std::fs::canonicalize(dir), p.file_name()) {
        (Ok(d), Some(n)) => d.join(n),
        _ => p.to_path_buf(),
    }
}

/// What an object-store location (`s3://bucket/prefix`, `gs://bucket/prefix`)
/// covers: **folder semantics**.
/// `s3://models/fd` covers the object whose key is exactly `fd` and every
/// key under `fd/`, never `fdx/…` or `fd-old`; a prefix that ends in `/`
/// (`fd/`) covers every key under it; an empty prefix the whole bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    prefix: &'a str,
}

impl<'a> Scope<'a> {
    pub fn new(prefix: &'a str) -> Self {
        Scope { prefix }
    }

    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// A folder already (ends in `/`) or the whole bucket.
    /// A folder (`fd/`, or the whole bucket): one listing, in key order.
    pub fn is_folder(&self) -> bool {
        self.prefix.is_empty() || self.prefix.ends_with('/')
    }

    /// Whether `key` lies in the location.
    pub fn contains(&self, key: &str) -> bool {
        match key.strip_prefix(self.prefix) {
            None => false,
            Some(_) if self.is_folder() => true,
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
        }
    }

    /// `key` relative to the location (what include/exclude globs see):
    /// `fd/a/b.bin` under `fd` is `a/b.bin`; the key `fd` itself is `fd`'s
    /// last component.
    pub fn relative<'k>(&self, key: &'k str) -> &'k str {
        match key.strip_prefix(self.prefix) {
            Some("") => key.rsplit('/').next().unwrap_or(key),
            Some(rest) => rest.strip_prefix('/').unwrap_or(rest),
            None => key,
        }
    }

    /// The listings that together return exactly the location's keys (and
    /// no sibling's subtree): (prefix, delimiter). For `fd`: `fd` with
    /// delimiter `/` (the key `fd` itself, and flat siblings such as
    /// `fd-old` that [`Scope::contains`] drops; `fd-old/…` rolls up into a
    /// common prefix and is never listed), then everything under `fd/`.
    pub fn listings(&self) -> Vec<(String, Option<&'static str>)> {
        if self.is_folder() {
            vec![(self.prefix.to_string(), None)]
        } else {
            vec![
                (self.prefix.to_string(), Some("/")),
                (format!("{}/", self.prefix), None),
            ]
        }
    }

    /// Whether a key that the listing `(prefix, delimiter)` returned is the
    /// location's and that listing's own. A store that ignores the delimiter
    /// (moto's upload listing) returns keys under `fd/` in the listing of
    /// `fd` too, which the next listing returns again.
    pub fn owns(&self, key: &str, (prefix, delimiter): (&str, Option<&str>)) -> bool {
        self.contains(key)
            && !delimiter.is_some_and(|d| {
                key.strip_prefix(prefix)
                    .is_some_and(|rest| rest.contains(d))
            })
    }

    /// The rule, as the plan and `show` state it.
    pub fn rule(&self) -> String {
        if self.prefix.is_empty() {
            "every key in the bucket".to_string()
        } else if self.is_folder() {
            format!("every key under {}", self.prefix)
        } else {
            format!(
                "the key {p} and every key under {p}/ (never {p}-… or {p}x… siblings)",
                p = self.prefix
            )
        }
    }
}

/// Percent-encode a name for a URL path segment or query value:
/// everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_nanoseconds() {
        assert_eq!(timestamp_ns(0, 5), "1970-01-01T00:00:00.000000005Z");
        assert_eq!(rfc3339(OffsetDateTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn sha256_validation() {
        assert!(parse_sha256(&"A".repeat(64)).is_ok());
        assert_eq!(parse_sha256(&"A".repeat(64)).unwrap(), "a".repeat(64));
        assert!(parse_sha256(&"g".repeat(64)).is_err());
        assert!(parse_sha256("abc").is_err());
    }
}
