//! Purging a GCS location: re-identify every planned generation against a
//! listing of the folder, delete by generation with the store enforcing
//! the approved metageneration (and generation, while live) as
//! preconditions, then prove absence: a complete listing of every
//! generation shows none of them, and sampled GETs by generation answer
//! 404. On a bucket with soft delete, a purged generation stays pending
//! until a listing of soft-deleted objects no longer shows it.

use super::client::{Delete, Deleted, Gcs, Listing, Object};
use super::spec::VerifyMode;
use crate::error::{Error, Result};
use crate::journal::{AbsenceProof, Event, Outcome, OutcomeItem};
use crate::plan::{Artifact, GcsGeneration, GcsLocation, Item};
use crate::store::{Ctx, Disposing};
use std::collections::{HashMap, HashSet};

/// What happens to one planned generation, decided against the listing.
enum Decision {
    Settled(Outcome, String),
    /// Delete it with these preconditions.
    Delete(Delete),
    /// An earlier run may have deleted it: prove it gone.
    Prove,
}

/// The listing of the location at execute, by name.
struct Listed {
    by_name: HashMap<String, Vec<Object>>,
    /// Soft-deleted generations and their hard-delete times (only where the
    /// bucket's soft-delete policy is on).
    soft: HashMap<(String, String), String>,
    pages: u64,
}

impl Listed {
    fn of(gcs: &Gcs, mloc: &crate::manifest::Location, g: &GcsLocation) -> Result<Listed> {
        let at = (g.bucket.as_str(), g.prefix.as_str());
        let (objects, mut pages) = super::trace::generations(gcs, mloc, at, Listing::Generations)?;
        let mut by_name: HashMap<String, Vec<Object>> = HashMap::new();
        for o in objects {
            by_name.entry(o.name.clone()).or_default().push(o);
        }
        let mut soft = HashMap::new();
        if g.facts.soft_delete_seconds.is_some_and(|s| s > 0) {
            let (objects, p) = super::trace::generations(gcs, mloc, at, Listing::SoftDeleted)?;
            pages += p;
            for o in objects {
                soft.insert(
                    (o.name, o.generation),
                    o.hard_delete_time.unwrap_or_default(),
                );
            }
        }
        Ok(Listed {
            by_name,
            soft,
            pages,
        })
    }

    fn find(&self, name: &str, generation: &str) -> Option<&Object> {
        self.by_name
            .get(name)?
            .iter()
            .find(|o| o.generation == generation)
    }
}

/// Purge one location's undecided generations and prove them gone.
pub fn location(
    d: &Disposing<'_, '_>,
    gcs: &Gcs,
    pl: &crate::plan::PlanLocation,
    g: &GcsLocation,
    proof: (VerifyMode, usize),
) -> Result<()> {
    let ctx = d.ctx;
    let arts: Vec<(&Artifact, &GcsGeneration)> = d
        .undecided(|i| matches!(i, Item::GcsGeneration(_)))
        .into_iter()
        .filter(|a| a.location == pl.index)
        .filter_map(|a| match &a.item {
            Item::GcsGeneration(x) => Some((a, x)),
            _ => None,
        })
        .collect();
    if arts.is_empty() {
        return Ok(());
    }
    let mloc = d.plan.manifest_location(pl);
    // The soft-delete policy as the bucket has it now: one turned on
    // since approval keeps what this run deletes.
    let g = &match gcs.bucket(&g.bucket) {
        Ok(b) => {
            let mut now = g.clone();
            now.facts.soft_delete_seconds = super::trace::facts(&b)
                .soft_delete_seconds
                .or(g.facts.soft_delete_seconds);
            now
        }
        Err(e) => {
            let why = format!("cannot read the bucket: {e}");
            let all: Vec<_> = arts
                .iter()
                .map(|(a, _)| (*a, Outcome::Failed, why.clone()))
                .collect();
            return settle(ctx, all);
        }
    };
    let listed = match Listed::of(gcs, mloc, g) {
        Ok(l) => l,
        Err(e) => {
            let why = format!("cannot list the location: {e}");
            let all: Vec<_> = arts
                .iter()
                .map(|(a, _)| (*a, Outcome::Failed, why.clone()))
                .collect();
            return settle(ctx, all);
        }
    };
    // Every generation the plan lists per name, decided or not.
    let mut planned: HashMap<&str, HashSet<&str>> = HashMap::new();
    for a in &d.plan.artifacts {
        if let Item::GcsGeneration(x) = &a.item
            && a.location == pl.index
        {
            planned.entry(&x.name).or_default().insert(&x.generation);
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let traced = crate::util::parse_rfc3339(&d.plan.created).ok();
    let mut settled = Vec::new();
    let (mut doomed, mut prove): (Vec<(&Artifact, &GcsGeneration, Delete)>, Vec<_>) =
        (Vec::new(), Vec::new());
    for (a, x) in &arts {
        let started = d.state(a.id).started.is_some();
        match decide(x, &listed, &planned, started, (now, traced)) {
            Decision::Settled(o, why) => settled.push((*a, o, why)),
            Decision::Delete(del) => doomed.push((*a, *x, del)),
            Decision::Prove => prove.push((*a, *x)),
        }
    }
    settle(ctx, settled)?;
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    for ids in doomed.chunks(10_000) {
        ctx.append(Event::Started {
            ids: ids.iter().map(|(a, _, _)| a.id).collect(),
        })?;
    }
    let deletes: Vec<Delete> = doomed.iter().map(|(_, _, del)| del.clone()).collect();
    let mut answers: Vec<Option<Deleted>> = vec![None; deletes.len()];
    gcs.delete_all(&g.bucket, &deletes, &mut |i, ans| answers[i] = Some(ans));
    let mut refused = Vec::new();
    for ((a, x, _), ans) in doomed.into_iter().zip(answers) {
        match ans.unwrap_or(Deleted::Failed("no answer".into())) {
            Deleted::Done | Deleted::NotFound => prove.push((a, x)),
            Deleted::Changed(m) => refused.push((
                a,
                Outcome::SkippedChanged,
                format!("the store refused the delete, a precondition no longer holds ({m}): it changed since approval"),
            )),
            Deleted::Kept(m) => refused.push((a, Outcome::Retained, format!("the store keeps it: {m}"))),
            Deleted::Failed(m) => refused.push((a, Outcome::Failed, format!("delete failed: {m}"))),
        }
    }
    settle(ctx, refused)?;
    if prove.is_empty() {
        return Ok(());
    }
    prove_absence(ctx, gcs, (pl, mloc, g), prove, proof)
}

/// Re-identify one planned generation against the listing.
fn decide(
    x: &GcsGeneration,
    listed: &Listed,
    planned: &HashMap<&str, HashSet<&str>>,
    started: bool,
    (now, traced): (time::OffsetDateTime, Option<time::OffsetDateTime>),
) -> Decision {
    let Some(o) = listed.find(&x.name, &x.generation) else {
        if let Some(t) = listed.soft.get(&(x.name.clone(), x.generation.clone())) {
            return match started {
                true => Decision::Settled(Outcome::Pending, pending_why(t)),
                false => Decision::Settled(
                    Outcome::SkippedChanged,
                    format!(
                        "no longer exists: it was deleted since approval (soft-deleted until {t})"
                    ),
                ),
            };
        }
        return match started {
            true => Decision::Prove,
            false => Decision::Settled(Outcome::SkippedChanged, "no longer exists".into()),
        };
    };
    // Generations the plan does not list that were written after trace
    // (older ones were left out on purpose: another content in a hash
    // location, a glob).
    let mine = planned.get(x.name.as_str());
    let newer: Vec<&str> = listed.by_name[&x.name]
        .iter()
        .filter(|o| !mine.is_some_and(|m| m.contains(o.generation.as_str())))
        .filter(|o| written_after(o, traced))
        .map(|o| o.generation.as_str())
        .collect();
    if let Some(n) = newer.first() {
        return Decision::Settled(
            Outcome::SkippedChanged,
            format!(
                "the name has {} generation(s) written since approval, e.g. {n}",
                newer.len()
            ),
        );
    }
    let meta = o.metageneration.as_deref().unwrap_or("1");
    if meta != x.metageneration {
        return Decision::Settled(
            Outcome::SkippedChanged,
            format!(
                "metageneration {meta} differs from the approved {} (its holds or metadata changed)",
                x.metageneration
            ),
        );
    }
    // Holds and object retention move the metageneration; a bucket
    // retention policy set since approval does not: the listing says.
    let mut held = x.clone();
    held.temporary_hold |= o.temporary_hold;
    held.event_based_hold |= o.event_based_hold;
    if o.retention_expiration_time.is_some() {
        held.retained_until = o.retention_expiration_time.clone();
    }
    if let Some(why) = held.kept(now) {
        return Decision::Settled(Outcome::Retained, format!("{why}: no delete can remove it"));
    }
    Decision::Delete(Delete {
        name: x.name.clone(),
        generation: x.generation.clone(),
        if_generation_match: (o.time_deleted.is_none()).then(|| x.generation.clone()),
        if_metageneration_match: Some(x.metageneration.clone()),
    })
}

/// Whether a generation was written after `traced` (unknown: yes).
fn written_after(o: &Object, traced: Option<time::OffsetDateTime>) -> bool {
    let created = o
        .time_created
        .as_deref()
        .and_then(|t| crate::util::parse_rfc3339(t).ok());
    match (created, traced) {
        (Some(c), Some(t)) => c >= t,
        _ => true,
    }
}

fn pending_why(hard_delete_time: &str) -> String {
    format!(
        "soft-deleted: the store keeps it restorable until {hard_delete_time}; execute --resume after that time completes the disposal"
    )
}

/// Journal and report outcomes, one flush for all.
fn settle(ctx: &Ctx<'_>, items: Vec<(&Artifact, Outcome, String)>) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut out = Vec::with_capacity(items.len());
    for (a, outcome, why) in items {
        let reason = (!why.is_empty()).then_some(why);
        ctx.report(a, outcome, reason.as_ref());
        out.push(OutcomeItem {
            id: a.id,
            outcome,
            reason,
        });
    }
    for chunk in out.chunks(10_000) {
        ctx.append(Event::Outcomes {
            items: chunk.to_vec(),
        })?;
    }
    Ok(())
}

/// The proof: a complete listing of every generation shows none of them,
/// and GETs by generation (a sample, or each) answer 404. Where the
/// bucket's soft delete is on, the soft-deleted listing decides between
/// disposed and pending; where the store reports no policy, that is said.
fn prove_absence(
    ctx: &Ctx<'_>,
    gcs: &Gcs,
    (pl, mloc, g): (
        &crate::plan::PlanLocation,
        &crate::manifest::Location,
        &GcsLocation,
    ),
    prove: Vec<(&Artifact, &GcsGeneration)>,
    (mode, sample): (VerifyMode, usize),
) -> Result<()> {
    let fail_all = |why: String| {
        let all: Vec<_> = prove
            .iter()
            .map(|(a, _)| (*a, Outcome::Failed, why.clone()))
            .collect();
        settle(ctx, all)
    };
    let listed = match Listed::of(gcs, mloc, g) {
        Ok(l) => l,
        Err(e) => return fail_all(format!("absence not proven: the proof listing failed: {e}")),
    };
    // The sample is drawn from what the listing calls gone.
    let mut asks: Vec<(String, String)> = prove
        .iter()
        .filter(|(_, x)| listed.find(&x.name, &x.generation).is_none())
        .map(|(_, x)| (x.name.clone(), x.generation.clone()))
        .collect();
    if mode == VerifyMode::Sample && asks.len() > sample {
        use rand::seq::SliceRandom;
        asks.shuffle(&mut rand::thread_rng());
        asks.truncate(sample);
    }
    let heads = asks.len() as u64;
    let contradicted: Vec<String> = gcs
        .still_there(&g.bucket, asks)
        .into_iter()
        .filter(|(_, r)| !matches!(r, Ok(false)))
        .map(|((n, gn), r)| match r {
            Ok(_) => format!("gs://{}/{n}#{gn} still answers a GET", g.bucket),
            Err(e) => format!("gs://{}/{n}#{gn}: no answer ({e})", g.bucket),
        })
        .collect();
    let soft = match g.facts.soft_delete_seconds {
        None => Some("unknown: the store reports no soft-delete policy".to_string()),
        Some(0) => None,
        Some(_) => Some(format!(
            "{} soft-deleted generation(s) listed",
            listed.soft.len()
        )),
    };
    ctx.append(Event::AbsenceProof(AbsenceProof {
        location: pl.index,
        mode: match mode {
            VerifyMode::Sample => crate::store::s3::VerifyMode::Sample,
            VerifyMode::Each => crate::store::s3::VerifyMode::Each,
        },
        versions: prove.len() as u64,
        listing_pages: listed.pages,
        heads,
        contradicted: contradicted.len() as u64,
        uploads: 0,
        soft_delete: soft,
    }))?;
    let mut out = Vec::new();
    for (a, x) in prove {
        let key = (x.name.clone(), x.generation.clone());
        let (outcome, why) = if listed.find(&x.name, &x.generation).is_some() {
            (Outcome::Failed, "still listed after its delete".to_string())
        } else if let Some(c) = contradicted.first() {
            (
                Outcome::Failed,
                format!(
                    "absence not proven: {c} although the listing no longer shows it; the listing is not trusted ({} such)",
                    contradicted.len()
                ),
            )
        } else if let Some(t) = listed.soft.get(&key) {
            (Outcome::Pending, pending_why(t))
        } else if g.facts.soft_delete_seconds.is_none() {
            (
                Outcome::Disposed,
                "absent from the listing of every generation; whether the store keeps a soft-deleted copy is unknown (it reports no soft-delete policy)".to_string(),
            )
        } else {
            (Outcome::Disposed, String::new())
        };
        out.push((a, outcome, why));
    }
    settle(ctx, out)
}
