//! Handing a GCS folder to the bucket's lifecycle rules. GCS rules have no
//! IDs: decom's are known by their exact content (the approved JSON).
//! Execute merges them into the bucket's rules, sending every other rule
//! back exactly as the store wrote it, under the bucket's metageneration
//! as a precondition, and reads them back; the artifact stays pending
//! until a later `execute --resume` lists the folder empty (and nothing
//! soft-deleted left), then decom's rules are taken out again.

use super::client::{Gcs, Listing};
use crate::error::Result;
use crate::journal::{AbsenceProof, ArtifactState, Event, Outcome};
use crate::plan::{Artifact, GcsLifecycle, GcsLocation};
use crate::store::Ctx;

/// Attempts at a merge that another writer's change interrupts.
const MERGE_ATTEMPTS: usize = 5;

fn same_rule(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The bucket's rules now, with `ours` added (`add`) or taken out, every
/// other rule byte for byte; written under the bucket's metageneration
/// and read back. `Err(why)`: the store refused or did not keep them.
fn merge(
    gcs: &Gcs,
    bucket: &str,
    ours: &[String],
    add: bool,
) -> Result<std::result::Result<bool, String>> {
    for _ in 0..MERGE_ATTEMPTS {
        let b = gcs.bucket(bucket)?;
        let meta = b.metageneration.clone();
        let existing: Vec<String> = b
            .lifecycle
            .map(|l| l.rule.iter().map(|r| r.get().to_string()).collect())
            .unwrap_or_default();
        let has = |r: &String| existing.iter().any(|e| same_rule(e, r));
        let mut rules: Vec<&str> = existing
            .iter()
            .filter(|e| add || !ours.iter().any(|o| same_rule(e, o)))
            .map(String::as_str)
            .collect();
        if add {
            if ours.iter().all(has) {
                return Ok(Ok(false));
            }
            rules.extend(ours.iter().filter(|r| !has(r)).map(String::as_str));
        } else if !ours.iter().any(has) {
            return Ok(Ok(false));
        }
        if !gcs.set_lifecycle(bucket, &rules, meta.as_deref())? {
            continue;
        }
        let back = gcs.bucket(bucket)?;
        let now: Vec<String> = back
            .lifecycle
            .map(|l| l.rule.iter().map(|r| r.get().to_string()).collect())
            .unwrap_or_default();
        let kept = ours.iter().all(|r| now.iter().any(|e| same_rule(e, r)));
        if kept != add {
            return Ok(Err(format!(
                "gs://{bucket}: the store answered the lifecycle change but does not show it (it may not implement bucket lifecycle)"
            )));
        }
        return Ok(Ok(true));
    }
    Ok(Err(format!(
        "gs://{bucket}: the bucket changed under every one of {MERGE_ATTEMPTS} attempts to merge the lifecycle rules"
    )))
}

/// Install, check on, or complete one delegated folder; journal its outcome.
pub fn folder(
    ctx: &Ctx<'_>,
    gcs: &Gcs,
    (pl, mloc, g): (
        &crate::plan::PlanLocation,
        &crate::manifest::Location,
        &GcsLocation,
    ),
    a: &Artifact,
    l: &GcsLifecycle,
    st: &ArtifactState,
) -> Result<()> {
    if st.started.is_none() {
        ctx.append(Event::Started { ids: vec![a.id] })?;
    }
    let installed = match merge(gcs, &l.bucket, &l.rules, true) {
        Ok(Ok(new)) => new,
        Ok(Err(why)) => return ctx.outcome(a, Outcome::Failed, why),
        Err(e) => {
            return ctx.outcome(
                a,
                Outcome::Failed,
                format!("cannot install the lifecycle rules: {e}"),
            );
        }
    };
    if installed {
        ctx.append(Event::LifecycleInstalled {
            id: a.id,
            rules: l.rules.clone(),
        })?;
    }
    let at = (l.bucket.as_str(), g.prefix.as_str());
    let listed = super::trace::generations(gcs, mloc, at, Listing::Generations).and_then(
        |(left, p)| match g.facts.soft_delete_seconds.is_some_and(|s| s > 0) {
            true => super::trace::generations(gcs, mloc, at, Listing::SoftDeleted)
                .map(|(soft, q)| (left, soft, p + q)),
            false => Ok((left, Vec::new(), p)),
        },
    );
    let (left, soft, pages) = match listed {
        Ok(x) => x,
        Err(e) => return ctx.outcome(a, Outcome::Pending, format!("cannot list the folder: {e}")),
    };
    if left.is_empty() && soft.is_empty() {
        match merge(gcs, &l.bucket, &l.rules, false) {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => {
                return ctx.outcome(
                    a,
                    Outcome::Failed,
                    format!("the folder is empty, but {why}"),
                );
            }
            Err(e) => {
                return ctx.outcome(
                    a,
                    Outcome::Pending,
                    format!(
                        "the folder is empty, but decom's rules could not be taken out yet: {e}"
                    ),
                );
            }
        }
        ctx.append(Event::LifecycleRemoved {
            id: a.id,
            rules: l.rules.clone(),
        })?;
        ctx.append(Event::AbsenceProof(AbsenceProof {
            location: pl.index,
            mode: crate::store::s3::VerifyMode::Sample,
            versions: l.generations,
            listing_pages: pages,
            heads: 0,
            contradicted: 0,
            uploads: 0,
            soft_delete: Some(match g.facts.soft_delete_seconds {
                None => "unknown: the store reports no soft-delete policy".to_string(),
                Some(0) => "off".to_string(),
                Some(_) => "0 soft-deleted generation(s) listed".to_string(),
            }),
        }))?;
        return ctx.outcome(a, Outcome::Disposed, None);
    }
    let held = left
        .iter()
        .filter(|o| {
            o.temporary_hold
                || o.event_based_hold
                || o.retention.is_some()
                || o.retention_expiration_time.is_some()
        })
        .count();
    if soft.is_empty() && held == left.len() {
        return ctx.outcome(
            a,
            Outcome::Retained,
            format!("{held} generation(s) remain, all under a hold or retention: lifecycle rules do not delete them"),
        );
    }
    let until = soft
        .iter()
        .filter_map(|o| o.hard_delete_time.as_deref())
        .max();
    ctx.outcome(
        a,
        Outcome::Pending,
        format!(
            "{} generation(s) remain and {} soft-deleted{}; the bucket's lifecycle rules delete them; run execute --resume again later",
            left.len(),
            soft.len(),
            until.map(|t| format!(" (restorable until {t})")).unwrap_or_default()
        ),
    )
}
