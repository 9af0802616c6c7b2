//! Tracing an S3 location: bucket facts (versioning, object lock,
//! replication, lifecycle), every object version and delete marker in the
//! location (streamed page by page), every unfinished multipart upload, and,
//! only where a fact needs it, a HEAD per version: its lock state (bucket
//! with Object Lock), its SHA-256 (`match = "hash"`: the object's checksum,
//! or streamed and hashed with `hash_remote`), its encryption (`[s3] inspect
//! = "each"`). Each planned version says where its facts came from
//! (`facts_from`). Trace changes nothing.

use crate::error::{Error, Result};
use crate::manifest::{Location, MatchMode, Method};
use crate::plan::RiskKind;
use crate::plan::{
    BucketFacts, FactsFrom, Item, LifecycleRule, Matched, MatchedBy, PlanLocation, Retention, Risk,
    S3Lifecycle, S3Location, S3Marker, S3Upload, S3Version, Store, Versioning,
};
use crate::store::Criteria;

/// Keys in a purge location from which trace suggests S3 Lifecycle.
pub const LIFECYCLE_SUGGESTED: u64 = 100_000;
use crate::progress::{Phase, Progress};
use crate::store::s3::spec::Feature;
use crate::store::s3::{InspectMode, Listed, S3, Scope, describe, is_not_found, not_implemented};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ChecksumMode, ObjectLockEnabled, ObjectLockLegalHoldStatus};
use base64::Engine;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::HashSet;

fn globset(globs: &[String]) -> Result<Option<GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| Error::input(format!("bad glob {g:?}: {e}")))?);
    }
    Ok(Some(b.build().map_err(|e| Error::input(e.to_string()))?))
}

/// Read the bucket-level facts; a missing bucket or refused access is an input error.
pub fn bucket_facts(s3: &S3, bucket: &str) -> Result<BucketFacts> {
    let c = s3.client();
    s3.block_on(c.head_bucket().bucket(bucket).send())
        .map_err(|e| {
            let why = if is_not_found(&e) {
                "does not exist".to_string()
            } else if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) {
                "access denied (check the credentials)".to_string()
            } else {
                describe(&e)
            };
            Error::input(format!("s3://{bucket}: {why}"))
        })?;
    // A fact about a feature the store does not implement is recorded as
    // unsupported, never an error; a missing configuration is an answer;
    // any other failure (access, 5xx) stays an error: nothing is guessed.
    let mut unsupported = Vec::new();
    let fail = |op: &str, why: String| {
        Error::input(format!(
            "s3://{bucket}: {op}: {why} (decom needs this fact to plan honestly; check the credentials' permissions)"
        ))
    };
    let versioning = match s3.block_on(c.get_bucket_versioning().bucket(bucket).send()) {
        Ok(v) => v
            .status()
            .map(|s| Versioning::from(s.as_str().to_string()))
            .unwrap_or(Versioning::NeverEnabled),
        Err(e) if not_implemented(&e) => {
            unsupported.push(Feature::Versioning);
            Versioning::NeverEnabled
        }
        Err(e) => return Err(fail("GetBucketVersioning", describe(&e))),
    };
    let (object_lock, default_retention) =
        match s3.block_on(c.get_object_lock_configuration().bucket(bucket).send()) {
            Ok(o) => {
                let cfg = o.object_lock_configuration();
                let on = cfg
                    .and_then(|c| c.object_lock_enabled())
                    .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
                let ret = cfg
                    .and_then(|c| c.rule())
                    .and_then(|r| r.default_retention())
                    .map(|d| {
                        format!(
                            "{} for {}",
                            d.mode().map(|m| m.as_str()).unwrap_or("?"),
                            match (d.days(), d.years()) {
                                (Some(n), _) => format!("{n} day(s)"),
                                (_, Some(n)) => format!("{n} year(s)"),
                                _ => "?".into(),
                            }
                        )
                    });
                (on, ret)
            }
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => (false, None),
            Err(e) if not_implemented(&e) => {
                unsupported.push(Feature::ObjectLock);
                (false, None)
            }
            Err(e) => return Err(fail("GetObjectLockConfiguration", describe(&e))),
        };
    let replication_rules = match s3.block_on(c.get_bucket_replication().bucket(bucket).send()) {
        Ok(o) => o
            .replication_configuration()
            .map(|cfg| {
                cfg.rules()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} ({}) → {}",
                            r.id().unwrap_or("unnamed"),
                            r.status().as_str(),
                            r.destination().map(|d| d.bucket()).unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) if is_not_found(&e) || e.code() == Some("ReplicationConfigurationNotFoundError") => {
            Vec::new()
        }
        Err(e) if not_implemented(&e) => {
            unsupported.push(Feature::Replication);
            Vec::new()
        }
        Err(e) => return Err(fail("GetBucketReplication", describe(&e))),
    };
    let lifecycle_rules =
        match s3.block_on(c.get_bucket_lifecycle_configuration().bucket(bucket).send()) {
            Ok(o) => o
                .rules()
                .iter()
                .map(|r| format!("{} ({})", r.id().unwrap_or("unnamed"), r.status().as_str()))
                .collect(),
            Err(e) if is_not_found(&e) || e.code() == Some("NoSuchLifecycleConfiguration") => {
                Vec::new()
            }
            Err(e) if not_implemented(&e) => {
                unsupported.push(Feature::Lifecycle);
                Vec::new()
            }
            Err(e) => return Err(fail("GetBucketLifecycleConfiguration", describe(&e))),
        };
    Ok(BucketFacts {
        versioning,
        object_lock,
        default_retention,
        replication_rules,
        lifecycle_rules,
        unsupported,
    })
}

/// A version's SHA-256 and where it came from ("s3-checksum" or "streamed").
struct Sha {
    hex: String,
    source: &'static str,
}

/// A listed version with what its HEAD (and hashing) told.
type Inspected = (Listed, Result<(Details, Option<Sha>), String>);

/// Parts and bytes of an unfinished upload.
struct PartsTotal {
    parts: u64,
    bytes: u64,
}

struct Details {
    from: FactsFrom,
    sse: Option<String>,
    kms_key_id: Option<String>,
    storage_class: Option<String>,
    sha256: Option<String>,
    retention: Option<Retention>,
    legal_hold: bool,
}

impl Details {
    /// What the listing alone says of a version (no HEAD was needed).
    fn from_listing(v: &Listed) -> Details {
        Details {
            from: FactsFrom::Listing,
            sse: None,
            kms_key_id: None,
            storage_class: v.storage_class.clone(),
            sha256: None,
            retention: None,
            legal_hold: false,
        }
    }
}

/// HEAD one version (and its lock state when the bucket has object lock).
async fn details(s3: &S3, bucket: &str, v: &Listed, object_lock: bool) -> Result<Details, String> {
    let c = s3.client();
    // The current null version is HEADed without a version id: same object,
    // and some S3-compatible servers (moto) reject `versionId=null` on HEAD.
    let version = crate::store::s3::head_version_id(&v.version_id, v.is_latest);
    let h = c
        .head_object()
        .bucket(bucket)
        .key(&v.key)
        .set_version_id(version)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    // A full-object SHA-256 checksum is the content hash; a composite one
    // (multipart, "…-N") is not.
    let sha256 = h
        .checksum_sha256()
        .filter(|c| !c.contains('-'))
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .filter(|b| b.len() == 32)
        .map(hex::encode);
    let mut retention = match (h.object_lock_mode(), h.object_lock_retain_until_date()) {
        (Some(m), Some(t)) => Some(Retention {
            mode: m.as_str().to_string(),
            until: crate::store::s3::time(Some(t)),
        }),
        _ => None,
    };
    let mut legal_hold = h
        .object_lock_legal_hold_status()
        .is_some_and(|s| *s == ObjectLockLegalHoldStatus::On);
    if object_lock {
        if let Ok(r) = c
            .get_object_legal_hold()
            .bucket(bucket)
            .key(&v.key)
            .version_id(&v.version_id)
            .send()
            .await
        {
            legal_hold |= r
                .legal_hold()
                .and_then(|l| l.status())
                .is_some_and(|s| *s == ObjectLockLegalHoldStatus::On);
        }
        if let Ok(r) = c
            .get_object_retention()
            .bucket(bucket)
            .key(&v.key)
            .version_id(&v.version_id)
            .send()
            .await
            && let Some(ret) = r.retention()
            && let (Some(m), Some(t)) = (ret.mode(), ret.retain_until_date())
        {
            retention = Some(Retention {
                mode: m.as_str().to_string(),
                until: crate::store::s3::time(Some(t)),
            });
        }
    }
    Ok(Details {
        from: FactsFrom::Head,
        sse: h.server_side_encryption().map(|s| s.as_str().to_string()),
        kms_key_id: h.ssekms_key_id().map(str::to_string),
        storage_class: h
            .storage_class()
            .map(|s| s.as_str().to_string())
            .or_else(|| v.storage_class.clone()),
        sha256,
        retention,
        legal_hold,
    })
}

/// Stream one version and hash it.
async fn stream_hash(
    s3: &S3,
    bucket: &str,
    v: &Listed,
    progress: &dyn Progress,
) -> Result<String, String> {
    let mut body = s3
        .client()
        .get_object()
        .bucket(bucket)
        .key(&v.key)
        .version_id(&v.version_id)
        .send()
        .await
        .map_err(|e| describe(&e))?
        .body;
    let mut h = crate::hash::Running::default();
    while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
        h.update(&chunk);
        progress.bytes(chunk.len() as u64);
    }
    Ok(h.finish())
}

/// Trace one S3 location: read the bucket's facts, [`stream_listing`]
/// every version, delete marker and upload under the prefix, and for each
/// listing page of whole keys [`inspect`] the versions (HEAD, checksum, lock
/// state; streamed hash with `hash_remote`) and [`select`] what the match
/// mode plans, handing each planned item to `emit` as it is decided (memory
/// holds a page, not the location); then count the parts of planned
/// uploads and name the residual risks.
pub fn trace_location(
    index: u32,
    loc: &Location,
    (bucket, prefix): (&str, &str),
    criteria: &Criteria<'_>,
    (s3, settings): (&S3, &crate::store::s3::Settings),
    progress: &dyn Progress,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<(PlanLocation, Vec<Risk>)> {
    let mut facts = bucket_facts(s3, bucket)?;
    if loc.method == Method::Lifecycle {
        let mut counted = Counted::default();
        progress.start(Phase::List(&loc.uri), 0, 0);
        let uploads = stream_listing(s3, loc, (bucket, prefix), |versions, markers| {
            counted.versions += versions.len() as u64;
            counted.bytes += versions.iter().map(|v| v.size).sum::<u64>();
            counted.markers += markers.len() as u64;
            Ok(())
        })?;
        progress.finish();
        counted.uploads = uploads.len() as u64;
        note_without_versions(s3, &mut facts);
        let (pl, item, risks) =
            lifecycle_location(index, loc, (bucket, prefix), s3, facts, counted)?;
        emit(item)?;
        return Ok((pl, risks));
    }
    let needs = Needs {
        object_lock: facts.object_lock,
        checksum: loc.match_mode == MatchMode::Hash,
        hash_remote: settings.hash_remote,
        // Crypto-erase needs each planned version's KMS key.
        each: settings.inspect == Some(InspectMode::Each) || loc.crypto_erase,
    };
    let mut sel = Selected::default();
    // Crypto-erase judges the keys over every planned version: those are
    // kept (the one place a location's versions are held at once).
    let mut planned: Vec<Item> = Vec::new();
    progress.start(Phase::Inspect(&loc.uri), 0, 0);
    let uploads = stream_listing(s3, loc, (bucket, prefix), |versions, markers| {
        let inspected = inspect(s3, bucket, versions, needs, progress);
        select(
            loc,
            bucket,
            criteria,
            inspected,
            markers,
            &mut sel,
            &mut |item| {
                if loc.crypto_erase {
                    planned.push(item.clone());
                }
                emit(item)
            },
        )
    })?;
    progress.finish();
    note_without_versions(s3, &mut facts);
    for item in upload_items(s3, bucket, loc, uploads, &sel.planned_keys)? {
        emit(item)?;
    }
    let mut risks = sel.risks;
    risks.extend(bucket_risks(bucket, &facts, sel.null_versions));
    if sel.keys >= LIFECYCLE_SUGGESTED {
        risks.push(Risk {
            kind: RiskKind::S3LargeLocation,
            subject: loc.uri.clone(),
            detail: format!(
                "{} keys: purging them from one machine takes long; consider method = \"lifecycle\" for this folder (S3's own engine empties it, the certificate stays pending until then)",
                sel.keys
            ),
        });
    }
    if sel.unhashed > 0 {
        risks.push(Risk {
            kind: RiskKind::S3Unhashed,
            subject: loc.uri.clone(),
            detail: format!("{} version(s) carry no SHA-256 checksum and were not examined; trace with --hash-remote to stream and hash them", sel.unhashed),
        });
    }
    let mut pl = plan_location(index, loc, (bucket, prefix), s3, facts);
    if loc.crypto_erase {
        let (keys, erase, mut r) = crypto_erase(s3, loc, bucket, &planned, progress)?;
        if let Store::S3(l) = &mut pl.store {
            l.kms_keys = keys;
        }
        for item in erase {
            emit(item)?;
        }
        risks.append(&mut r);
    }
    Ok((pl, risks))
}

/// A store that does not implement ListObjectVersions says so in the plan.
fn note_without_versions(s3: &S3, facts: &mut BucketFacts) {
    if s3.without_versions() && !facts.unsupported.contains(&Feature::Versioning) {
        facts.unsupported.push(Feature::Versioning);
    }
}

/// `crypto_erase = true`: every KMS key that encrypts a planned version,
/// what KMS says of it, and who else uses it (every other object version
/// in the bucket is HEADed for its key, and the bucket's default
/// encryption read). Only a customer-managed, single-Region key with no
/// grant that encrypts nothing outside the plan and is not the bucket's
/// default becomes a `kms-key` artifact; every other key is a
/// `crypto-erase-refused` risk with its reason.
fn crypto_erase(
    s3: &S3,
    loc: &Location,
    bucket: &str,
    items: &[Item],
    progress: &dyn Progress,
) -> Result<(Vec<crate::plan::KmsKeyFacts>, Vec<Item>, Vec<Risk>)> {
    use crate::plan::{KmsKey, KmsKeyFacts};
    use crate::store::s3::kms;
    use std::collections::BTreeMap;
    let fail = |m: String| Error::input(format!("{}: crypto_erase: {m}", loc.uri));
    let mut names = kms::Names::default();
    // The planned versions, by the key that encrypts them: (info, names
    // used, versions, versions under retention or a legal hold).
    let planned: HashSet<(&str, &str)> = items
        .iter()
        .filter_map(|i| match i {
            Item::S3Version(v) => Some((v.key.as_str(), v.version_id.as_str())),
            _ => None,
        })
        .collect();
    let mut by_key: BTreeMap<String, (kms::KeyInfo, Vec<String>, u64, u64)> = BTreeMap::new();
    let mut not_kms = 0u64;
    for i in items {
        let Item::S3Version(v) = i else { continue };
        let Some(raw) = v.kms_key_id.as_deref() else {
            not_kms += 1;
            continue;
        };
        let Some(info) = names.resolve(s3, raw).map_err(fail)? else {
            return Err(fail(format!(
                "KMS does not know key {raw}, which encrypts {}",
                i.path()
            )));
        };
        let e = by_key
            .entry(info.arn.clone())
            .or_insert_with(|| (info.clone(), Vec::new(), 0, 0));
        if !e.1.iter().any(|n| n == raw) {
            e.1.push(raw.to_string());
        }
        e.2 += 1;
        if v.legal_hold || v.retention.is_some() {
            e.3 += 1;
        }
    }
    progress.item(&format!(
        "s3://{bucket}: which KMS key encrypts each version outside the plan"
    ));
    let used_outside = kms::keys_in_bucket(
        s3,
        bucket,
        |l| !planned.contains(&(l.key.as_str(), l.version_id.as_str())),
        &mut names,
    )
    .map_err(fail)?;
    let default_arn = kms::bucket_default(s3, bucket, &mut names).map_err(fail)?;
    let days = loc.crypto_erase_days();
    let mut facts = Vec::new();
    let mut erase = Vec::new();
    let mut risks = Vec::new();
    for (arn, (info, named_as, versions, held)) in by_key {
        let (aliases, tags, grants) = kms::usage(s3, &info.key_id).map_err(fail)?;
        let u = kms::Use {
            outside: used_outside.get(&arn).copied().unwrap_or(0),
            held,
            grants,
            bucket_default: default_arn.as_deref() == Some(arn.as_str()),
            aliases,
        };
        let refusal = kms::judge(&info, &u, bucket);
        let reason = refusal.clone().unwrap_or_else(|| {
            format!(
                "dedicated: customer-managed, single-Region, no grant, not the bucket default, and it encrypts the {versions} planned version(s) and no other version in s3://{bucket}; deleted {days} day(s) after execute"
            )
        });
        if let Some(why) = &refusal {
            risks.push(Risk {
                kind: RiskKind::CryptoEraseRefused,
                subject: arn.clone(),
                detail: format!(
                    "not destroyed: {why}; the {versions} version(s) it encrypts are purged (logical sanitization)"
                ),
            });
        } else {
            erase.push(Item::KmsKey(KmsKey {
                key_arn: arn.clone(),
                window_days: days,
                versions,
            }));
        }
        facts.push(KmsKeyFacts {
            key_arn: arn,
            named_as,
            key_manager: info.manager,
            key_state: info.state,
            multi_region: info.multi_region,
            aliases: u.aliases,
            tags,
            grants,
            versions,
            used_outside: u.outside,
            bucket_default: u.bucket_default,
            erase: refusal.is_none(),
            reason,
        });
    }
    if not_kms > 0 {
        risks.push(Risk {
            kind: RiskKind::CryptoEraseRefused,
            subject: loc.uri.clone(),
            detail: format!(
                "{not_kms} planned version(s) are not encrypted with a KMS key (SSE-S3 or none): no key to destroy; they are purged (logical sanitization)"
            ),
        });
    }
    Ok((facts, erase, risks))
}

/// The plan's record of an S3 location: where it is, the rule of what it
/// covers, the endpoint execute must use, and the bucket's facts.
fn plan_location(
    index: u32,
    loc: &Location,
    (bucket, prefix): (&str, &str),
    s3: &S3,
    facts: BucketFacts,
) -> PlanLocation {
    PlanLocation {
        index,
        uri: loc.uri.clone(),
        host: None,
        match_mode: loc.match_mode,
        store: Store::S3(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            covers: Some(Scope::new(prefix).rule()),
            endpoint: s3.endpoint.clone(),
            facts,
            kms_keys: Vec::new(),
        }),
    }
}

/// A folder delegated to S3 Lifecycle: one artifact holding the exact
/// rules execute will install and what the listing counted (no HEADs).
fn lifecycle_location(
    index: u32,
    loc: &Location,
    (bucket, prefix): (&str, &str),
    s3: &S3,
    facts: BucketFacts,
    counted: Counted,
) -> Result<(PlanLocation, Item, Vec<Risk>)> {
    let id = format!(
        "decom-{}",
        &crate::hash::sha256_hex(format!("s3://{bucket}/{prefix}").as_bytes())[..16]
    );
    let existing = crate::store::s3::lifecycle::rules(s3, bucket)?
        .iter()
        .filter_map(|r| r.id().map(str::to_string))
        .collect();
    let item = Item::S3Lifecycle(S3Lifecycle {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        rules: LifecycleRule::for_folder(&id, prefix),
        versions: counted.versions,
        delete_markers: counted.markers,
        uploads: counted.uploads,
        bytes: counted.bytes,
        existing_rules: existing,
    });
    let mut risks = bucket_risks(bucket, &facts, false);
    risks.push(Risk {
        kind: RiskKind::S3Lifecycle,
        subject: loc.uri.clone(),
        detail: "disposal delegated to S3 Lifecycle: the certificate stays pending until a later execute --resume lists the folder empty; versions under retention or legal hold are not expired and will be reported retained".into(),
    });
    let pl = plan_location(index, loc, (bucket, prefix), s3, facts);
    Ok((pl, item, risks))
}

/// What a lifecycle location's listing counted.
#[derive(Default)]
struct Counted {
    versions: u64,
    markers: u64,
    uploads: u64,
    bytes: u64,
}

/// List every version, delete marker and unfinished upload under the
/// prefix, keeping the keys the globs select, and hand `each` the versions
/// and markers of whole keys, a listing page at a time, in key order (the
/// key that ends a page waits for the next page, which may hold more of its
/// versions). The listing runs on its own thread, at most two pages ahead
/// of `each`; memory holds those pages, never the location. Returns the
/// uploads (listed after the versions; a location holds few).
fn stream_listing(
    s3: &S3,
    loc: &Location,
    (bucket, prefix): (&str, &str),
    mut each: impl FnMut(Vec<Listed>, Vec<Listed>) -> Result<()>,
) -> Result<Vec<crate::store::s3::Upload>> {
    let include = globset(&loc.include)?;
    let exclude = globset(&loc.exclude)?;
    let scope = Scope::new(prefix);
    let selected = |key: &str| {
        let rel = scope.relative(key);
        include.as_ref().is_none_or(|g| g.is_match(rel))
            && !exclude.as_ref().is_some_and(|g| g.is_match(rel))
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Listed>>(2);
    std::thread::scope(|threads| {
        let lister = threads.spawn(|| {
            let mut held: Vec<Listed> = Vec::new();
            // `each` failed: the rest of the listing is not looked at.
            let mut stopped = false;
            s3.list_versions_by_page(bucket, &scope, |l| match l {
                Some(l) if !stopped && selected(&l.key) => held.push(l),
                Some(_) => {}
                None => {
                    // The page's last key in key order (a page lists its
                    // delete markers after its versions) waits for the next.
                    let Some(last) = held.iter().map(|l| &l.key).max().cloned() else {
                        return;
                    };
                    let (rest, whole): (Vec<Listed>, Vec<Listed>) = std::mem::take(&mut held)
                        .into_iter()
                        .partition(|l| l.key == last);
                    held = rest;
                    if !whole.is_empty() && tx.send(whole).is_err() {
                        stopped = true;
                        held.clear();
                    }
                }
            })?;
            if !held.is_empty() {
                let _ = tx.send(held);
            }
            drop(tx);
            let mut uploads = Vec::new();
            s3.list_uploads(bucket, &scope, |u| {
                if selected(&u.key) {
                    uploads.push(u)
                }
            })?;
            Ok(uploads)
        });
        let mut done = Ok(());
        for page in rx.iter() {
            let (markers, versions) = page.into_iter().partition(|l| l.is_marker);
            done = each(versions, markers);
            if done.is_err() {
                break;
            }
        }
        drop(rx);
        let uploads = crate::util::joined(lister);
        done?;
        uploads
    })
}

/// What trace must learn beyond the listing, which decides whether a
/// version is HEADed at all.
#[derive(Debug, Clone, Copy)]
struct Needs {
    /// Lock state (the bucket has Object Lock).
    object_lock: bool,
    /// The checksum (`match = "hash"`).
    checksum: bool,
    /// Stream and hash what carries no checksum.
    hash_remote: bool,
    /// `[s3] inspect = "each"`: encryption too.
    each: bool,
}

impl Needs {
    fn head(&self) -> bool {
        self.object_lock || self.checksum || self.hash_remote || self.each
    }
}

/// HEAD the versions where a fact needs it (bounded concurrency) and take
/// a SHA-256 from the checksum, or stream and hash it with `hash_remote`;
/// the others are described by the listing alone.
fn inspect(
    s3: &S3,
    bucket: &str,
    versions: Vec<Listed>,
    needs: Needs,
    progress: &dyn Progress,
) -> Vec<Inspected> {
    let (object_lock, hash_remote) = (needs.object_lock, needs.hash_remote);
    let numbered: Vec<(usize, Listed)> = versions.into_iter().enumerate().collect();
    let mut inspected: Vec<(usize, Inspected)> = s3.bounded(numbered, |(n, v)| async move {
        let r = async {
            if !needs.head() {
                let d = Details::from_listing(&v);
                progress.item(&format!(
                    "s3://{bucket}/{}?versionId={}",
                    v.key, v.version_id
                ));
                return Ok((d, None));
            }
            let d = details(s3, bucket, &v, object_lock).await?;
            let sha = match &d.sha256 {
                Some(s) => Some(Sha {
                    hex: s.clone(),
                    source: "s3-checksum",
                }),
                None if hash_remote => Some(Sha {
                    hex: stream_hash(s3, bucket, &v, progress).await?,
                    source: "streamed",
                }),
                None => None,
            };
            progress.item(&format!(
                "s3://{bucket}/{}?versionId={}",
                v.key, v.version_id
            ));
            Ok((d, sha))
        }
        .await;
        (n, (v, r))
    });
    // The listing's order (by key, newest version first), not the order
    // the HEADs answered in: versions written within one second share a
    // last-modified time, and only the listing knows which is newer.
    inspected.sort_by_key(|(n, _)| *n);
    inspected.into_iter().map(|(_, i)| i).collect()
}

/// What [`select`] has planned so far of a location's versions and
/// markers (the items themselves went to `emit`).
#[derive(Default)]
struct Selected {
    risks: Vec<Risk>,
    /// Keys with a planned version.
    keys: u64,
    /// Those keys where not everything is planned (a hash location): their
    /// uploads go too.
    planned_keys: HashSet<String>,
    /// Versions a hash location could not judge (no checksum).
    unhashed: u64,
    null_versions: bool,
}

/// Plan the versions of a page of whole keys that the match mode selects
/// (in a hash location: those whose SHA-256 is a known component's), then
/// the delete markers of the planned keys (all of them when matching
/// everything), and hand each to `emit`.
fn select(
    loc: &Location,
    bucket: &str,
    criteria: &Criteria<'_>,
    inspected: Vec<Inspected>,
    mut markers: Vec<Listed>,
    sel: &mut Selected,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    let known = criteria.known();
    // The page's planned keys (a page holds whole keys).
    let mut keys: HashSet<String> = HashSet::new();
    // The page's items, emitted in key order (each key's versions newest
    // first, then its delete markers): execute walks a location's items
    // beside its listing, key by key.
    let mut page: Vec<Item> = Vec::new();
    for (v, r) in inspected {
        let (d, sha) = r.map_err(|e| {
            Error::input(format!(
                "s3://{bucket}/{}?versionId={}: {e}",
                v.key, v.version_id
            ))
        })?;
        sel.null_versions |= v.version_id == "null";
        let component = sha
            .as_ref()
            .and_then(|s| known.find_sha256(&s.hex).map(str::to_string));
        let how = match loc.match_mode {
            MatchMode::Hash => match (&sha, &component) {
                (Some(_), Some(_)) => MatchedBy::Hash,
                (None, _) => {
                    sel.unhashed += 1;
                    continue;
                }
                _ => continue,
            },
            MatchMode::All if !loc.include.is_empty() => MatchedBy::Include,
            MatchMode::All => MatchedBy::All,
        };
        if let Some(r) = retained_risk(bucket, &v, &d) {
            sel.risks.push(r);
        }
        if !keys.contains(&v.key) {
            keys.insert(v.key.clone());
        }
        page.push(Item::S3Version(S3Version {
            bucket: bucket.to_string(),
            key: v.key,
            version_id: v.version_id,
            is_latest: v.is_latest,
            size: v.size,
            etag: v.etag,
            last_modified: v.last_modified,
            storage_class: d.storage_class,
            sse: d.sse,
            kms_key_id: d.kms_key_id,
            sha256: sha.as_ref().map(|s| s.hex.clone()),
            sha256_source: sha.map(|s| s.source.to_string()),
            facts_from: Some(d.from),
            retention: d.retention,
            legal_hold: d.legal_hold,
            matched: Matched {
                how,
                pattern: None,
                component,
            },
        }));
    }
    markers.sort_by(|a, b| (&a.key, &a.version_id).cmp(&(&b.key, &b.version_id)));
    for m in markers {
        if loc.match_mode == MatchMode::All || keys.contains(&m.key) {
            page.push(Item::S3DeleteMarker(S3Marker {
                bucket: bucket.to_string(),
                key: m.key,
                version_id: m.version_id,
                is_latest: m.is_latest,
                last_modified: m.last_modified,
            }));
        }
    }
    // Stable: versions keep the listing's order within their key.
    page.sort_by(|a, b| a.s3_key().map(|k| k.1).cmp(&b.s3_key().map(|k| k.1)));
    for item in page {
        emit(item)?;
    }
    sel.keys += keys.len() as u64;
    if loc.match_mode != MatchMode::All {
        sel.planned_keys.extend(keys);
    }
    Ok(())
}

/// A version under legal hold or retention will be reported retained.
fn retained_risk(bucket: &str, v: &Listed, d: &Details) -> Option<Risk> {
    let detail = match (&d.retention, d.legal_hold) {
        (Some(r), true) => format!(
            "legal hold and {} retention until {}: will be reported retained",
            r.mode, r.until
        ),
        (Some(r), false) => format!(
            "{} retention until {}: will be reported retained if still in force",
            r.mode, r.until
        ),
        (None, true) => "legal hold: will be reported retained".into(),
        (None, false) => return None,
    };
    Some(Risk {
        kind: RiskKind::S3Retained,
        subject: format!("s3://{bucket}/{}?versionId={}", v.key, v.version_id),
        detail,
    })
}

/// The unfinished uploads of planned keys (all of them when matching
/// everything), each with its parts counted.
fn upload_items(
    s3: &S3,
    bucket: &str,
    loc: &Location,
    mut uploads: Vec<crate::store::s3::Upload>,
    keys: &HashSet<String>,
) -> Result<Vec<Item>> {
    uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
    uploads.retain(|u| loc.match_mode == MatchMode::All || keys.contains(&u.key));
    let mut parts: Vec<(crate::store::s3::Upload, Result<PartsTotal, String>)> =
        s3.bounded(uploads, |u| async move {
            let r = async {
                let mut pages = s3
                    .client()
                    .list_parts()
                    .bucket(bucket)
                    .key(&u.key)
                    .upload_id(&u.upload_id)
                    .into_paginator()
                    .items()
                    .send();
                let mut t = PartsTotal { parts: 0, bytes: 0 };
                while let Some(p) = pages.next().await {
                    let p = p.map_err(|e| describe(&e))?;
                    t.parts += 1;
                    t.bytes += p.size().unwrap_or(0).max(0) as u64;
                }
                Ok(t)
            }
            .await;
            (u, r)
        });
    parts.sort_by(|a, b| (&a.0.key, &a.0.upload_id).cmp(&(&b.0.key, &b.0.upload_id)));
    parts
        .into_iter()
        .map(|(u, r)| {
            let t = r.map_err(|e| {
                Error::input(format!(
                    "s3://{bucket}/{}?uploadId={}: cannot list parts: {e}",
                    u.key, u.upload_id
                ))
            })?;
            Ok(Item::S3Upload(S3Upload {
                bucket: bucket.to_string(),
                key: u.key,
                upload_id: u.upload_id,
                initiated: u.initiated,
                parts: t.parts,
                bytes: t.bytes,
            }))
        })
        .collect()
}

/// Residual risks of the bucket itself: replication, object lock,
/// versioning history, and that object storage is logical sanitization.
fn bucket_risks(bucket: &str, facts: &BucketFacts, null_versions: bool) -> Vec<Risk> {
    let subject = format!("s3://{bucket}");
    let mut risks = Vec::new();
    for r in &facts.replication_rules {
        risks.push(Risk {
            kind: RiskKind::S3Replication,
            subject: subject.clone(),
            detail: format!("replication rule {r}: replicas live in another bucket and are not covered by this plan"),
        });
    }
    if facts.object_lock {
        risks.push(Risk {
            kind: RiskKind::S3ObjectLock,
            subject: subject.clone(),
            detail: format!(
                "object lock is enabled{}: locked versions cannot be deleted until their retention ends",
                facts.default_retention.as_ref().map(|d| format!(" (default {d})")).unwrap_or_default()
            ),
        });
    }
    if facts.versioning == Versioning::Suspended {
        risks.push(Risk {
            kind: RiskKind::S3VersioningSuspended,
            subject: subject.clone(),
            detail: "versioning is suspended: new writes replace the null version; older versions remain until deleted".into(),
        });
    }
    if facts.versioning != Versioning::NeverEnabled && null_versions {
        risks.push(Risk {
            kind: RiskKind::S3VersioningHistory,
            subject: subject.clone(),
            detail: "null versions show versioning was off at some point: copies made by tools during that time are not tracked by S3".into(),
        });
    }
    if !facts.unsupported.is_empty() {
        risks.push(Risk {
            kind: RiskKind::S3StoreCapabilities,
            subject: subject.clone(),
            detail: format!(
                "the store implements no {}: each object is its only version{}",
                facts
                    .unsupported
                    .iter()
                    .map(Feature::as_str)
                    .collect::<Vec<_>>()
                    .join(", no "),
                if facts.unsupported.contains(&Feature::Replication) {
                    "; whether it copies data elsewhere is not visible through S3"
                } else {
                    ""
                }
            ),
        });
    }
    risks.push(Risk {
        kind: RiskKind::S3Logical,
        subject,
        detail: "object storage: deletion removes versions from the S3 API; when the provider reclaims the bytes is outside our control (logical sanitization)".into(),
    });
    risks
}
