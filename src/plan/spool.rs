//! The S3 versions and delete markers of an approved plan, kept on disk.
//!
//! A prefix can hold millions of versions; execute must not hold them (SPEC:
//! memory flat in version count). While the approved plan is parsed (from
//! the one open file whose bytes were verified), every S3 version and delete
//! marker goes to an unnamed temporary file, one JSON line each; the rest of
//! the plan stays in memory. Execute reads a location's items back as often
//! as it needs them, in plan order, with positional reads (two readers never
//! share a file offset). The file is the process's own: it has no name, so
//! nobody can swap its bytes after the approval was checked.

use super::{Artifact, Item};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Whether an item is kept on disk rather than in memory.
pub fn spooled(item: &Item) -> bool {
    matches!(item, Item::S3Version(_) | Item::S3DeleteMarker(_))
}

/// One spooled item as written: externally tagged and without `flatten`,
/// so that reading it back (several times per run) takes serde's direct
/// path instead of buffering every field the way the plan's own
/// `kind`-tagged, flattened form needs.
#[derive(serde::Serialize, Deserialize)]
struct Line<T> {
    id: u32,
    location: u32,
    item: T,
}

#[derive(serde::Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // read one at a time, moved into an Item at once
enum Kept {
    V(super::S3Version),
    M(super::S3Marker),
    /// Any other artifact, parked until a fleet host's part is known ([`Parked`]).
    A(Item),
}

#[derive(serde::Serialize)]
enum SpooledRef<'a> {
    V(&'a super::S3Version),
    M(&'a super::S3Marker),
    A(&'a Item),
}

/// One location's consecutive run of items in the spool.
#[derive(Debug, Clone)]
struct Run {
    location: u32,
    start: u64,
    end: u64,
    items: u64,
    /// Bytes of the versions.
    bytes: u64,
    /// Object versions (not delete markers).
    versions: u64,
    /// Every key is at or after the key before it (byte order): what
    /// execute's listing merge needs. Plans traced before keys were kept
    /// in order within a page are sorted on reading instead.
    key_ordered: bool,
    last_key: String,
    /// The key of every [`crate::store::s3::spec::LIST_PAGE`]-th item: where execute
    /// splits its listing of the location into pieces asked for at once.
    splits: Vec<String>,
}

/// The spooled items of a plan (or of one host's part of it).
#[derive(Debug, Clone)]
pub struct Spool {
    /// `None` until a first item needs it: a plan without S3 versions never
    /// creates a temporary file (nor needs a TMPDIR).
    file: Option<Arc<File>>,
    runs: Vec<Run>,
    /// Ids of the items spooled: one bit each.
    ids: Vec<u64>,
    /// The locations a fleet part keeps (`None`: all).
    kept: Option<HashSet<u32>>,
}

/// Writes a [`Spool`].
pub struct SpoolWriter {
    w: Option<std::io::BufWriter<File>>,
    at: u64,
    runs: Vec<Run>,
    ids: Vec<u64>,
}

impl SpoolWriter {
    pub fn new() -> std::io::Result<Self> {
        Ok(SpoolWriter {
            w: None,
            at: 0,
            runs: Vec::new(),
            ids: Vec::new(),
        })
    }

    pub fn push(&mut self, a: &Artifact) -> std::io::Result<()> {
        let item = match &a.item {
            Item::S3Version(v) => SpooledRef::V(v),
            Item::S3DeleteMarker(m) => SpooledRef::M(m),
            other => SpooledRef::A(other),
        };
        let mut line = serde_json::to_vec(&Line {
            id: a.id,
            location: a.location,
            item,
        })
        .expect("artifacts serialize");
        line.push(b'\n');
        let w = match &mut self.w {
            Some(w) => w,
            None => self.w.insert(std::io::BufWriter::with_capacity(
                1 << 16,
                tempfile::tempfile()?,
            )),
        };
        w.write_all(&line)?;
        let key = a.item.s3_key().map(|k| k.1).unwrap_or_default();
        match self.runs.last_mut() {
            Some(r) if r.location == a.location => {
                r.key_ordered &= r.last_key.as_str() <= key;
                r.last_key.clear();
                r.last_key.push_str(key);
                r.end += line.len() as u64;
                r.items += 1;
                r.bytes += a.item.size();
                r.versions += u64::from(matches!(a.item, Item::S3Version(_)));
                if r.items % crate::store::s3::spec::LIST_PAGE as u64 == 0 {
                    r.splits.push(key.to_string());
                }
            }
            _ => self.runs.push(Run {
                location: a.location,
                start: self.at,
                end: self.at + line.len() as u64,
                items: 1,
                bytes: a.item.size(),
                versions: u64::from(matches!(a.item, Item::S3Version(_))),
                key_ordered: true,
                last_key: key.to_string(),
                splits: Vec::new(),
            }),
        }
        self.at += line.len() as u64;
        if !spooled(&a.item) {
            return Ok(());
        }
        let (word, bit) = (a.id as usize / 64, a.id % 64);
        if self.ids.len() <= word {
            self.ids.resize(word + 1, 0);
        }
        self.ids[word] |= 1 << bit;
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<Spool> {
        let file = match self.w {
            Some(w) => Some(Arc::new(w.into_inner().map_err(|e| e.into_error())?)),
            None => None,
        };
        Ok(Spool {
            file,
            runs: self.runs,
            ids: self.ids,
            kept: None,
        })
    }
}

impl Spool {
    /// Whether the item with this id is spooled (not in the plan's list).
    pub fn contains(&self, id: u32) -> bool {
        self.ids
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn keeps(&self, location: u32) -> bool {
        self.kept.as_ref().is_none_or(|k| k.contains(&location))
    }

    /// Only the items of these locations (one host's part of a fleet plan).
    pub fn keep(&self, locations: HashSet<u32>) -> Spool {
        Spool {
            kept: Some(locations),
            ..self.clone()
        }
    }

    /// How many items a location has spooled, and their bytes.
    pub fn count(&self, location: u32) -> (u64, u64) {
        self.runs
            .iter()
            .filter(|r| r.location == location && self.keeps(location))
            .fold((0, 0), |(n, b), r| (n + r.items, b + r.bytes))
    }

    /// How many object versions (not delete markers) a location has spooled.
    pub fn versions(&self, location: u32) -> u64 {
        self.runs
            .iter()
            .filter(|r| r.location == location && self.keeps(location))
            .map(|r| r.versions)
            .sum()
    }

    /// Whether one location's items come in key order (one run, ordered).
    pub fn key_ordered(&self, location: u32) -> bool {
        let mut runs = self.runs.iter().filter(|r| r.location == location);
        runs.next().is_none_or(|r| r.key_ordered) && runs.next().is_none()
    }

    /// Keys about a listing page apart, in order, from a location whose
    /// items come in key order (none otherwise): see [`crate::store::s3::S3::list_versions_split`].
    pub fn splits(&self, location: u32) -> &[String] {
        match self.runs.iter().find(|r| r.location == location) {
            Some(r) if self.key_ordered(location) => &r.splits,
            _ => &[],
        }
    }

    /// Every spooled item the spool keeps, in plan order.
    pub fn all(&self) -> Items<'_> {
        self.items(|_| true)
    }

    /// One location's items, in plan order.
    pub fn location(&self, location: u32) -> Items<'_> {
        self.items(move |r| r.location == location)
    }

    fn items(&self, which: impl Fn(&Run) -> bool) -> Items<'_> {
        let runs: Vec<(u64, u64)> = self
            .runs
            .iter()
            .filter(|r| which(r) && self.keeps(r.location))
            .map(|r| (r.start, r.end))
            .collect();
        Items {
            file: self.file.as_deref(),
            runs: runs.into_iter(),
            reader: None,
            line: Vec::new(),
        }
    }
}

/// Reads spooled items back, one at a time.
pub struct Items<'s> {
    file: Option<&'s File>,
    runs: std::vec::IntoIter<(u64, u64)>,
    reader: Option<BufReader<At<'s>>>,
    line: Vec<u8>,
}

impl Iterator for Items<'_> {
    type Item = Result<Artifact>;

    fn next(&mut self) -> Option<Result<Artifact>> {
        loop {
            if let Some(r) = &mut self.reader {
                self.line.clear();
                match r.read_until(b'\n', &mut self.line) {
                    Ok(0) => self.reader = None,
                    Ok(_) => {
                        return Some(
                            serde_json::from_slice::<Line<Kept>>(&self.line)
                                .map(|l| Artifact {
                                    id: l.id,
                                    location: l.location,
                                    item: match l.item {
                                        Kept::V(v) => Item::S3Version(v),
                                        Kept::M(m) => Item::S3DeleteMarker(m),
                                        Kept::A(i) => i,
                                    },
                                })
                                .map_err(|e| {
                                    Error::input(format!("the plan's spooled artifacts: {e}"))
                                }),
                        );
                    }
                    Err(e) => {
                        return Some(Err(Error::input(format!(
                            "cannot read the plan's spooled artifacts back: {e}"
                        ))));
                    }
                }
            }
            let (start, end) = self.runs.next()?;
            // Runs are only ever written into the file.
            let file = self.file?;
            self.reader = Some(BufReader::with_capacity(
                1 << 16,
                At {
                    file,
                    pos: start,
                    end,
                },
            ));
        }
    }
}

/// A byte range of a file, read with `pread` (no shared offset).
pub struct At<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl<'f> At<'f> {
    pub fn new(file: &'f File, pos: u64, end: u64) -> Self {
        At { file, pos, end }
    }
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A plan's artifacts as parsed for execute: the S3 versions and delete
/// markers in a [`Spool`], everything else in memory.
#[derive(Debug)]
pub struct Spooled {
    pub held: Vec<Artifact>,
    pub spool: Spool,
}

/// What the artifacts' visitor builds: with parking, every artifact that
/// is not an S3 version or marker goes to `parked` instead of `held`.
struct Sorted {
    held: Vec<Artifact>,
    parked: Option<Spool>,
    spool: Spool,
}

impl Spooled {
    fn deserialize_with<'de, D: serde::Deserializer<'de>>(
        d: D,
        park: bool,
    ) -> std::result::Result<Sorted, D::Error> {
        struct Visit {
            park: bool,
        }
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Sorted;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of artifacts")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> std::result::Result<Sorted, S::Error> {
                use serde::de::Error as _;
                let io = |e: std::io::Error| {
                    S::Error::custom(format!(
                        "cannot keep its artifacts in a temporary file (TMPDIR): {e}"
                    ))
                };
                let mut held = Vec::new();
                let mut w = SpoolWriter::new().map_err(io)?;
                let mut parked = if self.park {
                    Some(SpoolWriter::new().map_err(io)?)
                } else {
                    None
                };
                while let Some(a) = seq.next_element::<Artifact>()? {
                    match &mut parked {
                        _ if spooled(&a.item) => w.push(&a).map_err(io)?,
                        Some(p) => p.push(&a).map_err(io)?,
                        None => held.push(a),
                    }
                }
                Ok(Sorted {
                    held,
                    parked: parked.map(SpoolWriter::finish).transpose().map_err(io)?,
                    spool: w.finish().map_err(io)?,
                })
            }
        }
        d.deserialize_seq(Visit { park })
    }
}

impl<'de> Deserialize<'de> for Spooled {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Spooled::deserialize_with(d, false)?;
        Ok(Spooled {
            held: s.held,
            spool: s.spool,
        })
    }
}

/// A fleet plan's artifacts as parsed for one host's execute: the S3
/// versions and markers in a [`Spool`], every other artifact parked in a
/// second one, so that a host holds in memory only its own part's
/// artifacts ([`Parked::held`]) however many hosts the fleet has.
#[derive(Debug)]
pub struct Parked {
    pub parked: Spool,
    pub spool: Spool,
}

impl Parked {
    /// Every artifact, in plan (id) order, for validation.
    pub fn in_id_order(&self) -> impl Iterator<Item = Result<std::borrow::Cow<'_, Artifact>>> {
        merge(
            self.parked.all().map(|a| a.map(std::borrow::Cow::Owned)),
            self.spool.all(),
        )
    }

    /// The parked artifacts of these locations, in plan order.
    pub fn held(&self, locations: &HashSet<u32>) -> Result<Vec<Artifact>> {
        self.parked.keep(locations.clone()).all().collect()
    }
}

impl<'de> Deserialize<'de> for Parked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let all = Spooled::deserialize_with(d, true)?;
        Ok(Parked {
            parked: all.parked.expect("parking"),
            spool: all.spool,
        })
    }
}

/// Merge the held artifacts and the spooled ones back into plan (id) order.
pub fn in_id_order<'a>(
    held: &'a [Artifact],
    spool: Items<'a>,
) -> impl Iterator<Item = Result<std::borrow::Cow<'a, Artifact>>> + 'a {
    merge(
        held.iter().map(|a| Ok(std::borrow::Cow::Borrowed(a))),
        spool,
    )
}

fn merge<'a>(
    held: impl Iterator<Item = Result<std::borrow::Cow<'a, Artifact>>> + 'a,
    spool: Items<'a>,
) -> impl Iterator<Item = Result<std::borrow::Cow<'a, Artifact>>> + 'a {
    let mut held = held.peekable();
    let mut spool = spool.peekable();
    std::iter::from_fn(move || {
        let take_held = match (held.peek(), spool.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Ok(h)), Some(Ok(s))) => h.id < s.id,
            (Some(Err(_)), _) => true,
            (Some(_), Some(Err(_))) => false,
        };
        Some(if take_held {
            held.next().expect("peeked")
        } else {
            spool.next().expect("peeked").map(std::borrow::Cow::Owned)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::S3Marker;

    fn marker(id: u32, location: u32, key: &str) -> Artifact {
        Artifact {
            id,
            location,
            item: Item::S3DeleteMarker(S3Marker {
                bucket: "b".into(),
                key: key.into(),
                version_id: format!("v{id}"),
                is_latest: true,
                last_modified: String::new(),
            }),
        }
    }

    fn ids<'a>(items: impl Iterator<Item = Result<std::borrow::Cow<'a, Artifact>>>) -> Vec<u32> {
        items.map(|a| a.unwrap().id).collect()
    }

    #[test]
    fn a_spool_reads_back_each_location_in_plan_order_and_knows_its_order() {
        let mut w = SpoolWriter::new().unwrap();
        for a in [
            marker(1, 1, "k/b"),
            marker(3, 1, "k/a"),
            marker(4, 2, "k/a"),
            marker(5, 2, "k/a"),
            marker(6, 2, "k/c"),
        ] {
            w.push(&a).unwrap();
        }
        let spool = w.finish().unwrap();
        assert!(!spool.key_ordered(1), "k/a after k/b");
        assert!(spool.key_ordered(2));
        assert!(spool.contains(3) && !spool.contains(2) && !spool.contains(7));
        assert_eq!(spool.count(2), (3, 0));
        let two: Vec<u32> = spool.location(2).map(|a| a.unwrap().id).collect();
        assert_eq!(two, [4, 5, 6]);
        // Two readers never share an offset.
        let mut a = spool.location(1);
        let mut b = spool.location(1);
        assert_eq!(a.next().unwrap().unwrap().id, 1);
        assert_eq!(b.next().unwrap().unwrap().id, 1);
        assert_eq!(a.next().unwrap().unwrap().id, 3);
        // The held artifacts merge back in id order; a part keeps its locations.
        let held = [marker(2, 1, "x")];
        assert_eq!(ids(in_id_order(&held, spool.all())), [1, 2, 3, 4, 5, 6]);
        let part = spool.keep([1].into_iter().collect());
        assert_eq!(ids(in_id_order(&held, part.all())), [1, 2, 3]);
        assert_eq!(part.count(2), (0, 0));
    }
}
