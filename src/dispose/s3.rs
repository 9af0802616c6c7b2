//! Purging an S3 location: re-identify every planned version, delete
//! versions and delete markers by version id with DeleteObjects (1000 keys a
//! request, several requests in flight), abort planned multipart uploads, then
//! prove absence: list the versions again (none of the planned version ids
//! left), HEAD every fully purged key (404), and check each aborted upload is
//! gone. Only then is an artifact "disposed". Versions under legal hold or
//! retention are "retained" and never attempted; a key that gained versions
//! since approval is "changed" and left alone.

use super::Ctx;
use crate::error::Result;
use crate::journal::{ArtifactState, Event, Outcome, OutcomeItem};
use crate::plan::{Artifact, Item, S3Location};
use crate::progress::Phase;
use crate::s3::{DELETE_BATCH, S3, describe, is_not_found};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use std::collections::{BTreeMap, HashMap, HashSet};

type Decided = Vec<OutcomeItem>;

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
    s3.list_versions(&loc.bucket, &loc.prefix, |l| {
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
    s3.list_uploads(&loc.bucket, &loc.prefix, |u| {
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
    loc: &S3Location,
    all: &[&Artifact],
    state: &BTreeMap<u32, ArtifactState>,
) -> Result<()> {
    let todo: Vec<&Artifact> = all
        .iter()
        .copied()
        .filter(|a| state.get(&a.id).is_none_or(|s| s.outcome.is_none()))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let purge = Purge::new(ctx, s3, loc, all, state);
    let plan = match purge.decide(&todo) {
        Ok(p) => p,
        Err(e) => {
            let items = todo
                .iter()
                .map(|a| item(a.id, Outcome::Failed, format!("cannot re-identify: {e}")))
                .collect();
            return ctx.append(Event::Outcomes { items });
        }
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

/// One S3 location's purge: the plan's artifacts of it, looked up by id and
/// by key (buckets hold millions of versions: look up, never scan).
struct Purge<'p, 'c> {
    ctx: &'p Ctx<'c>,
    s3: &'p S3,
    loc: &'p S3Location,
    all: &'p [&'p Artifact],
    state: &'p BTreeMap<u32, ArtifactState>,
    by_id: HashMap<u32, &'p Artifact>,
    /// Every version id the plan lists per key (done or not).
    planned: HashMap<&'p str, HashSet<&'p str>>,
}

impl<'p, 'c> Purge<'p, 'c> {
    fn new(
        ctx: &'p Ctx<'c>,
        s3: &'p S3,
        loc: &'p S3Location,
        all: &'p [&'p Artifact],
        state: &'p BTreeMap<u32, ArtifactState>,
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
            loc,
            all,
            state,
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
        let gone = |d: &mut Decision<'p>, a: &'p Artifact, what: &str| {
            if self.started(a.id) {
                d.check.push(a)
            } else {
                d.decided
                    .push(item(a.id, Outcome::SkippedChanged, what.to_string()))
            }
        };
        for a in todo {
            let (_, key) = a.item.s3_key().expect("S3 items");
            let versions = now.get(key).unwrap_or(&empty);
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
                    d.decided.push(item(
                        a.id,
                        Outcome::SkippedChanged,
                        format!(
                            "the key has {} version(s) created since approval, e.g. {}",
                            unplanned.len(),
                            unplanned[0]
                        ),
                    ));
                }
                Item::S3Version(v) => match versions.get(&v.version_id) {
                    Some(etag) if *etag != v.etag => d.decided.push(item(
                        a.id,
                        Outcome::SkippedChanged,
                        format!("ETag {etag} differs from the approved {}", v.etag),
                    )),
                    Some(_) => match retained(v, now_secs) {
                        Some(why) => d.decided.push(item(a.id, Outcome::Retained, why)),
                        None => d.delete.push(a),
                    },
                    None => gone(&mut d, a, "no longer exists"),
                },
                Item::S3DeleteMarker(m) => match versions.get(&m.version_id) {
                    Some(_) => d.delete.push(a),
                    None => gone(&mut d, a, "no longer exists"),
                },
                Item::S3Upload(u) => {
                    if uploads_now.contains(&(u.key.clone(), u.upload_id.clone())) {
                        d.abort.push(a)
                    } else {
                        gone(&mut d, a, "the upload no longer exists")
                    }
                }
                _ => unreachable!("only S3 items reach the S3 disposer"),
            }
        }
        Ok(d)
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
            let r = delete_versions(s3, &loc.bucket, &batch).await;
            (batch, r)
        }) {
            match r {
                Err(why) => failed.extend(
                    batch
                        .iter()
                        .map(|a| item(a.id, Outcome::Failed, why.clone())),
                ),
                Ok(errs) => {
                    for a in batch {
                        let kv = version_of(&a.item).expect("versions and markers only");
                        match errs.get(&(kv.0.to_string(), kv.1.to_string())) {
                            Some(why) => failed.push(item(
                                a.id,
                                Outcome::Failed,
                                format!("DeleteObjects refused it: {why}"),
                            )),
                            None => {
                                ctx.progress.bytes(a.item.size());
                                check.push(a);
                            }
                        }
                    }
                }
            }
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

    /// Prove that every artifact in `check` is gone: a fresh listing no
    /// longer holds its version id (or upload), a fully purged key answers
    /// HEAD with 404, an aborted upload answers ListParts with NoSuchUpload.
    /// Journals each artifact's outcome.
    fn prove_absence(&self, check: &[&'p Artifact]) -> Result<()> {
        let (s3, loc, ctx) = (self.s3, self.loc, self.ctx);
        let check_keys: HashSet<&str> = check
            .iter()
            .filter_map(|a| a.item.s3_key().map(|k| k.1))
            .collect();
        let listed = current(s3, loc, &check_keys)
            .and_then(|c| Ok((c, current_uploads(s3, loc, &check_keys)?)));
        let (after, uploads_after) = match listed {
            Ok(v) => v,
            Err(e) => {
                let items = check
                    .iter()
                    .map(|a| item(a.id, Outcome::Failed, format!("absence not proven: {e}")))
                    .collect();
                return ctx.append(Event::Outcomes { items });
            }
        };
        // Keys whose every planned version is gone must also answer HEAD with 404.
        let mut not_gone: HashSet<&str> = HashSet::new();
        for a in self.all {
            if let Some((k, v)) = version_of(&a.item)
                && after.get(k).is_some_and(|m| m.contains_key(v))
            {
                not_gone.insert(k);
            }
        }
        let purged: Vec<&str> = check_keys
            .iter()
            .copied()
            .filter(|k| !not_gone.contains(k) && after.get(*k).is_none_or(|m| m.is_empty()))
            .collect();
        let head: HashMap<&str, Result<(), String>> = s3
            .bounded(purged, |k| async move {
                let r = s3
                    .client()
                    .head_object()
                    .bucket(&loc.bucket)
                    .key(k)
                    .send()
                    .await;
                let verdict = match r {
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(format!("HEAD gave {}", describe(&e))),
                    Ok(_) => Err("HEAD still finds the object".to_string()),
                };
                (k, verdict)
            })
            .into_iter()
            .collect();
        let mut proven: Decided = Vec::new();
        for a in check {
            let verdict = match &a.item {
                Item::S3Upload(u) => {
                    if uploads_after.contains(&(u.key.clone(), u.upload_id.clone())) {
                        Err("the upload is still listed".to_string())
                    } else {
                        upload_gone(s3, &loc.bucket, &u.key, &u.upload_id)
                    }
                }
                _ => {
                    let (k, v) = version_of(&a.item).expect("versions and markers");
                    if after.get(k).is_some_and(|m| m.contains_key(v)) {
                        Err("the version is still listed".to_string())
                    } else {
                        head.get(k).cloned().unwrap_or(Ok(()))
                    }
                }
            };
            proven.push(match verdict {
                Ok(()) => item(a.id, Outcome::Disposed, None),
                Err(why) => item(a.id, Outcome::Failed, format!("absence not proven: {why}")),
            });
        }
        for p in &proven {
            let path = self.path_of(p.id);
            match &p.reason {
                None => ctx.progress.item(&format!("disposed: {path}")),
                Some(r) => ctx.progress.warn(&format!("failed: {path} ({r})")),
            }
        }
        if !proven.is_empty() {
            ctx.append(Event::Outcomes { items: proven })?;
        }
        Ok(())
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

/// One DeleteObjects request by version id. Returns the entries the answer
/// refused, keyed by (key, version id), or why the whole request failed.
async fn delete_versions(
    s3: &S3,
    bucket: &str,
    batch: &[&Artifact],
) -> Result<HashMap<(String, String), String>, String> {
    let objects: Vec<ObjectIdentifier> = batch
        .iter()
        .filter_map(|a| version_of(&a.item))
        .map(|(k, v)| {
            ObjectIdentifier::builder()
                .key(k)
                .version_id(v)
                .build()
                .expect("key is set")
        })
        .collect();
    let delete = Delete::builder()
        .set_objects(Some(objects))
        .quiet(false)
        .build()
        .expect("objects are set");
    let out = s3
        .client()
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| format!("DeleteObjects failed: {}", describe(&e)))?;
    Ok(out
        .errors()
        .iter()
        .map(|e| {
            (
                (
                    e.key().unwrap_or("").to_string(),
                    e.version_id().unwrap_or("null").to_string(),
                ),
                format!(
                    "{}: {}",
                    e.code().unwrap_or("Error"),
                    e.message().unwrap_or("")
                ),
            )
        })
        .collect())
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
