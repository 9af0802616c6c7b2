//! Purging an S3 location: re-identify every planned version, delete
//! versions and delete markers by version id with DeleteObjects (1000 keys a
//! request, several requests in flight, every entry of every answer
//! checked), abort planned multipart uploads, then prove absence: a complete
//! listing of the location holds none of them, HEAD by version id on a
//! random sample (or on each, `[s3] verify = "each"`) answers 404, and each
//! aborted upload answers NoSuchUpload. The proof is journaled and stated in
//! the certificate. Only then is an artifact "disposed". Versions under
//! legal hold or retention are "retained" and never attempted; a key that
//! gained versions since approval is "changed" and left alone.

use super::Ctx;
use crate::error::Result;
use crate::journal::{AbsenceProof, ArtifactState, Event, Outcome, OutcomeItem};
use crate::plan::{Artifact, Item, S3Location, S3Version};
use crate::progress::Phase;
use crate::s3::{DELETE_BATCH, S3, Scope, VerifyMode, describe, is_not_found, not_implemented};
use crate::util::joined;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use std::collections::{BTreeMap, HashMap, HashSet};

type Decided = Vec<OutcomeItem>;

/// How absence is proven: the mode and, in sample mode, the sample size.
pub type Proof = (VerifyMode, usize);

fn item(id: u32, outcome: Outcome, reason: impl Into<Option<String>>) -> OutcomeItem {
    OutcomeItem {
        id,
        outcome,
        reason: reason.into(),
    }
}

/// What a version listing shows for the planned keys: key → version id → ETag.
fn current(
    s3: &S3,
    loc: &S3Location,
    keys: &HashSet<&str>,
) -> Result<HashMap<String, HashMap<String, String>>> {
    let mut m: HashMap<String, HashMap<String, String>> = HashMap::new();
    s3.list_versions(&loc.bucket, &Scope::new(&loc.prefix), |l| {
        if keys.contains(l.key.as_str()) {
            m.entry(l.key).or_default().insert(l.version_id, l.etag);
        }
    })?;
    Ok(m)
}

fn current_uploads(
    s3: &S3,
    loc: &S3Location,
    keys: &HashSet<&str>,
) -> Result<HashSet<(String, String)>> {
    let mut set = HashSet::new();
    s3.list_uploads(&loc.bucket, &Scope::new(&loc.prefix), |u| {
        if keys.contains(u.key.as_str()) {
            set.insert((u.key, u.upload_id));
        }
    })?;
    Ok(set)
}

fn version_of(item: &Item) -> Option<(&str, &str)> {
    match item {
        Item::S3Version(v) => Some((&v.key, &v.version_id)),
        Item::S3DeleteMarker(m) => Some((&m.key, &m.version_id)),
        _ => None,
    }
}

/// Dispose of the planned artifacts of one S3 location: re-identify and
/// decide, purge, prove absence. Each step journals its outcomes before the
/// next begins.
pub fn location(
    ctx: &Ctx,
    s3: &S3,
    (index, loc): (u32, &S3Location),
    all: &[&Artifact],
    state: &BTreeMap<u32, ArtifactState>,
    proof: Proof,
) -> Result<()> {
    let todo: Vec<&Artifact> = all
        .iter()
        .copied()
        .filter(|a| state.get(&a.id).is_none_or(|s| s.outcome.is_none()))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let purge = Purge::new(ctx, s3, (index, loc), all, state, proof);
    if Scope::new(&loc.prefix).is_folder() {
        let (decided, abort, mut check) = purge.decide_and_delete(&todo)?;
        purge.journal(decided)?;
        check.extend(purge.purge(Vec::new(), abort)?);
        if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(crate::error::Error::Interrupted);
        }
        return purge.prove_absence(&check);
    }
    let plan = match purge.decide(&todo) {
        Ok(p) => p,
        Err(e) => return purge.fail_all(&todo, &format!("cannot re-identify: {e}")),
    };
    purge.journal(plan.decided)?;
    let mut check = plan.check;
    check.extend(purge.purge(plan.delete, plan.abort)?);
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(crate::error::Error::Interrupted);
    }
    purge.prove_absence(&check)
}

/// What [`Purge::decide`] found for each planned artifact.
struct Decision<'p> {
    /// Outcomes settled without touching anything (changed, retained).
    decided: Decided,
    /// Versions and delete markers to delete.
    delete: Vec<&'p Artifact>,
    /// Uploads to abort.
    abort: Vec<&'p Artifact>,
    /// Started by an earlier run and gone now: only their absence is proven.
    check: Vec<&'p Artifact>,
}

/// What the listing half of [`Purge::decide_and_delete`] settled itself.
struct Listed<'p> {
    decided: Decided,
    check: Vec<&'p Artifact>,
}

/// What [`Purge::decide_one`] found for one artifact.
enum One {
    Settled(OutcomeItem),
    Delete,
    Abort,
    Check,
}

/// One S3 location's purge: the plan's artifacts of it, looked up by id and
/// by key (buckets hold millions of versions: look up, never scan).
struct Purge<'p, 'c> {
    ctx: &'p Ctx<'c>,
    s3: &'p S3,
    /// The location's index in the plan.
    index: u32,
    loc: &'p S3Location,
    state: &'p BTreeMap<u32, ArtifactState>,
    proof: Proof,
    by_id: HashMap<u32, &'p Artifact>,
    /// Every version id the plan lists per key (done or not).
    planned: HashMap<&'p str, HashSet<&'p str>>,
}

impl<'p, 'c> Purge<'p, 'c> {
    fn new(
        ctx: &'p Ctx<'c>,
        s3: &'p S3,
        (index, loc): (u32, &'p S3Location),
        all: &'p [&'p Artifact],
        state: &'p BTreeMap<u32, ArtifactState>,
        proof: Proof,
    ) -> Self {
        let mut planned: HashMap<&str, HashSet<&str>> = HashMap::new();
        for a in all {
            if let Some((k, v)) = version_of(&a.item) {
                planned.entry(k).or_default().insert(v);
            }
        }
        Purge {
            ctx,
            s3,
            index,
            loc,
            state,
            proof,
            by_id: all.iter().map(|a| (a.id, *a)).collect(),
            planned,
        }
    }

    fn started(&self, id: u32) -> bool {
        self.state.get(&id).is_some_and(|s| s.started.is_some())
    }

    fn path_of(&self, id: u32) -> std::borrow::Cow<'p, str> {
        self.by_id
            .get(&id)
            .map(|a| a.item.path())
            .unwrap_or_default()
    }

    /// Journal outcomes (one flush for all) after warning about each.
    fn journal(&self, items: Decided) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        for d in &items {
            self.ctx.progress.warn(&format!(
                "{}: {} ({})",
                d.outcome,
                self.path_of(d.id),
                d.reason.clone().unwrap_or_default()
            ));
        }
        self.ctx.append(Event::Outcomes { items })
    }

    /// Re-identify every artifact still to do against a fresh listing and
    /// decide what happens to it. Touches nothing.
    fn decide(&self, todo: &[&'p Artifact]) -> Result<Decision<'p>> {
        let keys: HashSet<&str> = todo
            .iter()
            .filter_map(|a| a.item.s3_key().map(|k| k.1))
            .collect();
        let now = current(self.s3, self.loc, &keys)?;
        let uploads_now = current_uploads(self.s3, self.loc, &keys)?;
        let empty = HashMap::new();
        let now_secs = crate::sign::now_unix();
        let mut d = Decision {
            decided: Vec::new(),
            delete: Vec::new(),
            abort: Vec::new(),
            check: Vec::new(),
        };
        for a in todo {
            let (_, key) = a.item.s3_key().expect("S3 items");
            let versions = now.get(key).unwrap_or(&empty);
            match self.decide_one(a, versions, &uploads_now, now_secs) {
                One::Settled(i) => d.decided.push(i),
                One::Delete => d.delete.push(a),
                One::Abort => d.abort.push(a),
                One::Check => d.check.push(a),
            }
        }
        Ok(d)
    }

    /// What happens to one artifact, given every version the listing shows
    /// for its key (version id → ETag) and the uploads in progress.
    fn decide_one(
        &self,
        a: &'p Artifact,
        versions: &HashMap<String, String>,
        uploads_now: &HashSet<(String, String)>,
        now_secs: i64,
    ) -> One {
        let (_, key) = a.item.s3_key().expect("S3 items");
        let gone = |what: &str| {
            if self.started(a.id) {
                One::Check
            } else {
                One::Settled(item(a.id, Outcome::SkippedChanged, what.to_string()))
            }
        };
        let unplanned: Vec<&String> = versions
            .keys()
            .filter(|v| {
                !self
                    .planned
                    .get(key)
                    .is_some_and(|p| p.contains(v.as_str()))
            })
            .collect();
        match &a.item {
            Item::S3Version(_) | Item::S3DeleteMarker(_) if !unplanned.is_empty() => {
                One::Settled(item(
                    a.id,
                    Outcome::SkippedChanged,
                    format!(
                        "the key has {} version(s) created since approval, e.g. {}",
                        unplanned.len(),
                        unplanned[0]
                    ),
                ))
            }
            Item::S3Version(v) => match versions.get(&v.version_id) {
                Some(etag) if *etag != v.etag => One::Settled(item(
                    a.id,
                    Outcome::SkippedChanged,
                    format!("ETag {etag} differs from the approved {}", v.etag),
                )),
                Some(_) => match retained(v, now_secs) {
                    Some(why) => One::Settled(item(a.id, Outcome::Retained, why)),
                    None => One::Delete,
                },
                None => gone("no longer exists"),
            },
            Item::S3DeleteMarker(m) => match versions.get(&m.version_id) {
                Some(_) => One::Delete,
                None => gone("no longer exists"),
            },
            Item::S3Upload(u) => {
                if uploads_now.contains(&(u.key.clone(), u.upload_id.clone())) {
                    One::Abort
                } else {
                    gone("the upload no longer exists")
                }
            }
            _ => unreachable!("only S3 items reach the S3 disposer"),
        }
    }

    /// Journal intent, then delete versions and markers in DeleteObjects
    /// batches and abort uploads, with bounded concurrency. Every entry of
    /// every answer is checked; failures are journaled. Returns what must
    /// now be proven absent.
    fn purge(
        &self,
        delete: Vec<&'p Artifact>,
        abort: Vec<&'p Artifact>,
    ) -> Result<Vec<&'p Artifact>> {
        let (s3, loc, ctx) = (self.s3, self.loc, self.ctx);
        let ids: Vec<u32> = delete
            .iter()
            .chain(&abort)
            .filter(|a| !self.started(a.id))
            .map(|a| a.id)
            .collect();
        if !ids.is_empty() {
            ctx.append(Event::Started { ids })?;
        }
        let bytes: u64 = delete.iter().map(|a| a.item.size()).sum();
        let uri = format!("s3://{}/{}", loc.bucket, loc.prefix);
        ctx.progress.start(
            Phase::Purge(&uri),
            (delete.len() + abort.len()) as u64,
            bytes,
        );
        let mut check = Vec::new();
        let mut failed: Decided = Vec::new();
        let batches: Vec<Vec<&Artifact>> =
            delete.chunks(DELETE_BATCH).map(|c| c.to_vec()).collect();
        for (batch, r) in s3.bounded(batches, |batch| async move {
            // Only a store that knows no versions at all is asked by key
            // alone; anywhere else the null version is named by its id, so
            // a bucket that gained versioning since approval gets no delete
            // marker from decom.
            let unversioned = loc.facts.unsupported.iter().any(|u| u == "versioning");
            let r = delete_versions(s3, &loc.bucket, &batch, unversioned).await;
            (batch, r)
        }) {
            self.settle(batch, r, &mut failed, &mut check);
        }
        for (a, r) in s3.bounded(abort, |a| async move {
            let Item::S3Upload(u) = &a.item else {
                unreachable!("only uploads are aborted")
            };
            let r = s3
                .client()
                .abort_multipart_upload()
                .bucket(&loc.bucket)
                .key(&u.key)
                .upload_id(&u.upload_id)
                .send()
                .await;
            let r = match r {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(describe(&e)),
            };
            (a, r)
        }) {
            match r {
                Ok(()) => check.push(a),
                Err(why) => failed.push(item(
                    a.id,
                    Outcome::Failed,
                    format!("AbortMultipartUpload failed: {why}"),
                )),
            }
        }
        if !failed.is_empty() {
            for f in &failed {
                ctx.progress
                    .warn(&format!("failed: {}", f.reason.clone().unwrap_or_default()));
            }
            ctx.append(Event::Outcomes { items: failed })?;
        }
        ctx.progress.finish();
        Ok(check)
    }

    /// Read one DeleteObjects answer entry by entry: each planned version
    /// it reports deleted is to be proven absent; an `<Error>` entry, a
    /// missing entry or a failed request fails the version.
    fn settle(
        &self,
        batch: Vec<&'p Artifact>,
        r: Result<DeleteAnswer, String>,
        failed: &mut Decided,
        check: &mut Vec<&'p Artifact>,
    ) {
        let answer = match r {
            Err(why) => {
                failed.extend(
                    batch
                        .iter()
                        .map(|a| item(a.id, Outcome::Failed, why.clone())),
                );
                return;
            }
            Ok(answer) => answer,
        };
        for a in batch {
            let (k, v) = version_of(&a.item).expect("versions and markers only");
            let kv = (k.to_string(), v.to_string());
            match answer.errors.get(&kv) {
                Some(why) => failed.push(item(
                    a.id,
                    Outcome::Failed,
                    format!("DeleteObjects refused it: {why}"),
                )),
                None if !answer.deleted.contains(&kv) => failed.push(item(
                    a.id,
                    Outcome::Failed,
                    "DeleteObjects answered neither Deleted nor Error for it".to_string(),
                )),
                None => {
                    self.ctx.progress.bytes(a.item.size());
                    check.push(a);
                }
            }
        }
    }

    /// [`Purge::decide`] and the deletes of [`Purge::purge`] overlapped, for
    /// a folder (one listing, in key order), as `s5cmd rm` overlaps its
    /// listing and deletes: a key is decided once the listing has moved
    /// past it, and its versions go out in DeleteObjects batches (bounded
    /// concurrency) while the listing goes on. Each batch's started record
    /// is journaled before the batch is sent. Returns the outcomes settled,
    /// the uploads to abort and what must now be proven absent.
    #[allow(clippy::type_complexity)]
    fn decide_and_delete(
        &self,
        todo: &[&'p Artifact],
    ) -> Result<(Decided, Vec<&'p Artifact>, Vec<&'p Artifact>)> {
        let (s3, loc, ctx) = (self.s3, self.loc, self.ctx);
        let keys: HashSet<&str> = todo
            .iter()
            .filter_map(|a| a.item.s3_key().map(|k| k.1))
            .collect();
        let now_secs = crate::sign::now_unix();
        let mut decided: Decided = Vec::new();
        let mut abort = Vec::new();
        let mut check = Vec::new();
        let (mut versions, uploads): (Vec<&'p Artifact>, Vec<&'p Artifact>) = todo
            .iter()
            .copied()
            .partition(|a| version_of(&a.item).is_some());
        // Stable: the plan's order within a key.
        versions.sort_by(|a, b| {
            version_of(&a.item)
                .unwrap()
                .0
                .cmp(version_of(&b.item).unwrap().0)
        });
        let bytes: u64 = versions.iter().map(|a| a.item.size()).sum();
        let uri = format!("s3://{}/{}", loc.bucket, loc.prefix);
        ctx.progress
            .start(Phase::Purge(&uri), versions.len() as u64, bytes);
        let unversioned = loc.facts.unsupported.iter().any(|u| u == "versioning");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<&'p Artifact>>();
        // Three at once: the version listing (deciding as it goes), the
        // deletes it feeds, and the upload listing (versions never consult
        // it), so no round trip waits on another before the first delete.
        let no_uploads = HashSet::new();
        let (listed, answers, uploads_now) = std::thread::scope(|scope| {
            let uploads_now =
                (!uploads.is_empty()).then(|| scope.spawn(|| current_uploads(s3, loc, &keys)));
            let lister =
                scope.spawn(|| self.list_and_decide(&versions, &keys, &no_uploads, now_secs, tx));
            let answers = s3.bounded_channel(rx, |batch| async move {
                let r = delete_versions(s3, &loc.bucket, &batch, unversioned).await;
                (batch, r)
            });
            (
                joined(lister),
                answers,
                uploads_now.map_or_else(|| Ok(HashSet::new()), joined),
            )
        });
        match uploads_now {
            Ok(now) => {
                for a in uploads {
                    match self.decide_one(a, &HashMap::new(), &now, now_secs) {
                        One::Settled(i) => decided.push(i),
                        One::Abort => abort.push(a),
                        One::Check => check.push(a),
                        One::Delete => unreachable!("uploads are aborted, not deleted"),
                    }
                }
            }
            Err(e) => {
                let why = format!("cannot re-identify: {e}");
                decided.extend(
                    uploads
                        .iter()
                        .map(|a| item(a.id, Outcome::Failed, why.clone())),
                );
            }
        }
        let mut failed: Decided = Vec::new();
        for (batch, r) in answers {
            self.settle(batch, r, &mut failed, &mut check);
        }
        ctx.progress.finish();
        let listed = listed?;
        decided.extend(listed.decided);
        check.extend(listed.check);
        decided.extend(failed);
        Ok((decided, abort, check))
    }

    /// The listing half of [`Purge::decide_and_delete`]: decide each version
    /// once the listing is past its key and send full batches to `tx`. A
    /// listing that fails part-way fails the versions not yet decided.
    fn list_and_decide(
        &self,
        versions: &[&'p Artifact],
        keys: &HashSet<&str>,
        uploads_now: &HashSet<(String, String)>,
        now_secs: i64,
        tx: tokio::sync::mpsc::UnboundedSender<Vec<&'p Artifact>>,
    ) -> Result<Listed<'p>> {
        let mut out = Listed {
            decided: Vec::new(),
            check: Vec::new(),
        };
        let mut batch: Vec<&'p Artifact> = Vec::new();
        let mut seen: HashMap<String, HashMap<String, String>> = HashMap::new();
        let mut pos = 0usize;
        let empty = HashMap::new();
        let mut journal_error: Option<crate::error::Error> = None;
        // Decide every version whose key sorts before `upto`, or up to and
        // including it when `through` (all: None).
        let mut decide_upto = |upto: Option<&str>,
                               through: bool,
                               seen: &mut HashMap<String, HashMap<String, String>>,
                               out: &mut Listed<'p>,
                               batch: &mut Vec<&'p Artifact>|
         -> Result<()> {
            while let Some(a) = versions.get(pos) {
                let key = version_of(&a.item).expect("versions only").0;
                if upto.is_some_and(|u| key > u || (key == u && !through)) {
                    break;
                }
                let v = seen.get(key).unwrap_or(&empty);
                match self.decide_one(a, v, uploads_now, now_secs) {
                    One::Settled(i) => out.decided.push(i),
                    One::Check => out.check.push(a),
                    One::Delete => batch.push(a),
                    One::Abort => unreachable!("versions are deleted, not aborted"),
                }
                pos += 1;
                if versions
                    .get(pos)
                    .is_none_or(|b| version_of(&b.item).expect("versions only").0 != key)
                {
                    seen.remove(key);
                }
                if batch.len() == DELETE_BATCH {
                    self.send(std::mem::take(batch), &tx)?;
                }
            }
            Ok(())
        };
        // A key is complete once a page ends after it (one key's versions
        // may continue on the next page, and markers follow versions). A
        // store without versions lists each key once, so a page's last key
        // is complete when the page ends, and its batch goes out then.
        let mut page_max: Option<String> = None;
        // Deciding as the listing goes relies on S3's key order (binary
        // UTF-8, page after page). A store that breaks it stops the
        // decisions: what is undecided then fails, never guessed.
        let mut decided_upto: Option<(String, bool)> = None;
        let mut out_of_order: Option<String> = None;
        let scope = Scope::new(&self.loc.prefix);
        let listing = self
            .s3
            .list_versions_by_page(&self.loc.bucket, &scope, |l| {
                if journal_error.is_some() || out_of_order.is_some() {
                    return;
                }
                match l {
                    Some(l) => {
                        if decided_upto
                            .as_ref()
                            .is_some_and(|(d, through)| l.key < *d || (*through && l.key == *d))
                        {
                            out_of_order = Some(l.key);
                            return;
                        }
                        if page_max.as_ref().is_none_or(|m| *m < l.key) {
                            page_max = Some(l.key.clone());
                        }
                        if keys.contains(l.key.as_str()) {
                            seen.entry(l.key).or_default().insert(l.version_id, l.etag);
                        }
                    }
                    None => {
                        if let Some(m) = page_max.take() {
                            let through = self.s3.without_versions();
                            if let Err(e) =
                                decide_upto(Some(&m), through, &mut seen, &mut out, &mut batch)
                            {
                                journal_error = Some(e);
                            }
                            decided_upto = Some((m, through));
                        }
                    }
                }
            });
        if let Some(e) = journal_error {
            return Err(e);
        }
        let listing = match out_of_order {
            Some(k) => Err(crate::error::Error::input(format!(
                "the listing is not in key order ({k:?} came after a later key); nothing more is decided from it"
            ))),
            None => listing,
        };
        match listing {
            Ok(_) => decide_upto(None, true, &mut seen, &mut out, &mut batch)?,
            Err(e) => {
                // Sent batches stand (their answers are read); the rest
                // cannot be re-identified.
                let why = format!("cannot re-identify: {e}");
                out.decided.extend(
                    versions[pos..]
                        .iter()
                        .map(|a| item(a.id, Outcome::Failed, why.clone())),
                );
            }
        }
        if !batch.is_empty() {
            self.send(batch, &tx)?;
        }
        Ok(out)
    }

    /// Journal a batch as started (before anything of it is deleted), then
    /// hand it to the deleter.
    fn send(
        &self,
        batch: Vec<&'p Artifact>,
        tx: &tokio::sync::mpsc::UnboundedSender<Vec<&'p Artifact>>,
    ) -> Result<()> {
        let ids: Vec<u32> = batch
            .iter()
            .filter(|a| !self.started(a.id))
            .map(|a| a.id)
            .collect();
        if !ids.is_empty() {
            self.ctx.append(Event::Started { ids })?;
        }
        // The deleter only stops once every sender is gone.
        let _ = tx.send(batch);
        Ok(())
    }

    /// Prove that every artifact in `check` is gone, and journal how: a
    /// complete listing of the location must hold none of the planned
    /// version ids, delete markers or uploads (S3 lists strongly
    /// consistently after a delete); and HEAD *with the version id* on a
    /// random sample of the purged versions (every one in `each` mode) must
    /// answer 404. A HEAD that finds a version the listing calls gone means
    /// the listing cannot be trusted: every artifact of the location that
    /// only the listing vouched for is then not proven. Each aborted upload
    /// must answer ListParts with NoSuchUpload.
    fn prove_absence(&self, check: &[&'p Artifact]) -> Result<()> {
        if check.is_empty() {
            return Ok(());
        }
        let (s3, loc, ctx) = (self.s3, self.loc, self.ctx);
        let scope = Scope::new(&loc.prefix);
        // Only what concerns the artifacts to prove is kept: a location can
        // hold far more versions than the plan disposes of.
        let keys: HashSet<&str> = check
            .iter()
            .filter_map(|a| a.item.s3_key().map(|k| k.1))
            .collect();
        // The sample is drawn from every purged object version, before the
        // listing, so that its HEADs can run beside the listing: every
        // request starts after every delete and abort was answered, and
        // none depends on another. (A sampled version the listing still
        // shows fails as listed; its HEAD then contradicts nothing.)
        let purged: Vec<&S3Version> = check
            .iter()
            .filter_map(|a| match &a.item {
                Item::S3Version(v) => Some(v),
                _ => None,
            })
            .collect();
        let sample: Vec<&S3Version> = match self.proof.0 {
            VerifyMode::Each => purged,
            VerifyMode::Sample => {
                use rand::seq::SliceRandom;
                purged
                    .choose_multiple(&mut rand::thread_rng(), self.proof.1)
                    .copied()
                    .collect()
            }
        };
        let head_one = |v: &'p S3Version| async move {
            (
                (v.key.as_str(), v.version_id.as_str()),
                head_version(s3, &loc.bucket, v).await,
            )
        };
        let mut listed: HashSet<(String, String)> = HashSet::new();
        let mut uploads_listed: HashSet<(String, String)> = HashSet::new();
        let any_upload = check.iter().any(|a| matches!(a.item, Item::S3Upload(_)));
        let listings = 1 + usize::from(any_upload);
        let (versions_listing, uploads_listing, heads_beside) = std::thread::scope(|threads| {
            let uploads = any_upload.then(|| {
                threads.spawn(|| {
                    s3.list_uploads(&loc.bucket, &scope, |u| {
                        if keys.contains(u.key.as_str()) {
                            uploads_listed.insert((u.key, u.upload_id));
                        }
                    })
                })
            });
            // The HEADs take what the concurrency bound leaves the listings.
            let heads = s3.room_beside(listings).map(|n| {
                let sample = sample.clone();
                threads.spawn(move || s3.bounded_at(n, sample, head_one))
            });
            let versions = s3.list_versions(&loc.bucket, &scope, |l| {
                if keys.contains(l.key.as_str()) {
                    listed.insert((l.key, l.version_id));
                }
            });
            let uploads = uploads.map_or(Ok(0), joined);
            (versions, uploads, heads.map(joined))
        });
        let mut head: HashMap<(&str, &str), Result<(), HeadError>> = heads_beside
            .unwrap_or_else(|| s3.bounded(sample.clone(), head_one))
            .into_iter()
            .collect();
        // A HEAD that got no answer (a transport error or a 5xx after every
        // retry) is asked once more, after the others: it says nothing yet
        // about the listing, and a proof should not fail on one bad
        // connection when the next would answer.
        let unanswered: Vec<&S3Version> = sample
            .into_iter()
            .filter(|v| {
                matches!(
                    head.get(&(v.key.as_str(), v.version_id.as_str())),
                    Some(Err(HeadError::Unanswered(_)))
                )
            })
            .collect();
        if !unanswered.is_empty() {
            head.extend(s3.bounded(unanswered, head_one));
        }
        let head: HashMap<(&str, &str), Result<(), String>> = head
            .into_iter()
            .map(|(k, r)| (k, r.map_err(|e| e.to_string())))
            .collect();
        let listing = versions_listing.and_then(|pages| Ok(pages + uploads_listing?));
        let pages = match listing {
            Ok(p) => p,
            Err(e) => return self.fail_all(check, &format!("absence not proven: {e}")),
        };
        let is_listed = |a: &Artifact| match &a.item {
            Item::S3Upload(u) => uploads_listed.contains(&(u.key.clone(), u.upload_id.clone())),
            item => {
                let (k, v) = version_of(item).expect("versions and markers");
                listed.contains(&(k.to_string(), v.to_string()))
            }
        };
        // A HEAD contradicts the listing only where the listing calls the
        // version gone.
        let contradicting: Vec<String> = head
            .iter()
            .filter(|((k, v), r)| r.is_err() && !listed.contains(&(k.to_string(), v.to_string())))
            .map(|((k, v), r)| format!("{k}?versionId={v}: {}", r.as_ref().unwrap_err()))
            .collect();
        let contradicted = contradicting.len() as u64;
        let contradiction = contradicting.into_iter().next();
        let mut proven: Decided = Vec::new();
        let mut uploads = 0u64;
        for a in check {
            let verdict = if is_listed(a) {
                Err(match &a.item {
                    Item::S3Upload(_) => "the upload is still listed".to_string(),
                    _ => "the version is still listed".to_string(),
                })
            } else {
                match &a.item {
                    Item::S3Upload(u) => {
                        uploads += 1;
                        upload_gone(s3, &loc.bucket, &u.key, &u.upload_id)
                    }
                    item => {
                        let (k, v) = version_of(item).expect("versions and markers");
                        match (head.get(&(k, v)), &contradiction) {
                            (Some(r), _) => r.clone(),
                            (None, Some(c)) => Err(format!(
                                "the listing of the location cannot be trusted: a sampled HEAD did not answer 404 ({c})"
                            )),
                            (None, None) => Ok(()),
                        }
                    }
                }
            };
            proven.push(match verdict {
                Ok(()) => item(a.id, Outcome::Disposed, None),
                Err(why) => item(a.id, Outcome::Failed, format!("absence not proven: {why}")),
            });
        }
        ctx.append(Event::AbsenceProof(AbsenceProof {
            location: self.index,
            mode: self.proof.0,
            versions: (check.len() as u64).saturating_sub(uploads),
            listing_pages: pages,
            heads: head.len() as u64,
            contradicted,
            uploads,
        }))?;
        for p in &proven {
            let path = self.path_of(p.id);
            match &p.reason {
                None => ctx.progress.item(&format!("disposed: {path}")),
                Some(r) => ctx.progress.warn(&format!("failed: {path} ({r})")),
            }
        }
        ctx.append(Event::Outcomes { items: proven })
    }

    /// Journal every artifact in `arts` as failed for `why`.
    fn fail_all(&self, arts: &[&'p Artifact], why: &str) -> Result<()> {
        let items = arts
            .iter()
            .map(|a| item(a.id, Outcome::Failed, why.to_string()))
            .collect();
        self.ctx.append(Event::Outcomes { items })
    }
}

/// HEAD one purged version by its id: only "not found" proves it gone.
/// The null version is HEADed without a version id (moto rejects
/// `versionId=null`; for a purged key S3 answers both the same).
async fn head_version(s3: &S3, bucket: &str, v: &S3Version) -> Result<(), HeadError> {
    let version = (v.version_id != "null").then(|| v.version_id.clone());
    let r = s3
        .client()
        .head_object()
        .bucket(bucket)
        .key(&v.key)
        .set_version_id(version)
        .send()
        .await;
    match r {
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(HeadError::Unanswered(describe(&e))),
        Ok(_) => Err(HeadError::Found),
    }
}

/// Why a HEAD of a purged version did not prove it gone.
#[derive(Debug, Clone)]
enum HeadError {
    /// The store still serves the version.
    Found,
    /// No answer after every retry (transport error, 5xx, refusal).
    Unanswered(String),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Found => f.write_str("HEAD still finds the version"),
            HeadError::Unanswered(e) => write!(f, "HEAD gave {e}"),
        }
    }
}

/// Why a version must be kept (legal hold, retention still in force), if so.
fn retained(v: &crate::plan::S3Version, now_secs: i64) -> Option<String> {
    let until = v
        .retention
        .as_ref()
        .filter(|r| crate::sign::unix(&r.until).is_ok_and(|t| t > now_secs));
    if v.legal_hold {
        Some("legal hold".to_string())
    } else {
        until.map(|r| format!("retention until {}", r.until))
    }
}

/// What a DeleteObjects answer said, entry by entry, keyed by (key, version id).
struct DeleteAnswer {
    deleted: HashSet<(String, String)>,
    errors: HashMap<(String, String), String>,
}

/// One DeleteObjects request by version id (not quiet, so that every entry
/// is answered). Returns the answer, or why the whole request failed. On a
/// store without versioning (`unversioned`: Garage knows no version ids)
/// each object is named by its key alone and answered by key.
async fn delete_versions(
    s3: &S3,
    bucket: &str,
    batch: &[&Artifact],
    unversioned: bool,
) -> Result<DeleteAnswer, String> {
    let objects: Vec<ObjectIdentifier> = batch
        .iter()
        .filter_map(|a| version_of(&a.item))
        .map(|(k, v)| {
            let id = (!(unversioned && v == "null")).then(|| v.to_string());
            ObjectIdentifier::builder()
                .key(k)
                .set_version_id(id)
                .build()
                .expect("key is set")
        })
        .collect();
    let delete = Delete::builder()
        .set_objects(Some(objects))
        .quiet(false)
        .build()
        .expect("objects are set");
    let out = match s3
        .client()
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if not_implemented(&e) => {
            return Ok(delete_one_by_one(s3, bucket, batch, unversioned).await);
        }
        Err(e) => return Err(format!("DeleteObjects failed: {}", describe(&e))),
    };
    // Entries named by key alone are answered by key: whatever version id
    // a store reports for them (Garage reports its internal one) stands for
    // the null version asked for.
    let entry = |k: Option<&str>, v: Option<&str>| {
        let v = if unversioned { None } else { v };
        (k.unwrap_or("").to_string(), v.unwrap_or("null").to_string())
    };
    Ok(DeleteAnswer {
        deleted: out
            .deleted()
            .iter()
            .map(|d| entry(d.key(), d.version_id()))
            .collect(),
        errors: out
            .errors()
            .iter()
            .map(|e| {
                (
                    entry(e.key(), e.version_id()),
                    format!(
                        "{}: {}",
                        e.code().unwrap_or("Error"),
                        e.message().unwrap_or("")
                    ),
                )
            })
            .collect(),
    })
}

/// For a store without the batch call: DeleteObject for each entry, a few
/// at a time, answered the same way as DeleteObjects.
async fn delete_one_by_one(
    s3: &S3,
    bucket: &str,
    batch: &[&Artifact],
    unversioned: bool,
) -> DeleteAnswer {
    use futures_util::StreamExt;
    let results: Vec<((String, String), Result<(), String>)> =
        futures_util::stream::iter(batch.iter().filter_map(|a| version_of(&a.item)))
            .map(|(k, v)| async move {
                let id = (!(unversioned && v == "null")).then(|| v.to_string());
                let r = s3
                    .client()
                    .delete_object()
                    .bucket(bucket)
                    .key(k)
                    .set_version_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("DeleteObject: {}", describe(&e)));
                ((k.to_string(), v.to_string()), r)
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let mut answer = DeleteAnswer {
        deleted: HashSet::new(),
        errors: HashMap::new(),
    };
    for (kv, r) in results {
        match r {
            Ok(()) => {
                answer.deleted.insert(kv);
            }
            Err(why) => {
                answer.errors.insert(kv, why);
            }
        }
    }
    answer
}

/// ListParts of an aborted upload must answer NoSuchUpload.
fn upload_gone(s3: &S3, bucket: &str, key: &str, upload_id: &str) -> Result<(), String> {
    match s3.block_on(
        s3.client()
            .list_parts()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send(),
    ) {
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(format!("ListParts gave {}", describe(&e))),
        Ok(_) => Err("ListParts still finds the upload".to_string()),
    }
}
