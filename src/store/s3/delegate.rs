//! Delegating a folder to S3 Lifecycle, for prefixes too large for one
//! machine. The custodian approved the exact rules (in the plan's
//! `S3Lifecycle` artifact). Execute merges them into the bucket's lifecycle
//! configuration without changing any other rule, journals that, and leaves
//! the artifact **pending**; every later `execute --resume` lists the folder:
//! while anything remains it stays pending (or, when only versions under
//! retention or legal hold remain, **retained**); once the folder is empty
//! it removes decom's rules, journals the proof and the artifact is
//! disposed.
//!
//! [`preflight`] refuses, before anything is touched, a bucket with MFA
//! delete or one that already holds a different rule under decom's ID.

use crate::error::{Error, Result};
use crate::journal::{AbsenceProof, ArtifactState, Event, Outcome};
use crate::plan::{Artifact, Item, LifecycleRule, Plan, S3Lifecycle};
use crate::store::Ctx;
use crate::store::s3::{S3, Scope, VerifyMode, lifecycle};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRuleFilter,
    NoncurrentVersionExpiration,
};

type SdkRule = aws_sdk_s3::types::LifecycleRule;

/// The lifecycle artifacts of a plan, with their location's endpoint.
fn delegated(plan: &Plan) -> impl Iterator<Item = (&crate::plan::S3Location, &S3Lifecycle)> {
    plan.artifacts.iter().filter_map(|a| match &a.item {
        Item::S3Lifecycle(l) => plan.location(a.location).s3().map(|loc| (loc, l)),
        _ => None,
    })
}

/// Before anything is touched: no lifecycle delegation on a bucket with
/// MFA delete, and no rule of another content under decom's rule IDs.
pub fn preflight(plan: &Plan, concurrency: usize) -> Result<()> {
    for (loc, l) in delegated(plan) {
        let s3 = S3::connect_exact(&loc.endpoint, Some(concurrency))?;
        if lifecycle::mfa_delete(&s3, &l.bucket)? {
            return Err(Error::refused(format!(
                "s3://{}: MFA delete is enabled; decom does not install lifecycle rules that would bypass it (dispose of this folder with method = \"purge\")",
                l.bucket
            )));
        }
        for existing in lifecycle::rules(&s3, &l.bucket)? {
            let Some(ours) = l
                .rules
                .iter()
                .find(|r| Some(r.id.as_str()) == existing.id())
            else {
                continue;
            };
            if from_sdk(&existing).as_ref() != Some(ours) {
                return Err(Error::refused(format!(
                    "s3://{}: the bucket already has a lifecycle rule with ID {:?} that differs from the approved one; remove or rename it first",
                    l.bucket, ours.id
                )));
            }
        }
    }
    Ok(())
}

/// Install, check on, or complete one delegated folder, and journal its outcome.
pub fn folder(
    ctx: &Ctx,
    s3: &S3,
    (index, object_lock): (u32, bool),
    a: &Artifact,
    l: &S3Lifecycle,
    st: &ArtifactState,
) -> Result<()> {
    if st.started.is_none() {
        ctx.append(Event::Started { ids: vec![a.id] })?;
    }
    if let Err(why) = install(ctx, s3, a, l)? {
        return ctx.outcome(a, Outcome::Failed, why);
    }
    // What is left in the folder.
    let scope = Scope::new(&l.prefix);
    let (mut versions, mut markers, mut uploads) = (Vec::new(), 0u64, 0u64);
    let listing = s3
        .list_versions(&l.bucket, &scope, |v| {
            if v.is_marker {
                markers += 1
            } else {
                versions.push(v)
            }
        })
        .and_then(|p| Ok(p + s3.list_uploads(&l.bucket, &scope, |_| uploads += 1)?));
    let pages = match listing {
        Ok(p) => p,
        Err(e) => {
            return ctx.outcome(a, Outcome::Pending, format!("cannot list the folder: {e}"));
        }
    };
    if versions.is_empty() && markers == 0 && uploads == 0 {
        return complete(ctx, s3, index, (a, l), pages);
    }
    let left = format!(
        "{} version(s), {markers} delete marker(s) and {uploads} upload(s) remain",
        versions.len()
    );
    // Object Lock wins over lifecycle: only locked versions left is final.
    if object_lock && markers == 0 && uploads == 0 && all_locked(s3, &l.bucket, versions) {
        return ctx.outcome(
            a,
            Outcome::Retained,
            format!(
                "{left}, all under retention or legal hold: Object Lock wins over the lifecycle rules, which expire them once it ends"
            ),
        );
    }
    ctx.outcome(
        a,
        Outcome::Pending,
        format!(
            "{left}; S3 Lifecycle expires them (rules {}); run execute --resume again later",
            l.rules
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// Merge the approved rules into the bucket's configuration, keeping every
/// other rule exactly as the store returned it; journal what was
/// installed. `Ok(Err(why))`: the store refused.
fn install(
    ctx: &Ctx,
    s3: &S3,
    a: &Artifact,
    l: &S3Lifecycle,
) -> Result<std::result::Result<(), String>> {
    let rules = match lifecycle::rules(s3, &l.bucket) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let missing: Vec<&LifecycleRule> = l
        .rules
        .iter()
        .filter(|r| !rules.iter().any(|e| e.id() == Some(r.id.as_str())))
        .collect();
    if missing.is_empty() {
        return Ok(Ok(()));
    }
    let ids: Vec<String> = l.rules.iter().map(|r| r.id.clone()).collect();
    let mut merged = rules;
    merged.extend(missing.iter().map(|r| to_sdk(r)));
    if let Err(e) = lifecycle::put_rules(s3, &l.bucket, merged) {
        return Ok(Err(e.to_string()));
    }
    ctx.append(Event::LifecycleInstalled {
        id: a.id,
        rules: ids.clone(),
    })?;
    ctx.progress.item(&format!(
        "installed lifecycle rules {} on s3://{}/{}",
        ids.join(", "),
        l.bucket,
        l.prefix
    ));
    Ok(Ok(()))
}

/// The folder is empty: remove decom's rules (every other rule stays),
/// journal the proof and the disposal.
fn complete(
    ctx: &Ctx,
    s3: &S3,
    index: u32,
    (a, l): (&Artifact, &S3Lifecycle),
    pages: u64,
) -> Result<()> {
    let ids: Vec<String> = l.rules.iter().map(|r| r.id.clone()).collect();
    let kept: Vec<SdkRule> = match lifecycle::rules(s3, &l.bucket) {
        Ok(r) => r
            .into_iter()
            .filter(|r| !r.id().is_some_and(|id| ids.iter().any(|i| i == id)))
            .collect(),
        Err(e) => return ctx.outcome(a, Outcome::Pending, e.to_string()),
    };
    if let Err(e) = lifecycle::put_rules(s3, &l.bucket, kept) {
        return ctx.outcome(
            a,
            Outcome::Pending,
            format!("the folder is empty, but removing the rules failed: {e}"),
        );
    }
    ctx.append(Event::LifecycleRemoved {
        id: a.id,
        rules: ids,
    })?;
    ctx.append(Event::AbsenceProof(AbsenceProof {
        location: index,
        mode: VerifyMode::Sample,
        versions: l.versions + l.delete_markers,
        listing_pages: pages,
        heads: 0,
        contradicted: 0,
        soft_delete: None,
        uploads: l.uploads,
    }))?;
    ctx.outcome(a, Outcome::Disposed, None)
}

/// Whether every version left is under a legal hold or a retention still
/// in force (a HEAD each, within the request bound).
fn all_locked(s3: &S3, bucket: &str, versions: Vec<crate::store::s3::Listed>) -> bool {
    let now = crate::sign::now_unix();
    let locked = s3.bounded(versions, |v| async move {
        let h = s3
            .client()
            .head_object()
            .bucket(bucket)
            .key(&v.key)
            .version_id(&v.version_id)
            .send()
            .await;
        h.is_ok_and(|h| {
            h.object_lock_legal_hold_status()
                .is_some_and(|s| *s == aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
                || h.object_lock_retain_until_date()
                    .is_some_and(|t| t.secs() > now)
        })
    });
    locked.iter().all(|l| *l)
}

/// The SDK value of one approved rule.
fn to_sdk(r: &LifecycleRule) -> SdkRule {
    let expiration = if r.expired_object_delete_marker {
        Some(
            LifecycleExpiration::builder()
                .expired_object_delete_marker(true)
                .build(),
        )
    } else {
        r.expiration_days
            .map(|d| LifecycleExpiration::builder().days(d).build())
    };
    SdkRule::builder()
        .id(&r.id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build())
        .set_expiration(expiration)
        .set_noncurrent_version_expiration(r.noncurrent_days.map(|d| {
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(d)
                .build()
        }))
        .set_abort_incomplete_multipart_upload(r.abort_incomplete_days.map(|d| {
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(d)
                .build()
        }))
        .build()
        .expect("id, status and filter are set")
}

/// An existing rule read back, in the approved form (None: not one decom
/// could have written).
fn from_sdk(r: &SdkRule) -> Option<LifecycleRule> {
    if r.status() != &ExpirationStatus::Enabled {
        return None;
    }
    // The rule's filter prefix (the old top-level Prefix element is not
    // one decom writes, so such a rule is never decom's).
    let prefix = r.filter().and_then(|f| f.prefix()).unwrap_or_default();
    Some(LifecycleRule {
        id: r.id()?.to_string(),
        prefix: prefix.to_string(),
        expiration_days: r.expiration().and_then(|e| e.days()),
        expired_object_delete_marker: r
            .expiration()
            .and_then(|e| e.expired_object_delete_marker())
            .unwrap_or(false),
        noncurrent_days: r
            .noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days()),
        abort_incomplete_days: r
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
    })
}
