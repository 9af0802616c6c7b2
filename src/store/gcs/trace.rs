//! Tracing a `gs://bucket/folder` location: the bucket's facts, every
//! generation under the folder (live and noncurrent), what the match mode
//! selects, and the residual risks (soft delete above all).

use super::client::{Bucket, Gcs, Listing, Object};
use super::spec::Settings;
use crate::error::{Error, Result};
use crate::manifest::{Location, MatchMode, Method};
use crate::plan::{
    GcsFacts, GcsGeneration, GcsLifecycle, GcsLocation, Item, Matched, MatchedBy, PlanLocation,
    Retention, Risk, RiskKind, Store,
};
use crate::progress::{Phase, Progress};
use crate::store::Criteria;
use crate::util::Scope;
use std::collections::{BTreeMap, BTreeSet};

/// The bucket's facts from its resource; what it does not say is unknown.
pub fn facts(b: &Bucket) -> GcsFacts {
    GcsFacts {
        versioning: b.versioning.as_ref().is_some_and(|v| v.enabled),
        soft_delete_seconds: b
            .soft_delete_policy
            .as_ref()
            .map(|p| p.retention_duration_seconds),
        retention_seconds: b
            .retention_policy
            .as_ref()
            .map(|p| p.retention_period)
            .filter(|s| *s > 0),
        retention_locked: b.retention_policy.as_ref().is_some_and(|p| p.is_locked),
        default_event_based_hold: b.default_event_based_hold.unwrap_or(false),
        lifecycle_rules: b
            .lifecycle
            .as_ref()
            .map(|l| l.rule.iter().map(|r| r.get().to_string()).collect())
            .unwrap_or_default(),
        default_kms_key: b
            .encryption
            .as_ref()
            .and_then(|e| e.default_kms_key_name.clone()),
        location: b.location.clone(),
        location_type: b.location_type.clone(),
    }
}

/// Every generation in the location (both listings of a folder that is not
/// written with a trailing `/`), with the include and exclude globs
/// applied, in name order, each (name, generation) once: a store that
/// lists a generation twice (the emulator after a metadata change) keeps
/// the copy that says whether it is live.
pub fn generations(
    gcs: &Gcs,
    loc: &Location,
    (bucket, prefix): (&str, &str),
    what: Listing,
) -> Result<(Vec<Object>, u64)> {
    let scope = Scope::new(prefix);
    let include = crate::manifest::globset(&loc.include, &loc.uri)?;
    let exclude = crate::manifest::globset(&loc.exclude, &loc.uri)?;
    let mut found: BTreeMap<(String, u128), Object> = BTreeMap::new();
    let mut pages = 0;
    for (p, d) in scope.listings() {
        pages += gcs.list(bucket, (&p, d), what, &mut |items| {
            for o in items {
                let rel = scope.relative(&o.name);
                let wanted = scope.owns(&o.name, (&p, d))
                    && include.as_ref().is_none_or(|g| g.is_match(rel))
                    && !exclude.as_ref().is_some_and(|g| g.is_match(rel));
                if !wanted {
                    continue;
                }
                let g = o.generation.parse::<u128>().map_err(|_| {
                    Error::input(format!(
                        "gs://{bucket}/{}: the store lists generation {:?}, not a number",
                        o.name, o.generation
                    ))
                })?;
                let key = (o.name.clone(), g);
                match found.get(&key) {
                    Some(had) if had.time_deleted.is_none() => {}
                    _ => {
                        found.insert(key, o);
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok((found.into_values().collect(), pages))
}

/// Trace one location: describe the bucket, list every generation, plan
/// what the match mode selects (or one lifecycle artifact for the folder),
/// and name the residual risks.
pub fn trace_location(
    index: u32,
    loc: &Location,
    (bucket, prefix): (&str, &str),
    criteria: &Criteria<'_>,
    (gcs, settings): (&Gcs, &Settings),
    progress: &dyn Progress,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<(PlanLocation, Vec<Risk>)> {
    let facts = facts(&gcs.bucket(bucket)?);
    progress.start(Phase::List(&loc.uri), 0, 0);
    let (objects, _) = generations(gcs, loc, (bucket, prefix), Listing::Generations)?;
    progress.finish();
    let mut risks = bucket_risks(loc, bucket, &facts);
    if facts.soft_delete_seconds.is_some_and(|s| s > 0) {
        risks.extend(soft_deleted_risk(gcs, loc, (bucket, prefix))?);
    }
    if loc.method == Method::Lifecycle {
        emit(lifecycle_item(bucket, prefix, &facts, &objects))?;
        risks.push(Risk {
            kind: RiskKind::GcsLifecycle,
            subject: loc.uri.clone(),
            detail: "disposal delegated to the bucket's lifecycle rules: the certificate stays pending until a later execute --resume lists the folder empty; held or retained generations are not deleted and will be reported retained".into(),
        });
    } else {
        let now = time::OffsetDateTime::now_utc();
        let mut unhashed = 0u64;
        let mut keys: BTreeSet<String> = BTreeSet::new();
        progress.start(Phase::Inspect(&loc.uri), objects.len() as u64, 0);
        for o in objects {
            progress.bytes(o.size);
            let sha256 = match (loc.match_mode, settings.hash_remote) {
                (MatchMode::Hash, true) => Some(gcs.sha256(bucket, &o.name, &o.generation)?),
                (MatchMode::Hash, false) => {
                    unhashed += 1;
                    continue;
                }
                _ => None,
            };
            let Some(matched) = select(loc, criteria, sha256.as_deref()) else {
                continue;
            };
            let g = generation(bucket, o, sha256, matched);
            if let Some(why) = g.kept(now) {
                risks.push(Risk {
                    kind: RiskKind::GcsRetained,
                    subject: g.uri(),
                    detail: format!("{why}: no delete can remove it; it will be reported retained while that lasts"),
                });
            }
            keys.extend(g.kms_key.clone());
            emit(Item::GcsGeneration(g))?;
        }
        progress.finish();
        risks.extend(item_risks(loc, unhashed, &keys));
    }
    let pl = PlanLocation {
        index,
        uri: loc.uri.clone(),
        host: None,
        match_mode: loc.match_mode,
        store: Store::Gcs(GcsLocation {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            covers: Scope::new(prefix).rule(),
            endpoint: gcs.endpoint.clone(),
            facts,
        }),
    };
    Ok((pl, risks))
}

/// How the match mode selects a generation (`None`: not planned).
fn select(loc: &Location, criteria: &Criteria<'_>, sha256: Option<&str>) -> Option<Matched> {
    let (how, component) = match loc.match_mode {
        MatchMode::Hash => {
            let c = criteria.known().find_sha256(sha256?)?.to_string();
            (MatchedBy::Hash, Some(c))
        }
        MatchMode::All if !loc.include.is_empty() => (MatchedBy::Include, None),
        MatchMode::All => (MatchedBy::All, None),
    };
    Some(Matched {
        how,
        pattern: None,
        component,
    })
}

fn generation(bucket: &str, o: Object, sha256: Option<String>, matched: Matched) -> GcsGeneration {
    GcsGeneration {
        bucket: bucket.to_string(),
        live: o.time_deleted.is_none(),
        name: o.name,
        generation: o.generation,
        metageneration: o.metageneration.unwrap_or_else(|| "1".into()),
        size: o.size,
        created: o.time_created.unwrap_or_default(),
        noncurrent_since: o.time_deleted,
        md5: o.md5_hash,
        crc32c: o.crc32c,
        storage_class: o.storage_class,
        kms_key: o.kms_key_name,
        sha256,
        temporary_hold: o.temporary_hold,
        event_based_hold: o.event_based_hold,
        retention: o
            .retention
            .filter(|r| !r.retain_until_time.is_empty())
            .map(|r| Retention {
                mode: r.mode,
                until: r.retain_until_time,
            }),
        retained_until: o.retention_expiration_time,
        matched,
    }
}

/// The lifecycle rules that empty `prefix`: current generations deleted at
/// age 0 and, with versioning, noncurrent ones as soon as they are.
pub fn rules_for(prefix: &str, versioning: bool) -> Vec<String> {
    let only = match prefix {
        "" => String::new(),
        p => format!(",\"matchesPrefix\":[{}]", serde_json::Value::from(p)),
    };
    let mut rules = vec![format!(
        "{{\"action\":{{\"type\":\"Delete\"}},\"condition\":{{\"age\":0{only}}}}}"
    )];
    if versioning {
        rules.push(format!(
            "{{\"action\":{{\"type\":\"Delete\"}},\"condition\":{{\"daysSinceNoncurrentTime\":0,\"isLive\":false{only}}}}}"
        ));
    }
    rules
}

fn lifecycle_item(bucket: &str, prefix: &str, facts: &GcsFacts, objects: &[Object]) -> Item {
    Item::GcsLifecycle(GcsLifecycle {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        rules: rules_for(prefix, facts.versioning),
        generations: objects.len() as u64,
        bytes: objects.iter().map(|o| o.size).sum(),
    })
}

/// What the bucket's settings mean for the disposal.
fn bucket_risks(loc: &Location, bucket: &str, f: &GcsFacts) -> Vec<Risk> {
    let subject = format!("gs://{bucket}");
    let mut risks = vec![Risk {
        kind: RiskKind::GcsLogical,
        subject: subject.clone(),
        detail: "deletion through the JSON API is logical sanitization: Google's storage media are sanitized by Google, outside this certificate".into(),
    }];
    let soft = match f.soft_delete_seconds {
        Some(0) => None,
        Some(s) => Some(format!(
            "soft delete is on ({}): every deleted generation stays restorable until its hardDeleteTime; the certificate stays pending until then, and execute --resume after that time completes it",
            crate::plan::gcs::duration(s)
        )),
        None => Some("the store reports no soft-delete policy: whether deleted generations stay restorable (Google's default since 2024 is 7 days) is unknown, and the certificate cannot say when they are gone".into()),
    };
    if let Some(detail) = soft {
        risks.push(Risk {
            kind: RiskKind::GcsSoftDelete,
            subject: subject.clone(),
            detail,
        });
    }
    if let Some(s) = f.retention_seconds {
        risks.push(Risk {
            kind: RiskKind::GcsRetained,
            subject: subject.clone(),
            detail: format!(
                "the bucket's retention policy{} keeps every generation {} after its creation; younger ones will be reported retained",
                if f.retention_locked { " (locked)" } else { "" },
                crate::plan::gcs::duration(s)
            ),
        });
    }
    if f.default_event_based_hold && loc.method == Method::Purge {
        risks.push(Risk {
            kind: RiskKind::GcsRetained,
            subject,
            detail: "new objects get an event-based hold by default: generations written after trace may be held".into(),
        });
    }
    risks
}

/// Generations deleted before trace that the store keeps soft-deleted:
/// copies of the model no delete can remove before their hardDeleteTime.
fn soft_deleted_risk(gcs: &Gcs, loc: &Location, at: (&str, &str)) -> Result<Option<Risk>> {
    let (soft, _) = generations(gcs, loc, at, Listing::SoftDeleted)?;
    let Some(until) = soft
        .iter()
        .filter_map(|o| o.hard_delete_time.as_deref())
        .max()
    else {
        return Ok(None);
    };
    Ok(Some(Risk {
        kind: RiskKind::GcsSoftDelete,
        subject: loc.uri.clone(),
        detail: format!(
            "{} generation(s) deleted before trace are soft-deleted, restorable until {until} at the latest: the JSON API cannot remove them sooner, and this plan does not list them",
            soft.len()
        ),
    }))
}

fn item_risks(loc: &Location, unhashed: u64, keys: &BTreeSet<String>) -> Vec<Risk> {
    let mut risks = Vec::new();
    if unhashed > 0 {
        risks.push(Risk {
            kind: RiskKind::GcsUnhashed,
            subject: loc.uri.clone(),
            detail: format!(
                "{unhashed} generation(s) not examined: GCS lists MD5 and CRC32C, which cannot identify a component by SHA-256; set [gcs] hash_remote = true to stream and hash them"
            ),
        });
    }
    for k in keys {
        risks.push(Risk {
            kind: RiskKind::GcsKmsKey,
            subject: k.clone(),
            detail: "planned generations are encrypted with this Cloud KMS key; decom records it and does not destroy key versions (cryptographic erase of GCS objects is not implemented)".into(),
        });
    }
    risks
}
