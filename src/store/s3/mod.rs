//! The S3 store: folders of a bucket, every version, delete marker and
//! unfinished upload. `client` is the one place aws-sdk-s3 is called;
//! `trace` lists and decides, `purge` deletes and proves absence,
//! `delegate` hands a folder to S3 Lifecycle, `crypto_erase` destroys a
//! dedicated KMS key.

mod bound;
mod client;
pub mod crypto_erase;
pub mod delegate;
pub mod kms;
pub mod lifecycle;
pub mod purge;
pub mod sample;
pub mod spec;
pub mod trace;
pub mod worm;

pub use client::*;
pub use spec::*;

use super::{Disposing, Kind, Place, Preflight, Rechecking, Setup, Store, Tracing};
use crate::error::{Error, Result};
use crate::journal::{self, Event, Outcome, OutcomeItem};
use crate::manifest::Target;
use crate::plan::{Artifact, Item, Plan, PlanLocation, Risk, S3Location};
use std::collections::{HashMap, HashSet};

/// How this run drives and proves its S3 locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Requests in flight.
    pub concurrency: usize,
    /// The absence proof the custodian approved (the plan's `[s3] verify`).
    pub proof: purge::Proof,
}

impl Run {
    /// Resolve the S3 settings of a run once, before anything is touched:
    /// requests in flight from `flag`, else the plan's `[s3] concurrency`,
    /// else the default; the absence proof from the plan. Out of range is
    /// an input error.
    pub fn of(plan: &Plan, flag: Option<usize>) -> Result<Run> {
        let approved = plan.manifest.s3.clone().unwrap_or_default();
        let settings = Settings {
            concurrency: flag.or(approved.concurrency),
            ..approved
        };
        Ok(Run {
            concurrency: settings.concurrency()?,
            proof: settings.proof()?,
        })
    }
}

/// The S3 store: folders of buckets, one client for the trace or recheck
/// (connected at the first S3 location), one per endpoint at execute.
pub struct Folders {
    settings: Settings,
    run: Option<Run>,
    client: Option<S3>,
}

impl Folders {
    pub fn new(setup: &Setup) -> Self {
        Folders {
            settings: setup.s3.clone(),
            run: setup.s3_run,
            client: None,
        }
    }

    /// The client for trace and recheck, connected the first time.
    fn client(&mut self) -> Result<&S3> {
        if self.client.is_none() {
            self.client = Some(S3::connect(&self.settings)?);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    fn run(&self) -> Run {
        self.run.unwrap_or(Run {
            concurrency: DEFAULT_CONCURRENCY,
            proof: (VerifyMode::default(), DEFAULT_VERIFY_SAMPLE),
        })
    }
}

impl Store for Folders {
    fn kind(&self) -> Kind {
        Kind::S3
    }

    fn trace(&mut self, t: &mut Tracing<'_>, at: Place<'_>) -> Result<(PlanLocation, Vec<Risk>)> {
        let Target::S3 { bucket, prefix } = at.target else {
            return Err(Error::input(format!("{}: not an S3 location", at.loc.uri)));
        };
        // Two locations in one bucket can meet: only theirs remember the
        // paths they planned.
        let shared = t
            .resolved
            .targets
            .iter()
            .filter(|o| matches!(o, Target::S3 { bucket: b, .. } if b == bucket))
            .count()
            > 1;
        let settings = self.settings.clone();
        let criteria = t.criteria.clone();
        let progress = t.progress;
        let c = self.client()?;
        trace::trace_location(
            at.n,
            at.loc,
            (bucket, prefix),
            &criteria,
            (c, &settings),
            progress,
            &mut |item| t.spool(at.n, &item, shared),
        )
    }

    fn trace_finish(&mut self, t: &mut Tracing<'_>) -> Result<Vec<Risk>> {
        // S3 versions are matched by SHA-256 only (checksum or streamed hash).
        Ok(t.sha256_only(Kind::S3, "S3 versions are matched by SHA-256 only"))
    }

    fn preflight(&mut self, p: &Preflight<'_>) -> Result<()> {
        delegate::preflight(p.plan, self.run().concurrency)
    }

    fn dispose(&mut self, d: &Disposing<'_, '_>) -> Result<()> {
        let run = self.run();
        for loc in &d.plan.locations {
            if let Some(s3loc) = loc.s3() {
                dispose_location(d, run, loc.index, s3loc)?;
            }
        }
        Ok(())
    }

    fn recheck(&mut self, r: &mut Rechecking<'_>) -> Result<()> {
        self.recheck_keys(r)?;
        let mut by_key: HashMap<(&str, &str), &str> = HashMap::new();
        let mut emptied: HashSet<(&str, &str)> = HashSet::new();
        for item in &r.gone {
            match item {
                Item::S3Version(v) => {
                    by_key.insert((&v.bucket, &v.key), &v.version_id);
                }
                Item::S3Upload(u) => {
                    by_key.insert((&u.bucket, &u.key), &u.upload_id);
                }
                Item::S3Lifecycle(l) => {
                    emptied.insert((&l.bucket, &l.prefix));
                }
                _ => {}
            }
        }
        for (pl, loc) in r.locations(Kind::S3) {
            let Some(s) = pl.s3() else { continue };
            let settings = self.settings.clone();
            let criteria = r.criteria.clone();
            let c = self.client()?;
            let mut items = Vec::new();
            trace::trace_location(
                pl.index,
                loc,
                (&s.bucket, &s.prefix),
                &criteria,
                (c, &settings),
                r.progress,
                &mut |i| {
                    items.push(i);
                    Ok(())
                },
            )?;
            for item in &items {
                let again = match item {
                    Item::S3Version(v) => {
                        by_key.get(&(v.bucket.as_str(), v.key.as_str())).map(|old| {
                            let same = if *old == v.version_id {
                                " (the disposed version)"
                            } else {
                                ""
                            };
                            format!("{}: the key holds an object again{same}", item.path())
                        })
                    }
                    Item::S3Lifecycle(l) => {
                        let n = l.versions + l.delete_markers + l.uploads;
                        (n > 0 && emptied.contains(&(l.bucket.as_str(), l.prefix.as_str())))
                            .then(|| format!(
                                "{}: the emptied folder holds {} version(s), {} delete marker(s) and {} upload(s) again",
                                item.path(),
                                l.versions,
                                l.delete_markers,
                                l.uploads
                            ))
                    }
                    Item::S3Upload(u) => by_key
                        .contains_key(&(u.bucket.as_str(), u.key.as_str()))
                        .then(|| {
                            format!("{}: an unfinished upload to a disposed key", item.path())
                        }),
                    _ => None,
                };
                match again {
                    Some(line) => r.found_again.push(line),
                    None if matches!(item, Item::S3Version(_)) => {
                        r.copy_of(loc, &item.path(), item.sha256())
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }
}

impl Folders {
    /// KMS keys destroyed by cryptographic erase must stay gone.
    fn recheck_keys(&mut self, r: &mut Rechecking<'_>) -> Result<()> {
        let erased: Vec<String> = r
            .gone
            .iter()
            .filter_map(|i| match i {
                Item::KmsKey(k) => Some(k.key_arn.clone()),
                _ => None,
            })
            .collect();
        for arn in erased {
            let c = self.client()?;
            match kms::describe_key(c, &arn) {
                Ok(None) => {}
                Ok(Some(k)) => r.found_again.push(format!(
                    "kms:{arn}: the erased KMS key exists again ({}; was its deletion cancelled?)",
                    k.state
                )),
                Err(e) => r
                    .found_again
                    .push(format!("kms:{arn}: cannot check that the key is gone: {e}")),
            }
        }
        Ok(())
    }
}

/// One S3 location, against the endpoint recorded in the plan: purge its
/// versions, markers and uploads, install or check its S3 Lifecycle rules,
/// then destroy its KMS keys once the versions are purged.
fn dispose_location(d: &Disposing<'_, '_>, run: Run, index: u32, s3loc: &S3Location) -> Result<()> {
    let (ctx, plan, spool, replay) = (d.ctx, d.plan, d.spool, d.replay);
    let undecided = |a: &&Artifact| replay.state.get(&a.id).is_none_or(|s| s.outcome.is_none());
    let arts: Vec<&Artifact> = plan
        .artifacts
        .iter()
        .filter(|a| a.location == index)
        .collect();
    if spool.count(index).0 == 0 && !arts.iter().any(undecided) {
        return Ok(());
    }
    let (keys, arts): (Vec<&Artifact>, Vec<&Artifact>) = arts
        .into_iter()
        .partition(|a| matches!(a.item, Item::KmsKey(_)));
    let (delegated, uploads): (Vec<&Artifact>, Vec<&Artifact>) = arts
        .into_iter()
        .partition(|a| matches!(a.item, Item::S3Lifecycle(_)));
    let client = match S3::connect_exact(&s3loc.endpoint, Some(run.concurrency)) {
        Ok(c) => c,
        Err(e) => {
            let held: Vec<&Artifact> = uploads
                .iter()
                .chain(&delegated)
                .chain(&keys)
                .copied()
                .filter(undecided)
                .collect();
            return unreachable_store(d, index, &held, &format!("cannot reach S3: {e}"));
        }
    };
    purge::location(
        ctx,
        &client,
        (index, s3loc),
        (spool, &uploads),
        replay,
        run.proof,
    )?;
    for a in delegated {
        if let Item::S3Lifecycle(l) = &a.item
            && undecided(&a)
        {
            let st = d.state(a.id);
            delegate::folder(ctx, &client, (index, s3loc.facts.object_lock), a, l, &st)?;
        }
    }
    // Cryptographic erase, once the versions are purged.
    if keys.is_empty() {
        return Ok(());
    }
    let mut recheck = crypto_erase::Recheck::new(
        spool,
        (index, s3loc),
        journal::Replay::of_file(&ctx.journal_path(), |_| false)?,
    );
    for a in keys {
        if let Item::KmsKey(k) = &a.item
            && undecided(&a)
        {
            let st = d.state(a.id);
            let scheduled = replay.kms_scheduled.contains(&a.id);
            crypto_erase::key(ctx, &client, (a, k), &st, scheduled, &mut recheck)?;
        }
    }
    Ok(())
}

/// A store that cannot be reached: every undecided artifact of the
/// location (held or spooled) fails with the reason, journaled in records
/// of at most 10,000.
fn unreachable_store(
    d: &Disposing<'_, '_>,
    index: u32,
    held: &[&Artifact],
    why: &str,
) -> Result<()> {
    let failed = |id: u32| OutcomeItem {
        id,
        outcome: Outcome::Failed,
        reason: Some(why.to_string()),
    };
    let mut items: Vec<OutcomeItem> = held.iter().map(|a| failed(a.id)).collect();
    for a in d.spool.location(index) {
        let a = a?;
        if d.replay.outcome(a.id).is_none() {
            items.push(failed(a.id));
            if items.len() >= 10_000 {
                d.ctx.append(Event::Outcomes {
                    items: std::mem::take(&mut items),
                })?;
            }
        }
    }
    d.ctx.append(Event::Outcomes { items })
}
