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
//!
//! A location can hold millions of versions, so none of this holds them:
//! the plan's versions and markers are read from the approved plan's
//! [`Spool`] in key order and walked beside each listing of the location
//! ([`Beside`]), a page at a time; outcomes are journaled in chunks as they
//! are settled; what is left to prove is one bit per artifact ([`Marks`]).

use crate::error::{Error, Result};
use crate::journal::{AbsenceProof, Event, Outcome, OutcomeItem, Replay};
use crate::plan::spool::Spool;
use crate::plan::{Artifact, Item, S3Location};
use crate::progress::Phase;
use crate::store::Ctx;
use crate::store::s3::{
    DELETE_BATCH, Listed, S3, Scope, VerifyMode, describe, is_not_found, not_implemented,
};
use crate::util::joined;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use std::collections::{HashMap, HashSet};

/// How absence is proven: the mode and, in sample mode, the sample size.
pub type Proof = (VerifyMode, usize);

/// Outcomes journaled at once, at most (one flush each).
const OUTCOME_CHUNK: usize = 10_000;

fn item(id: u32, outcome: Outcome, reason: impl Into<Option<String>>) -> OutcomeItem {
    OutcomeItem {
        id,
        outcome,
        reason: reason.into(),
    }
}

fn version_of(item: &Item) -> Option<(&str, &str)> {
    match item {
        Item::S3Version(v) => Some((&v.key, &v.version_id)),
        Item::S3DeleteMarker(m) => Some((&m.key, &m.version_id)),
        _ => None,
    }
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

/// Dispose of the planned artifacts of one S3 location: its versions and
/// delete markers (in `spool`) and its uploads. Re-identify and decide,
/// purge, prove absence; each step journals its outcomes before the next
/// begins.
pub fn location(
    ctx: &Ctx,
    s3: &S3,
    (index, loc): (u32, &S3Location),
    (spool, uploads): (&Spool, &[&Artifact]),
    replay: &Replay<'_>,
    proof: Proof,
) -> Result<()> {
    let purge = Purge {
        ctx,
        s3,
        index,
        loc,
        spool,
        replay,
        proof,
    };
    let uploads: Vec<&Artifact> = uploads
        .iter()
        .copied()
        .filter(|a| !purge.settled(a.id))
        .collect();
    let mut unsettled = spool.location(index).filter(|a| match a {
        Ok(a) => !purge.settled(a.id),
        Err(_) => true,
    });
    if unsettled.next().transpose()?.is_none() && uploads.is_empty() {
        return Ok(());
    }
    // The progress counts the location's planned versions and markers (on
    // a resume, the ones settled before are not counted again).
    let (items, bytes) = spool.count(index);
    let uri = format!("s3://{}/{}", loc.bucket, loc.prefix);
    ctx.progress.start(Phase::Purge(&uri), items, bytes);
    let mut marks = Marks::default();
    let (abort, gone, heads, early) = purge.decide_and_delete(&uploads, &mut marks)?;
    let mut aborted = purge.abort(abort)?;
    aborted.extend(gone);
    ctx.progress.finish();
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    purge.prove_absence(&marks, &aborted, heads, early)
}

/// The proof listing made as soon as every delete had answered: which
/// planned items it still showed, and its pages.
type Early = Option<(Marks, Result<u64>)>;

/// What [`Purge::decide_one`] found for one artifact.
enum One {
    Settled(OutcomeItem),
    Delete,
    Abort,
    Check,
}

/// A version or delete marker on its way to DeleteObjects: what the
/// request and the reading of its answer need.
struct Doomed {
    id: u32,
    key: String,
    version_id: String,
    size: u64,
    /// In the proof's sample: HEADed by version id once deleted.
    sampled: bool,
}

/// Which of a location's versions the proof HEADs: every one (`each`),
/// or those at these positions among the versions this run is to purge,
/// in the order the walk meets them (drawn before the walk begins, so a
/// version is HEADed as soon as its DeleteObjects answer arrives).
enum Sample {
    Each,
    At(HashSet<u64>),
}

/// What the request runner of a purge is given, and what it hands back.
enum Work {
    Delete(Vec<Doomed>),
    Head(Doomed),
    /// The lister sent its last batch.
    DeletesEnd,
}

enum Answer {
    Deleted(Vec<Doomed>, std::result::Result<DeleteAnswer, String>),
    Headed(Doomed, std::result::Result<(), HeadError>),
    DeletesEnd,
}

/// What the sampled HEADs said: which versions answered 404 (one bit
/// each: in `each` mode every version is HEADed), and the few that did not.
#[derive(Default)]
struct Heads {
    gone: Marks,
    sent: u64,
    not_gone: Vec<(Doomed, HeadError)>,
}

impl Heads {
    fn add(&mut self, d: Doomed, r: std::result::Result<(), HeadError>) {
        match r {
            Ok(()) => self.gone.insert(d.id),
            Err(e) => self.not_gone.push((d, e)),
        }
    }
}

/// Artifact ids, one bit each: the versions and markers whose absence is
/// to be proven.
#[derive(Default)]
struct Marks(Vec<u64>);

impl Marks {
    fn insert(&mut self, id: u32) {
        let w = id as usize / 64;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (id % 64);
    }

    fn contains(&self, id: u32) -> bool {
        self.0
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn union(&mut self, other: Marks) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Outcomes on their way to the journal, a chunk at a time, each warned
/// about (or reported) first.
struct Outbox<'a, 'c> {
    ctx: &'a Ctx<'c>,
    items: Vec<OutcomeItem>,
    paths: Vec<String>,
}

impl<'a, 'c> Outbox<'a, 'c> {
    fn new(ctx: &'a Ctx<'c>) -> Self {
        Outbox {
            ctx,
            items: Vec::new(),
            paths: Vec::new(),
        }
    }

    fn push(&mut self, i: OutcomeItem, path: String) -> Result<()> {
        self.items.push(i);
        self.paths.push(path);
        if self.items.len() >= OUTCOME_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        for (d, path) in self.items.iter().zip(&self.paths) {
            match (&d.outcome, &d.reason) {
                (Outcome::Disposed, None) => self.ctx.progress.item(&format!("disposed: {path}")),
                (o, r) => self
                    .ctx
                    .progress
                    .warn(&format!("{o}: {path} ({})", r.clone().unwrap_or_default())),
            }
        }
        self.paths.clear();
        self.ctx.append(Event::Outcomes {
            items: std::mem::take(&mut self.items),
        })
    }
}

/// A location's planned items walked key by key beside a listing of the
/// location, both in key order (S3 lists keys in binary UTF-8 order, page
/// after page; trace writes the plan in the same order). At the end of each
/// page every planned key the listing has moved past is handed over, all
/// its planned items together, with what the listing showed of the key
/// (version id → ETag). Memory holds one page and one key's items.
struct Beside<I: Iterator<Item = Result<Artifact>>> {
    plan: std::iter::Peekable<I>,
    page: HashMap<String, HashMap<String, String>>,
    page_max: Option<String>,
    done_upto: Option<(String, bool)>,
    out_of_order: Option<String>,
}

type Group<'g> = &'g mut dyn FnMut(Vec<Artifact>, &HashMap<String, String>) -> Result<()>;

impl<I: Iterator<Item = Result<Artifact>>> Beside<I> {
    fn new(plan: I) -> Self {
        Beside {
            plan: plan.peekable(),
            page: HashMap::new(),
            page_max: None,
            done_upto: None,
            out_of_order: None,
        }
    }

    /// One entry of the listing.
    fn entry(&mut self, l: Listed) {
        if self.out_of_order.is_some() {
            return;
        }
        if self
            .done_upto
            .as_ref()
            .is_some_and(|(d, through)| l.key < *d || (*through && l.key == *d))
        {
            self.out_of_order = Some(l.key);
            return;
        }
        if self.page_max.as_ref().is_none_or(|m| *m < l.key) {
            self.page_max = Some(l.key.clone());
        }
        self.page
            .entry(l.key)
            .or_default()
            .insert(l.version_id, l.etag);
    }

    /// The page ended: hand over every planned key before the page's last
    /// key, and that key too when `through` (a store without versions
    /// lists each key once; elsewhere a key's versions may go on in the
    /// next page, and its markers follow them).
    fn page_end(&mut self, through: bool, each: Group<'_>) -> Result<()> {
        if self.out_of_order.is_some() {
            return Ok(());
        }
        let Some(m) = self.page_max.take() else {
            return Ok(());
        };
        self.upto(Some(&m), through, each)?;
        // Keys the plan does not name go with their page.
        self.page.retain(|k, _| *k == m && !through);
        self.done_upto = Some((m, through));
        Ok(())
    }

    /// The listing is complete: hand over every planned key left. A
    /// listing out of key order is an error: nothing more is decided from it.
    fn finish(&mut self, each: Group<'_>) -> Result<()> {
        if let Some(k) = &self.out_of_order {
            return Err(Error::input(format!(
                "the listing is not in key order ({k:?} came after a later key); nothing more is decided from it"
            )));
        }
        self.upto(None, true, each)
    }

    fn upto(&mut self, upto: Option<&str>, through: bool, each: Group<'_>) -> Result<()> {
        loop {
            let key = match self.plan.peek() {
                None => return Ok(()),
                Some(Err(_)) => {
                    return Err(self.plan.next().expect("peeked").expect_err("peeked"));
                }
                Some(Ok(a)) => key_of(a).to_string(),
            };
            if upto.is_some_and(|u| key.as_str() > u || (key == u && !through)) {
                return Ok(());
            }
            let mut group = Vec::new();
            while let Some(Ok(a)) = self.plan.peek() {
                if key_of(a) != key {
                    break;
                }
                group.push(self.plan.next().expect("peeked")?);
            }
            let listed = self.page.remove(&key).unwrap_or_default();
            each(group, &listed)?;
        }
    }

    /// What the walk has not handed over (after a failed listing).
    fn rest(self) -> impl Iterator<Item = Result<Artifact>> {
        self.plan
    }
}

fn key_of(a: &Artifact) -> &str {
    a.item.s3_key().map(|k| k.1).unwrap_or_default()
}

/// One S3 location's purge.
struct Purge<'p, 'c> {
    ctx: &'p Ctx<'c>,
    s3: &'p S3,
    /// The location's index in the plan.
    index: u32,
    loc: &'p S3Location,
    spool: &'p Spool,
    replay: &'p Replay<'p>,
    proof: Proof,
}

type Items<'p> = Box<dyn Iterator<Item = Result<Artifact>> + Send + 'p>;

impl<'p, 'c> Purge<'p, 'c> {
    fn started(&self, id: u32) -> bool {
        self.replay.started_at(id).is_some()
    }

    fn settled(&self, id: u32) -> bool {
        self.replay.outcome(id).is_some()
    }

    /// The location's planned versions and markers, in key order (a plan
    /// from before trace kept them so is sorted here, in memory).
    fn items(&self) -> Result<Items<'p>> {
        if self.spool.key_ordered(self.index) {
            return Ok(Box::new(self.spool.location(self.index)));
        }
        let mut all = self
            .spool
            .location(self.index)
            .collect::<Result<Vec<Artifact>>>()?;
        all.sort_by(|a, b| key_of(a).cmp(key_of(b)));
        Ok(Box::new(all.into_iter().map(Ok)))
    }

    /// What happens to one artifact, given every version the listing shows
    /// for its key (version id → ETag), the version ids the plan lists for
    /// the key (done or not) and the uploads in progress.
    fn decide_one(
        &self,
        a: &Artifact,
        versions: &HashMap<String, String>,
        planned: &HashSet<&str>,
        uploads_now: &HashSet<(String, String)>,
        now_secs: i64,
    ) -> One {
        let gone = |what: &str| {
            if self.started(a.id) {
                One::Check
            } else {
                One::Settled(item(a.id, Outcome::SkippedChanged, what.to_string()))
            }
        };
        let unplanned: Vec<&String> = versions
            .keys()
            .filter(|v| !planned.contains(v.as_str()))
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

    /// Re-identify and delete, overlapped as `s5cmd rm` overlaps its
    /// listing and deletes: the listing of the location walks beside the
    /// plan's items, a key is decided once the listing has moved past it,
    /// and its versions go out in DeleteObjects batches (bounded
    /// concurrency) while the listing goes on. Each batch's started record
    /// is journaled before the batch is sent. A sampled version is HEADed
    /// by its id as soon as its batch is answered deleted, in the same
    /// bounded run of requests. The upload listing runs beside (versions
    /// never consult it). Marks what must now be proven absent; returns the
    /// uploads to abort, those an earlier run aborted (only their absence
    /// is proven now), and the sample's HEADs.
    #[allow(clippy::type_complexity)]
    fn decide_and_delete(
        &self,
        uploads: &[&'p Artifact],
        marks: &mut Marks,
    ) -> Result<(Vec<&'p Artifact>, Vec<&'p Artifact>, Heads, Early)> {
        use futures_util::StreamExt;
        let (s3, loc, ctx) = (self.s3, self.loc, self.ctx);
        let now_secs = crate::sign::now_unix();
        let upload_keys: HashSet<&str> = uploads
            .iter()
            .filter_map(|a| a.item.s3_key().map(|k| k.1))
            .collect();
        if loc.facts.unsupported.contains(&super::Feature::Versioning) {
            s3.expect_without_versions();
        }
        let sample = self.draw_sample()?;
        // Batches in flight or waiting, at most: the listing waits for the
        // deletes rather than filling memory.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Doomed>>(s3.concurrency().max(1) * 2);
        // The sample's HEADs: from the answers, and from the lister (a
        // version an earlier run deleted).
        let (head_tx, head_rx) = tokio::sync::mpsc::unbounded_channel::<Doomed>();
        let lister_heads = head_tx.clone();
        let mut head_tx = Some(head_tx);
        let items = self.items()?;
        let mut deleted = Marks::default();
        let mut failed = Outbox::new(ctx);
        let mut settle_error = None;
        let mut heads = Heads::default();
        let sent = std::cell::Cell::new(0usize);
        let (mut answered, mut ended) = (0usize, false);
        let mut early: Early = None;
        let (listed, uploads_now) = std::thread::scope(|scope| {
            let uploads_now = (!uploads.is_empty())
                .then(|| scope.spawn(|| current_uploads(s3, loc, &upload_keys)));
            // The proof listing starts the moment every delete has answered,
            // beside the last sampled HEADs (its requests, like theirs, wait
            // for the store's request bound).
            let (go, ready) = std::sync::mpsc::channel::<()>();
            let mut go = Some(go);
            let proof = scope.spawn(move || ready.recv().is_ok().then(|| self.proof_listing()));
            let lister =
                scope.spawn(|| self.list_and_decide(items, (now_secs, &sample), tx, lister_heads));
            let deletes = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|t| (Work::Delete(t), rx))
            })
            .chain(futures_util::stream::once(async { Work::DeletesEnd }));
            let samples = futures_util::stream::unfold(head_rx, |mut rx| async move {
                rx.recv().await.map(|t| (Work::Head(t), rx))
            });
            s3.bounded_stream_each(
                futures_util::stream::select(deletes, samples),
                |work| {
                    if matches!(work, Work::Delete(_)) {
                        sent.set(sent.get() + 1);
                    }
                    run_work(s3, &loc.bucket, work)
                },
                |answer| {
                    match answer {
                        Answer::Deleted(batch, r) => {
                            answered += 1;
                            match self.settle(batch, r, &mut failed, &mut deleted) {
                                Ok(sampled) => {
                                    for d in sampled {
                                        if let Some(tx) = &head_tx {
                                            let _ = tx.send(d);
                                        }
                                    }
                                }
                                Err(e) => {
                                    settle_error.get_or_insert(e);
                                }
                            }
                        }
                        Answer::Headed(d, r) => {
                            heads.sent += 1;
                            heads.add(d, r);
                        }
                        Answer::DeletesEnd => ended = true,
                    }
                    // Every batch answered: no HEAD is to come from here,
                    // and the proof listing can begin.
                    if ended && answered == sent.get() {
                        head_tx = None;
                        if let Some(go) = go.take()
                            && answered > 0
                            && settle_error.is_none()
                        {
                            let _ = go.send(());
                        }
                    }
                },
            );
            // Not sent: the proof thread ends without listing.
            drop(go.take());
            early = joined(proof);
            (
                joined(lister),
                uploads_now.map_or_else(|| Ok(HashSet::new()), joined),
            )
        });
        if let Some(e) = settle_error {
            return Err(e);
        }
        failed.flush()?;
        marks.union(listed?);
        marks.union(deleted);
        let (abort, gone) = self.decide_uploads(uploads, uploads_now, now_secs)?;
        Ok((abort, gone, heads, early))
    }

    /// Decide each planned upload against the uploads listed now: settled
    /// (journaled), to abort, or already aborted by an earlier run (only
    /// its absence to prove).
    #[allow(clippy::type_complexity)]
    fn decide_uploads(
        &self,
        uploads: &[&'p Artifact],
        uploads_now: Result<HashSet<(String, String)>>,
        now_secs: i64,
    ) -> Result<(Vec<&'p Artifact>, Vec<&'p Artifact>)> {
        let (mut abort, mut gone) = (Vec::new(), Vec::new());
        let mut out = Outbox::new(self.ctx);
        match uploads_now {
            Ok(now) => {
                for a in uploads {
                    match self.decide_one(a, &HashMap::new(), &HashSet::new(), &now, now_secs) {
                        One::Settled(i) => out.push(i, a.item.path().into_owned())?,
                        One::Abort => abort.push(*a),
                        One::Check => gone.push(*a),
                        One::Delete => unreachable!("uploads are aborted, not deleted"),
                    }
                }
            }
            Err(e) => {
                let why = format!("cannot re-identify: {e}");
                for a in uploads {
                    out.push(
                        item(a.id, Outcome::Failed, why.clone()),
                        a.item.path().into_owned(),
                    )?;
                }
            }
        }
        out.flush()?;
        Ok((abort, gone))
    }

    /// Draw the proof's sample before the walk: `sample size` positions
    /// among the object versions this run is to purge (on a fresh run,
    /// every planned one; on a resume, those not settled yet, counted).
    fn draw_sample(&self) -> Result<Sample> {
        if self.proof.0 == VerifyMode::Each {
            return Ok(Sample::Each);
        }
        let todo = if self.replay.first_time().is_none() {
            self.spool.versions(self.index)
        } else {
            let mut n = 0u64;
            for a in self.spool.location(self.index) {
                let a = a?;
                n += u64::from(matches!(a.item, Item::S3Version(_)) && !self.settled(a.id));
            }
            n
        };
        let k = self.proof.1.min(todo as usize);
        let at = rand::seq::index::sample(&mut rand::thread_rng(), todo as usize, k);
        Ok(Sample::At(at.into_iter().map(|i| i as u64).collect()))
    }

    /// The listing half of [`Purge::decide_and_delete`]: decide each key
    /// the listing is past and send full batches to `tx`. A listing that
    /// fails part-way fails the items not yet decided. Returns the items
    /// an earlier run deleted (only their absence is proven now).
    fn list_and_decide(
        &self,
        items: Items<'p>,
        (now_secs, sample): (i64, &Sample),
        tx: tokio::sync::mpsc::Sender<Vec<Doomed>>,
        heads: tokio::sync::mpsc::UnboundedSender<Doomed>,
    ) -> Result<Marks> {
        let mut check = Marks::default();
        let mut out = Outbox::new(self.ctx);
        let mut batch: Vec<Doomed> = Vec::new();
        let no_uploads = HashSet::new();
        // Object versions met so far that this run is to purge.
        let mut nth = 0u64;
        let mut decide_group =
            |group: Vec<Artifact>, listed: &HashMap<String, String>| -> Result<()> {
                let planned: HashSet<&str> = group
                    .iter()
                    .filter_map(|a| version_of(&a.item).map(|kv| kv.1))
                    .collect();
                for a in &group {
                    if self.settled(a.id) {
                        continue;
                    }
                    let sampled = matches!(a.item, Item::S3Version(_)) && {
                        nth += 1;
                        match sample {
                            Sample::Each => true,
                            Sample::At(at) => at.contains(&(nth - 1)),
                        }
                    };
                    let (k, v) = version_of(&a.item).expect("versions and markers");
                    let doomed = Doomed {
                        id: a.id,
                        key: k.to_string(),
                        version_id: v.to_string(),
                        size: a.item.size(),
                        sampled,
                    };
                    match self.decide_one(a, listed, &planned, &no_uploads, now_secs) {
                        One::Settled(i) => out.push(i, a.item.path().into_owned())?,
                        One::Check => {
                            check.insert(a.id);
                            if sampled {
                                let _ = heads.send(doomed);
                            }
                        }
                        One::Delete => {
                            batch.push(doomed);
                            if batch.len() == DELETE_BATCH {
                                self.send(std::mem::take(&mut batch), &tx)?;
                            }
                        }
                        One::Abort => unreachable!("versions are deleted, not aborted"),
                    }
                }
                Ok(())
            };
        // The journal (or the plan's spool) failed: nothing more is decided.
        let mut fatal = false;
        let mut decide = |group: Vec<Artifact>, listed: &HashMap<String, String>| -> Result<()> {
            let r = decide_group(group, listed);
            fatal |= r.is_err();
            r
        };
        let mut walk = Beside::new(items);
        let mut error: Option<Error> = None;
        let scope = Scope::new(&self.loc.prefix);
        let splits = self.spool.splits(self.index);
        let listing = self
            .s3
            .list_versions_split(&self.loc.bucket, &scope, splits, |l| {
                if error.is_some() {
                    return;
                }
                match l {
                    Some(l) => walk.entry(l),
                    None => {
                        if let Err(e) = walk.page_end(self.s3.without_versions(), &mut decide) {
                            error = Some(e);
                        }
                    }
                }
            })
            .and_then(|_| match error.take() {
                Some(e) => Err(e),
                None => walk.finish(&mut decide),
            });
        if let Err(e) = listing {
            if fatal {
                return Err(e);
            }
            // Sent batches stand (their answers are read); the rest
            // cannot be re-identified.
            let why = format!("cannot re-identify: {e}");
            for a in walk.rest() {
                let a = a?;
                if !self.settled(a.id) {
                    out.push(
                        item(a.id, Outcome::Failed, why.clone()),
                        a.item.path().into_owned(),
                    )?;
                }
            }
        }
        if !batch.is_empty() {
            self.send(batch, &tx)?;
        }
        out.flush()?;
        Ok(check)
    }

    /// Journal a batch as started (before anything of it is deleted), then
    /// hand it to the deleter.
    fn send(&self, batch: Vec<Doomed>, tx: &tokio::sync::mpsc::Sender<Vec<Doomed>>) -> Result<()> {
        let ids: Vec<u32> = batch
            .iter()
            .filter(|d| !self.started(d.id))
            .map(|d| d.id)
            .collect();
        if !ids.is_empty() {
            self.ctx.append(Event::Started { ids })?;
        }
        // The deleter only stops once every sender is gone.
        let _ = tx.blocking_send(batch);
        Ok(())
    }

    /// Read one DeleteObjects answer entry by entry: each planned version
    /// it reports deleted is to be proven absent; an `<Error>` entry, a
    /// missing entry or a failed request fails the version. Returns the
    /// sampled versions it deleted (to be HEADed now).
    fn settle(
        &self,
        batch: Vec<Doomed>,
        r: std::result::Result<DeleteAnswer, String>,
        failed: &mut Outbox,
        deleted: &mut Marks,
    ) -> Result<Vec<Doomed>> {
        let path = |d: &Doomed| {
            format!(
                "s3://{}/{}?versionId={}",
                self.loc.bucket, d.key, d.version_id
            )
        };
        let answer = match r {
            Err(why) => {
                for d in &batch {
                    failed.push(item(d.id, Outcome::Failed, why.clone()), path(d))?;
                }
                return Ok(Vec::new());
            }
            Ok(answer) => answer,
        };
        let mut sampled = Vec::new();
        for d in batch {
            let kv = (d.key.clone(), d.version_id.clone());
            match answer.errors.get(&kv) {
                Some(why) => failed.push(
                    item(
                        d.id,
                        Outcome::Failed,
                        format!("DeleteObjects refused it: {why}"),
                    ),
                    path(&d),
                )?,
                None if !answer.deleted.contains(&kv) => failed.push(
                    item(
                        d.id,
                        Outcome::Failed,
                        "DeleteObjects answered neither Deleted nor Error for it".to_string(),
                    ),
                    path(&d),
                )?,
                None => {
                    self.ctx.progress.bytes(d.size);
                    deleted.insert(d.id);
                    if d.sampled {
                        sampled.push(d);
                    }
                }
            }
        }
        Ok(sampled)
    }

    /// Abort the uploads (journaled as started first), with bounded
    /// concurrency. Returns the ones now to be proven absent; failures are
    /// journaled.
    fn abort(&self, abort: Vec<&'p Artifact>) -> Result<Vec<&'p Artifact>> {
        let (s3, loc, ctx) = (self.s3, self.loc, self.ctx);
        let ids: Vec<u32> = abort
            .iter()
            .filter(|a| !self.started(a.id))
            .map(|a| a.id)
            .collect();
        if !ids.is_empty() {
            ctx.append(Event::Started { ids })?;
        }
        let mut check = Vec::new();
        let mut failed = Outbox::new(ctx);
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
                Err(why) => failed.push(
                    item(
                        a.id,
                        Outcome::Failed,
                        format!("AbortMultipartUpload failed: {why}"),
                    ),
                    a.item.path().into_owned(),
                )?,
            }
        }
        failed.flush()?;
        Ok(check)
    }

    /// The listing half of the proof: list every version and marker of the
    /// location once more and note which planned items it still shows (a
    /// bit per id, whether or not this run purged them: the caller asks
    /// only about those it did). Returns them and the pages listed.
    fn proof_listing(&self) -> (Marks, Result<u64>) {
        let (s3, loc) = (self.s3, self.loc);
        let scope = Scope::new(&loc.prefix);
        let mut still = Marks::default();
        let items = match self.items() {
            Ok(i) => i,
            Err(e) => return (still, Err(e)),
        };
        let mut walk = Beside::new(items);
        let mut error: Option<Error> = None;
        let mut found = |group: Vec<Artifact>, listed: &HashMap<String, String>| -> Result<()> {
            for a in group {
                let (_, v) = version_of(&a.item).expect("versions and markers");
                if listed.contains_key(v) {
                    still.insert(a.id);
                }
            }
            Ok(())
        };
        let pages = s3
            .list_versions_by_page(&loc.bucket, &scope, |l| {
                if error.is_some() {
                    return;
                }
                match l {
                    Some(l) => walk.entry(l),
                    None => {
                        if let Err(e) = walk.page_end(s3.without_versions(), &mut found) {
                            error = Some(e);
                        }
                    }
                }
            })
            .and_then(|pages| match error.take() {
                Some(e) => Err(e),
                None => walk.finish(&mut found).map(|()| pages),
            });
        (still, pages)
    }

    /// Prove that every marked version and marker and every aborted upload
    /// is gone, and journal how: a complete listing of the location must
    /// hold none of them (S3 lists strongly consistently after a delete);
    /// HEAD *with the version id* on a random sample of the purged versions
    /// (every one in `each` mode), each sent once its delete was answered,
    /// must answer 404; each aborted upload must answer ListParts with
    /// NoSuchUpload. A HEAD that finds a version the listing calls gone
    /// means the listing cannot be trusted: every artifact of the location
    /// that only the listing vouched for is then not proven.
    /// The listing is `early` when it was made as soon as every delete had
    /// answered; otherwise (nothing deleted now, an earlier run's deletes
    /// to prove) it is made here.
    fn prove_absence(
        &self,
        marks: &Marks,
        aborted: &[&'p Artifact],
        heads: Heads,
        early: Early,
    ) -> Result<()> {
        if marks.is_empty() && aborted.is_empty() {
            return Ok(());
        }
        let (s3, loc, ctx) = (self.s3, self.loc, self.ctx);
        let scope = Scope::new(&loc.prefix);
        let mut uploads_listed: HashSet<(String, String)> = HashSet::new();
        let upload_keys: HashSet<&str> = aborted
            .iter()
            .filter_map(|a| a.item.s3_key().map(|k| k.1))
            .collect();
        let any_upload = !aborted.is_empty();
        let ((still, versions_listing), uploads_listing) = std::thread::scope(|threads| {
            let uploads = any_upload.then(|| {
                threads.spawn(|| {
                    s3.list_uploads(&loc.bucket, &scope, |u| {
                        if upload_keys.contains(u.key.as_str()) {
                            uploads_listed.insert((u.key, u.upload_id));
                        }
                    })
                })
            });
            let versions = early.unwrap_or_else(|| self.proof_listing());
            let uploads = uploads.map_or(Ok(0), joined);
            (versions, uploads)
        });
        let heads = self.ask_unanswered_again(heads);
        // The versions a HEAD did not find gone, and why.
        let head: HashMap<(&str, &str), String> = heads
            .not_gone
            .iter()
            .map(|(d, e)| ((d.key.as_str(), d.version_id.as_str()), e.to_string()))
            .collect();
        let listing = versions_listing.and_then(|pages| Ok(pages + uploads_listing?));
        let pages = match listing {
            Ok(p) => p,
            Err(e) => return self.not_proven(marks, aborted, &format!("absence not proven: {e}")),
        };
        // A HEAD contradicts the listing only where the listing calls the
        // version gone.
        let contradicting: Vec<String> = heads
            .not_gone
            .iter()
            .filter(|(d, _)| !still.contains(d.id))
            .map(|(d, e)| format!("{}?versionId={}: {e}", d.key, d.version_id))
            .collect();
        let contradicted = contradicting.len() as u64;
        let contradiction = contradicting.into_iter().next();
        let mut uploads_proven = Vec::new();
        for a in aborted {
            let Item::S3Upload(u) = &a.item else {
                unreachable!("only uploads are aborted")
            };
            let verdict = if uploads_listed.contains(&(u.key.clone(), u.upload_id.clone())) {
                Err("the upload is still listed".to_string())
            } else {
                upload_gone(s3, &loc.bucket, &u.key, &u.upload_id)
            };
            uploads_proven.push((*a, verdict));
        }
        ctx.append(Event::AbsenceProof(AbsenceProof {
            location: self.index,
            mode: self.proof.0,
            versions: marks.count(),
            listing_pages: pages,
            heads: heads.sent,
            contradicted,
            soft_delete: None,
            uploads: aborted.len() as u64,
        }))?;
        let verdict = |id: u32, item: &Item| -> std::result::Result<(), String> {
            if still.contains(id) {
                return Err("the version is still listed".to_string());
            }
            if heads.gone.contains(id) {
                return Ok(());
            }
            let (k, v) = version_of(item).expect("versions and markers");
            match (head.get(&(k, v)), &contradiction) {
                (Some(e), _) => Err(e.clone()),
                (None, Some(c)) => Err(format!(
                    "the listing of the location cannot be trusted: a sampled HEAD did not answer 404 ({c})"
                )),
                (None, None) => Ok(()),
            }
        };
        let mut out = Outbox::new(ctx);
        let outcome = |id: u32, v: std::result::Result<(), String>| match v {
            Ok(()) => item(id, Outcome::Disposed, None),
            Err(why) => item(id, Outcome::Failed, format!("absence not proven: {why}")),
        };
        for a in self.spool.location(self.index) {
            let a = a?;
            if marks.contains(a.id) {
                let v = verdict(a.id, &a.item);
                out.push(outcome(a.id, v), a.item.path().into_owned())?;
            }
        }
        for (a, v) in uploads_proven {
            out.push(outcome(a.id, v), a.item.path().into_owned())?;
        }
        out.flush()
    }

    /// A HEAD that got no answer (a transport error or a 5xx after every
    /// retry) is asked once more, after the others: it says nothing yet
    /// about the listing, and a proof should not fail on one bad
    /// connection when the next would answer.
    fn ask_unanswered_again(&self, mut heads: Heads) -> Heads {
        let (s3, bucket) = (self.s3, &self.loc.bucket);
        let (unanswered, found): (Vec<_>, Vec<_>) = std::mem::take(&mut heads.not_gone)
            .into_iter()
            .partition(|(_, e)| matches!(e, HeadError::Unanswered(_)));
        heads.not_gone = found;
        let again: Vec<Doomed> = unanswered.into_iter().map(|(d, _)| d).collect();
        for (d, r) in s3.bounded(again, |d| async move {
            let r = head_version(s3, bucket, &d.key, &d.version_id).await;
            (d, r)
        }) {
            heads.add(d, r);
        }
        heads
    }

    /// Every marked version and marker, and every aborted upload, failed:
    /// their absence could not be proven (`why`).
    fn not_proven(&self, marks: &Marks, aborted: &[&'p Artifact], why: &str) -> Result<()> {
        let mut out = Outbox::new(self.ctx);
        for a in aborted {
            out.push(
                item(a.id, Outcome::Failed, why.to_string()),
                a.item.path().into_owned(),
            )?;
        }
        for a in self.spool.location(self.index) {
            let a = a?;
            if marks.contains(a.id) {
                out.push(
                    item(a.id, Outcome::Failed, why.to_string()),
                    a.item.path().into_owned(),
                )?;
            }
        }
        out.flush()
    }
}

/// HEAD one purged version by its id: only "not found" proves it gone.
/// The null version is HEADed without a version id (moto rejects
/// `versionId=null`; for a purged key S3 answers both the same).
async fn head_version(
    s3: &S3,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> std::result::Result<(), HeadError> {
    let version = (version_id != "null").then(|| version_id.to_string());
    let r = s3
        .client()
        .head_object()
        .bucket(bucket)
        .key(key)
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

/// One request of the purge's bounded run: a DeleteObjects batch or a
/// sampled HEAD.
async fn run_work(s3: &S3, bucket: &str, work: Work) -> Answer {
    match work {
        Work::Delete(batch) => {
            // What the store answered the listing, not what the plan
            // found: a store can gain versioning after trace.
            let unversioned = s3.without_versions();
            let r = delete_versions(s3, bucket, &batch, unversioned).await;
            Answer::Deleted(batch, r)
        }
        Work::Head(d) => {
            let r = head_version(s3, bucket, &d.key, &d.version_id).await;
            Answer::Headed(d, r)
        }
        Work::DeletesEnd => Answer::DeletesEnd,
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
    batch: &[Doomed],
    unversioned: bool,
) -> std::result::Result<DeleteAnswer, String> {
    let objects: Vec<ObjectIdentifier> = batch
        .iter()
        .map(|d| (d.key.as_str(), d.version_id.as_str()))
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
    batch: &[Doomed],
    unversioned: bool,
) -> DeleteAnswer {
    use futures_util::StreamExt;
    let results: Vec<((String, String), std::result::Result<(), String>)> =
        futures_util::stream::iter(
            batch
                .iter()
                .map(|d| (d.key.as_str(), d.version_id.as_str())),
        )
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
fn upload_gone(
    s3: &S3,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> std::result::Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::S3Marker;

    fn planned(id: u32, key: &str, version: &str) -> Result<Artifact> {
        Ok(Artifact {
            id,
            location: 1,
            item: Item::S3DeleteMarker(S3Marker {
                bucket: "b".into(),
                key: key.into(),
                version_id: version.into(),
                is_latest: false,
                last_modified: String::new(),
            }),
        })
    }

    fn listed(key: &str, version: &str) -> Listed {
        Listed {
            key: key.into(),
            version_id: version.into(),
            is_latest: false,
            is_marker: false,
            size: 0,
            etag: format!("e-{version}"),
            last_modified: String::new(),
            storage_class: None,
        }
    }

    /// What each hand-over gave: the key, its planned ids, its listed versions.
    type Seen = Vec<(String, Vec<u32>, Vec<String>)>;

    fn record(
        seen: &mut Seen,
    ) -> impl FnMut(Vec<Artifact>, &HashMap<String, String>) -> Result<()> + '_ {
        |group, listed| {
            let mut versions: Vec<String> = listed.keys().cloned().collect();
            versions.sort();
            seen.push((
                key_of(&group[0]).to_string(),
                group.iter().map(|a| a.id).collect(),
                versions,
            ));
            Ok(())
        }
    }

    #[test]
    fn each_planned_key_is_handed_over_whole_once_the_listing_is_past_it() {
        let plan = vec![
            planned(1, "a", "1"),
            planned(2, "a", "2"),
            planned(3, "b", "1"),
            planned(4, "c", "1"),
            planned(5, "e", "1"),
        ];
        let mut walk = Beside::new(plan.into_iter());
        let mut seen = Seen::new();
        for l in [listed("a", "1"), listed("a", "2"), listed("b", "1")] {
            walk.entry(l);
        }
        walk.page_end(false, &mut record(&mut seen)).unwrap();
        // "b" ends the page: more of its versions may follow.
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0],
            ("a".into(), vec![1, 2], vec!["1".into(), "2".into()])
        );
        for l in [listed("b", "new"), listed("c", "1"), listed("d", "1")] {
            walk.entry(l);
        }
        walk.page_end(false, &mut record(&mut seen)).unwrap();
        assert_eq!(
            seen[1],
            ("b".into(), vec![3], vec!["1".into(), "new".into()]),
            "a key's versions from two pages come together"
        );
        assert_eq!(seen[2], ("c".into(), vec![4], vec!["1".into()]));
        // An unplanned key is forgotten with its page (but the page's last
        // key waits for the next page).
        assert!(walk.page.keys().all(|k| k == "d"));
        walk.finish(&mut record(&mut seen)).unwrap();
        assert_eq!(
            seen[3],
            ("e".into(), vec![5], vec![]),
            "planned, not listed"
        );
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn a_store_without_versions_settles_a_pages_last_key_at_its_end() {
        let mut walk = Beside::new(vec![planned(1, "a", "null")].into_iter());
        let mut seen = Seen::new();
        walk.entry(listed("a", "null"));
        walk.page_end(true, &mut record(&mut seen)).unwrap();
        assert_eq!(seen.len(), 1);
        assert!(walk.page.is_empty());
    }

    #[test]
    fn a_key_listed_after_its_turn_stops_the_walk() {
        let mut walk = Beside::new(vec![planned(1, "a", "1"), planned(2, "c", "1")].into_iter());
        let mut seen = Seen::new();
        walk.entry(listed("b", "1"));
        walk.page_end(false, &mut record(&mut seen)).unwrap();
        walk.entry(listed("a", "1"));
        walk.page_end(false, &mut record(&mut seen)).unwrap();
        let e = walk.finish(&mut record(&mut seen)).unwrap_err();
        assert!(e.to_string().contains("not in key order"), "{e}");
        // Only "a" (before "b") was handed over; "c" is left undecided.
        assert_eq!(seen.len(), 1);
        assert_eq!(walk.rest().count(), 1);
    }
}
