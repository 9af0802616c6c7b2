//! The execution journal: append-only JSON Lines, one record per step, each
//! flushed to disk (fdatasync) before the step is reported. It is the single
//! source of truth for what happened: resume replays it, and the certificate
//! is built from it, never from memory.
//!
//! A torn last line (crash mid-write) is tolerated and cut off on resume; a
//! malformed line anywhere else is an error. The journal file is locked
//! (flock) for the whole run, so two executes of the same plan cannot run at
//! once.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The outcome of one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Destroyed and verified (read-back and absence proof).
    Disposed,
    /// Something went wrong; the artifact may still exist.
    Failed,
    /// Not touched: it differs from what the custodian approved.
    SkippedChanged,
    /// Not touched: legal hold or retention forbids deletion.
    Retained,
    /// Handed to S3 Lifecycle, which has not finished yet: a later
    /// `execute --resume` checks again.
    Pending,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Disposed => "disposed",
            Outcome::Failed => "failed",
            Outcome::SkippedChanged => "skipped: changed since approval",
            Outcome::Retained => "retained",
            Outcome::Pending => "pending",
        })
    }
}

/// How a read-back reached the data on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadVia {
    /// O_DIRECT: the page cache was bypassed.
    Direct,
    /// The filesystem refused O_DIRECT: fsync, the file's cached pages
    /// dropped (posix_fadvise DONTNEED), then read through the cache.
    CacheDropped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Event {
    RunStarted {
        plan_sha256: String,
        operator: String,
        operator_fingerprint: String,
        resume: bool,
    },
    ArtifactStarted {
        id: u32,
    },
    /// One overwrite pass written over the whole file and fsynced.
    Pass {
        id: u32,
        pass: u32,
        pattern: String,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        written_sha256: Option<String>,
    },
    /// The pass was read back from the device; `ok` says whether it matched.
    ReadBack {
        id: u32,
        pass: u32,
        written_sha256: String,
        readback_sha256: String,
        ok: bool,
        /// How the data was read (absent in journals from before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<ReadVia>,
    },
    /// Written before the rename it announces (so resume can find the file).
    Renaming {
        id: u32,
        from: String,
        to: String,
    },
    Removed {
        id: u32,
    },
    Outcome {
        id: u32,
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Several artifacts started at once (an S3 batch).
    Started {
        ids: Vec<u32>,
    },
    /// Outcomes of several artifacts (an S3 batch, a batch of local files),
    /// one flush for all.
    Outcomes {
        items: Vec<OutcomeItem>,
    },
    RunFinished {
        complete: bool,
    },
    /// decom's lifecycle rules were merged into the bucket's configuration.
    LifecycleInstalled {
        id: u32,
        rules: Vec<String>,
    },
    /// decom's lifecycle rules were removed again (the folder was empty).
    LifecycleRemoved {
        id: u32,
        rules: Vec<String>,
    },
    /// How the absence of an S3 location's purged artifacts was proven,
    /// journaled with (before) their outcomes: the certificate states it.
    AbsenceProof(AbsenceProof),
}

/// The absence proof of one S3 location in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbsenceProof {
    pub location: u32,
    pub mode: crate::s3::VerifyMode,
    /// Versions and delete markers whose absence was to be proven.
    pub versions: u64,
    /// Pages of the complete version listing of the location.
    pub listing_pages: u64,
    /// Versions HEADed by version id (the sample, or every one).
    pub heads: u64,
    /// HEADs that contradicted the listing (the version still exists).
    pub contradicted: u64,
    /// Aborted uploads checked with ListParts.
    pub uploads: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeItem {
    pub id: u32,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

/// An open, locked journal.
pub struct Journal {
    file: File,
    path: PathBuf,
    seq: u64,
    /// Bytes of whole records in the file; a failed append is cut back to it.
    good_len: u64,
    /// Set by a failed append: no record may follow a write whose fate is
    /// unknown, so every later append fails too.
    broken: bool,
    faults: Faults,
}

/// Fault hooks for the crash and failure tests, passed in from the edge (the
/// CLI reads them from the environment; the library never does). They can
/// only make a run stop earlier, never make it do more.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Abort the process (like `kill -9`) right after the journal holds this
    /// many records.
    pub abort_after_records: Option<u64>,
    /// Fail every append once the journal holds this many records, as a full
    /// disk would.
    pub fail_after_records: Option<u64>,
}

impl Journal {
    /// Open (or create) the journal at `path` for the plan with `plan_sha256`.
    /// Returns the records already in it.
    pub fn open(
        path: &Path,
        plan_sha256: &str,
        resume: bool,
        faults: Faults,
    ) -> Result<(Journal, Vec<Record>)> {
        let exists = path.symlink_metadata().is_ok();
        if exists && !resume {
            return Err(Error::refused(format!(
                "{}: a journal for this plan already exists (an earlier run); use --resume to continue it",
                path.display()
            )));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .custom_flags_nofollow()
            .open(path)
            .at(path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Error::refused(format!(
                    "{}: another decom execute of this plan is running (the journal is locked)",
                    path.display()
                )));
            }
            Err(e) => return Err(Error::io(path, e.into())),
        }
        let mut text = Vec::new();
        file.seek(SeekFrom::Start(0)).at(path)?;
        file.read_to_end(&mut text).at(path)?;
        let (records, good_len) = parse(&text, path)?;
        if (good_len as usize) < text.len() {
            // A torn last line from a crash: cut it off before appending.
            file.set_len(good_len).at(path)?;
            file.sync_all().at(path)?;
        }
        if let Some(first) = records.first() {
            match &first.event {
                Event::RunStarted { plan_sha256: p, .. } if p == plan_sha256 => {}
                _ => {
                    return Err(Error::refused(format!(
                        "{}: this journal belongs to another plan",
                        path.display()
                    )));
                }
            }
        }
        let seq = records.last().map_or(0, |r| r.seq);
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
                seq,
                good_len,
                broken: false,
                faults,
            },
            records,
        ))
    }

    /// Append one record and flush it to disk before returning.
    /// A failed append leaves the journal as it was before it (a torn
    /// line is cut off where possible, and at the next open in any case) and
    /// refuses every later append.
    pub fn append(&mut self, event: Event) -> Result<()> {
        self.append_all(vec![event])
    }

    /// Append several records with one flush (group commit): all of them
    /// are on disk when this returns. Callers group only records whose
    /// steps are already durable, and act on none of them before this
    /// returns, so the journal never claims more than happened.
    pub fn append_all(&mut self, events: Vec<Event>) -> Result<()> {
        if self.broken {
            return Err(Error::io(
                &self.path,
                std::io::Error::other("an earlier journal write failed; nothing more is recorded"),
            ));
        }
        if events.is_empty() {
            return Ok(());
        }
        // The test hooks cut the group where a single append would have
        // stopped: the records before the point are written and flushed.
        let fail_at = self.faults.fail_after_records;
        let abort_at = self.faults.abort_after_records;
        let mut text = Vec::new();
        let mut lines = 0u64;
        let mut fail = false;
        let mut abort = false;
        for event in events {
            let seq = self.seq + lines + 1;
            if fail_at.is_some_and(|n| seq > n) {
                fail = true;
                break;
            }
            let rec = Record {
                seq,
                time: crate::util::now_rfc3339(),
                event,
            };
            serde_json::to_writer(&mut text, &rec).expect("journal records serialize");
            text.push(b'\n');
            lines += 1;
            if abort_at == Some(seq) {
                abort = true;
                break;
            }
        }
        let written = self
            .file
            .write_all(&text)
            .and_then(|()| self.file.sync_data())
            .and_then(|()| {
                if fail {
                    Err(std::io::Error::from_raw_os_error(
                        rustix::io::Errno::NOSPC.raw_os_error(),
                    ))
                } else {
                    Ok(())
                }
            });
        if let Err(e) = written {
            self.broken = true;
            if !fail {
                // Best effort: the next open cuts a torn line off anyway.
                let _ = self.file.set_len(self.good_len);
            } else {
                self.seq += lines;
                self.good_len += text.len() as u64;
            }
            return Err(Error::io(&self.path, e));
        }
        self.seq += lines;
        self.good_len += text.len() as u64;
        if abort {
            std::process::abort();
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
    }
}

/// Parse journal bytes. Returns the records and the length of the valid
/// prefix (a torn last line is not part of it).
pub fn parse(text: &[u8], path: &Path) -> Result<(Vec<Record>, u64)> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut lines = text.split_inclusive(|b| *b == b'\n').peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        n += 1;
        let last = lines.peek().is_none();
        let complete = line.ends_with(b"\n");
        match serde_json::from_slice::<Record>(line) {
            Ok(r) if complete => {
                if r.seq != records.len() as u64 + 1 {
                    return Err(Error::input(format!(
                        "{}:{n}: journal sequence broken",
                        path.display()
                    )));
                }
                records.push(r);
                offset += line.len();
            }
            _ if last => break, // torn final line
            Err(e) => {
                return Err(Error::input(format!(
                    "{}:{n}: corrupt journal line: {e}",
                    path.display()
                )));
            }
            Ok(_) => unreachable!("only the last line can lack a newline"),
        }
    }
    Ok((records, offset as u64))
}

/// Load a journal read-only (for verify and show).
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read(path).at(path)?;
    Ok(parse(&text, path)?.0)
}

/// What the journal says about one artifact.
#[derive(Debug, Clone, Default)]
pub struct ArtifactState {
    pub started: Option<String>,
    pub passes: Vec<PassDone>,
    pub readbacks: Vec<ReadBackDone>,
    pub renames: Vec<(String, String)>,
    pub removed: bool,
    pub outcome: Option<(Outcome, Option<String>, String)>,
}

#[derive(Debug, Clone)]
pub struct PassDone {
    pub pass: u32,
    pub pattern: String,
    pub written_sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReadBackDone {
    pub pass: u32,
    pub written_sha256: String,
    pub readback_sha256: String,
    pub ok: bool,
    pub via: Option<ReadVia>,
}

impl ArtifactState {
    /// Passes done in a row from the first (a resumed run continues after them).
    pub fn passes_done(&self) -> u32 {
        let mut n = 0;
        for p in &self.passes {
            if p.pass == n + 1 {
                n += 1;
            } else if p.pass <= n {
                continue;
            } else {
                break;
            }
        }
        n
    }

    /// The latest read-back of pass `pass`, if any.
    pub fn readback(&self, pass: u32) -> Option<&ReadBackDone> {
        self.readbacks.iter().rev().find(|r| r.pass == pass)
    }

    pub fn written(&self, pass: u32) -> Option<&PassDone> {
        self.passes.iter().rev().find(|p| p.pass == pass)
    }
}

/// Replay records into per-artifact state. A resumed run that redoes a pass
/// appends new records; later records win.
pub fn replay(records: &[Record]) -> BTreeMap<u32, ArtifactState> {
    let mut m: BTreeMap<u32, ArtifactState> = BTreeMap::new();
    for r in records {
        match &r.event {
            Event::ArtifactStarted { id } => {
                let s = m.entry(*id).or_default();
                s.started.get_or_insert_with(|| r.time.clone());
            }
            Event::Pass {
                id,
                pass,
                pattern,
                written_sha256,
                ..
            } => {
                let s = m.entry(*id).or_default();
                // A pass redone after a crash invalidates what followed it.
                s.passes.retain(|p| p.pass < *pass);
                s.readbacks.retain(|p| p.pass < *pass);
                s.passes.push(PassDone {
                    pass: *pass,
                    pattern: pattern.clone(),
                    written_sha256: written_sha256.clone(),
                });
            }
            Event::ReadBack {
                id,
                pass,
                written_sha256,
                readback_sha256,
                ok,
                via,
            } => {
                m.entry(*id).or_default().readbacks.push(ReadBackDone {
                    pass: *pass,
                    written_sha256: written_sha256.clone(),
                    readback_sha256: readback_sha256.clone(),
                    ok: *ok,
                    via: *via,
                });
            }
            Event::Renaming { id, from, to } => m
                .entry(*id)
                .or_default()
                .renames
                .push((from.clone(), to.clone())),
            Event::Removed { id } => m.entry(*id).or_default().removed = true,
            Event::Outcome {
                id,
                outcome,
                reason,
            } => {
                m.entry(*id).or_default().outcome =
                    Some((*outcome, reason.clone(), r.time.clone()));
            }
            Event::Started { ids } => {
                for id in ids {
                    m.entry(*id)
                        .or_default()
                        .started
                        .get_or_insert_with(|| r.time.clone());
                }
            }
            Event::Outcomes { items } => {
                for i in items {
                    m.entry(i.id).or_default().outcome =
                        Some((i.outcome, i.reason.clone(), r.time.clone()));
                }
            }
            Event::RunStarted { .. }
            | Event::RunFinished { .. }
            | Event::AbsenceProof(_)
            | Event::LifecycleInstalled { .. }
            | Event::LifecycleRemoved { .. } => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, event: Event) -> String {
        let mut s = serde_json::to_string(&Record {
            seq,
            time: "t".into(),
            event,
        })
        .unwrap();
        s.push('\n');
        s
    }

    #[test]
    fn torn_last_line_is_tolerated_and_cut() {
        let mut text = rec(1, Event::ArtifactStarted { id: 1 });
        text.push_str(&rec(2, Event::Removed { id: 1 }));
        let good = text.len() as u64;
        text.push_str("{\"seq\":3,\"time\":\"t\",\"type\":\"remo");
        let (r, len) = parse(text.as_bytes(), Path::new("j")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(len, good);
    }

    #[test]
    fn corrupt_middle_line_is_an_error() {
        let mut text = rec(1, Event::ArtifactStarted { id: 1 });
        text.push_str("garbage\n");
        text.push_str(&rec(2, Event::Removed { id: 1 }));
        assert!(parse(text.as_bytes(), Path::new("j")).is_err());
    }

    #[test]
    fn redone_pass_invalidates_later_records() {
        let recs: Vec<Record> = [
            Event::Pass {
                id: 1,
                pass: 1,
                pattern: "zero".into(),
                bytes: 1,
                written_sha256: None,
            },
            Event::Pass {
                id: 1,
                pass: 2,
                pattern: "random".into(),
                bytes: 1,
                written_sha256: Some("a".into()),
            },
            Event::Pass {
                id: 1,
                pass: 1,
                pattern: "zero".into(),
                bytes: 1,
                written_sha256: None,
            },
        ]
        .into_iter()
        .enumerate()
        .map(|(i, e)| Record {
            seq: i as u64 + 1,
            time: "t".into(),
            event: e,
        })
        .collect();
        let s = &replay(&recs)[&1];
        assert_eq!(s.passes_done(), 1);
    }
}
