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

/// Dispose of the planned artifacts of one S3 location.
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
    let started = |id: u32| state.get(&id).is_some_and(|s| s.started.is_some());
    // Buckets hold millions of versions: look artifacts up, never scan.
    let by_id: HashMap<u32, &Artifact> = all.iter().map(|a| (a.id, *a)).collect();
    let path_of = |id: u32| by_id.get(&id).map(|a| a.item.path()).unwrap_or_default();
    let keys: HashSet<&str> = todo
        .iter()
        .filter_map(|a| a.item.s3_key().map(|k| k.1))
        .collect();
    // Every version id the plan lists per key (done or not).
    let mut planned: HashMap<&str, HashSet<&str>> = HashMap::new();
    for a in all {
        if let Some((k, v)) = version_of(&a.item) {
            planned.entry(k).or_default().insert(v);
        }
    }
    let fail_all = |ctx: &Ctx, why: String| -> Result<()> {
        let items = todo
            .iter()
            .map(|a| item(a.id, Outcome::Failed, why.clone()))
            .collect();
        ctx.append(Event::Outcomes { items })
    };
    let (now, uploads_now) =
        match current(s3, loc, &keys).and_then(|c| Ok((c, current_uploads(s3, loc, &keys)?))) {
            Ok(v) => v,
            Err(e) => return fail_all(ctx, format!("cannot re-identify: {e}")),
        };
    let empty = HashMap::new();
    let now_secs = crate::sign::now_unix();

    // Re-identify and decide.
    let mut decided: Decided = Vec::new();
    let mut delete: Vec<&Artifact> = Vec::new();
    let mut abort: Vec<&Artifact> = Vec::new();
    let mut check: Vec<&Artifact> = Vec::new();
    for a in &todo {
        let (_, key) = a.item.s3_key().expect("S3 items");
        let versions = now.get(key).unwrap_or(&empty);
        let unplanned: Vec<&String> = versions
            .keys()
            .filter(|v| !planned.get(key).is_some_and(|p| p.contains(v.as_str())))
            .collect();
        match &a.item {
            Item::S3Version(_) | Item::S3DeleteMarker(_) if !unplanned.is_empty() => {
                decided.push(item(
                    a.id,
                    Outcome::SkippedChanged,
                    format!(
                        "the key has {} version(s) created since approval, e.g. {}",
                        unplanned.len(),
                        unplanned[0]
                    ),
                ));
            }
            Item::S3Version(v) => {
                let retained = v.legal_hold
                    || v.retention
                        .as_ref()
                        .is_some_and(|r| crate::sign::unix(&r.until).is_ok_and(|t| t > now_secs));
                match versions.get(&v.version_id) {
                    Some(etag) if *etag != v.etag => decided.push(item(
                        a.id,
                        Outcome::SkippedChanged,
                        format!("ETag {etag} differs from the approved {}", v.etag),
                    )),
                    Some(_) if retained => decided.push(item(
                        a.id,
                        Outcome::Retained,
                        if v.legal_hold {
                            "legal hold".to_string()
                        } else {
                            format!(
                                "retention until {}",
                                v.retention
                                    .as_ref()
                                    .map(|r| r.until.as_str())
                                    .unwrap_or("?")
                            )
                        },
                    )),
                    Some(_) => delete.push(a),
                    None if started(a.id) => check.push(a),
                    None => decided.push(item(
                        a.id,
                        Outcome::SkippedChanged,
                        "no longer exists".to_string(),
                    )),
                }
            }
            Item::S3DeleteMarker(m) => match versions.get(&m.version_id) {
                Some(_) => delete.push(a),
                None if started(a.id) => check.push(a),
                None => decided.push(item(
                    a.id,
                    Outcome::SkippedChanged,
                    "no longer exists".to_string(),
                )),
            },
            Item::S3Upload(u) => {
                if uploads_now.contains(&(u.key.clone(), u.upload_id.clone())) {
                    abort.push(a)
                } else if started(a.id) {
                    check.push(a)
                } else {
                    decided.push(item(
                        a.id,
                        Outcome::SkippedChanged,
                        "the upload no longer exists".to_string(),
                    ))
                }
            }
            _ => unreachable!("only S3 items reach the S3 disposer"),
        }
    }
    if !decided.is_empty() {
        for d in &decided {
            ctx.progress.warn(&format!(
                "{}: {} ({})",
                d.outcome,
                path_of(d.id),
                d.reason.clone().unwrap_or_default()
            ));
        }
        ctx.append(Event::Outcomes {
            items: std::mem::take(&mut decided),
        })?;
    }

    // Journal intent, then delete in batches with bounded concurrency.
    let ids: Vec<u32> = delete
        .iter()
        .chain(&abort)
        .filter(|a| !started(a.id))
        .map(|a| a.id)
        .collect();
    if !ids.is_empty() {
        ctx.append(Event::Started { ids })?;
    }
    let bytes: u64 = delete.iter().map(|a| a.item.size()).sum();
    ctx.progress.start(
        &format!("purge s3://{}/{}", loc.bucket, loc.prefix),
        (delete.len() + abort.len()) as u64,
        bytes,
    );
    let batches: Vec<Vec<&Artifact>> = delete.chunks(DELETE_BATCH).map(|c| c.to_vec()).collect();
    let results = s3.bounded(batches, |batch| async move {
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
        let r = s3
            .client()
            .delete_objects()
            .bucket(&loc.bucket)
            .delete(delete)
            .send()
            .await;
        (batch, r)
    });
    let mut failed: Decided = Vec::new();
    for (batch, r) in results {
        match r {
            Err(e) => {
                let why = format!("DeleteObjects failed: {}", describe(&e));
                failed.extend(
                    batch
                        .iter()
                        .map(|a| item(a.id, Outcome::Failed, why.clone())),
                );
            }
            Ok(out) => {
                let errs: HashMap<(&str, &str), String> = out
                    .errors()
                    .iter()
                    .map(|e| {
                        (
                            (e.key().unwrap_or(""), e.version_id().unwrap_or("null")),
                            format!(
                                "{}: {}",
                                e.code().unwrap_or("Error"),
                                e.message().unwrap_or("")
                            ),
                        )
                    })
                    .collect();
                for a in &batch {
                    let kv = version_of(&a.item).expect("versions and markers only");
                    match errs.get(&kv) {
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
    let aborted = s3.bounded(abort, |a| async move {
        let Item::S3Upload(u) = &a.item else {
            unreachable!()
        };
        let r = s3
            .client()
            .abort_multipart_upload()
            .bucket(&loc.bucket)
            .key(&u.key)
            .upload_id(&u.upload_id)
            .send()
            .await;
        (
            a,
            r.map(|_| ()).or_else(|e| {
                if is_not_found(&e) {
                    Ok(())
                } else {
                    Err(describe(&e))
                }
            }),
        )
    });
    for (a, r) in aborted {
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
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(crate::error::Error::Interrupted);
    }

    // Absence proof.
    let check_keys: HashSet<&str> = check
        .iter()
        .filter_map(|a| a.item.s3_key().map(|k| k.1))
        .collect();
    let (after, uploads_after) = match current(s3, loc, &check_keys)
        .and_then(|c| Ok((c, current_uploads(s3, loc, &check_keys)?)))
    {
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
    for a in all {
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
    let heads = s3.bounded(purged, |k| async move {
        let r = s3
            .client()
            .head_object()
            .bucket(&loc.bucket)
            .key(k)
            .send()
            .await;
        (
            k,
            match r {
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(format!("HEAD gave {}", describe(&e))),
                Ok(_) => Err("HEAD still finds the object".to_string()),
            },
        )
    });
    let head: HashMap<&str, Result<(), String>> = heads.into_iter().collect();
    let mut proven: Decided = Vec::new();
    for a in &check {
        let (_, key) = a.item.s3_key().expect("S3 items");
        let verdict = match &a.item {
            Item::S3Upload(u) => {
                if uploads_after.contains(&(u.key.clone(), u.upload_id.clone())) {
                    Err("the upload is still listed".to_string())
                } else {
                    match s3.block_on(
                        s3.client()
                            .list_parts()
                            .bucket(&loc.bucket)
                            .key(&u.key)
                            .upload_id(&u.upload_id)
                            .send(),
                    ) {
                        Err(e) if is_not_found(&e) => Ok(()),
                        Err(e) => Err(format!("ListParts gave {}", describe(&e))),
                        Ok(_) => Err("ListParts still finds the upload".to_string()),
                    }
                }
            }
            _ => {
                let (_, v) = version_of(&a.item).expect("versions and markers");
                if after.get(key).is_some_and(|m| m.contains_key(v)) {
                    Err("the version is still listed".to_string())
                } else {
                    head.get(key).cloned().unwrap_or(Ok(()))
                }
            }
        };
        proven.push(match verdict {
            Ok(()) => item(a.id, Outcome::Disposed, None),
            Err(why) => item(a.id, Outcome::Failed, format!("absence not proven: {why}")),
        });
    }
    for p in &proven {
        let path = path_of(p.id);
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
