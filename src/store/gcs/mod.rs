//! The Google Cloud Storage store: folders of a bucket, every generation.
//! `client` is the one place the JSON API is called; `trace` lists and
//! decides, `purge` deletes by generation and proves absence (soft delete
//! told as pending), `lifecycle` hands a folder to the bucket's rules.

pub mod batch;
mod client;
pub mod lifecycle;
pub mod purge;
pub mod sample;
pub mod spec;
pub mod trace;

pub use client::*;
pub use spec::Settings;

use super::{Disposing, Kind, Place, Preflight, Rechecking, Setup, Store, Tracing};
use crate::error::{Error, Result};
use crate::journal::Outcome;
use crate::manifest::{MatchMode, Target};
use crate::plan::{Artifact, Item, PlanLocation, Risk};
use std::collections::HashMap;

/// The GCS store: one client for trace or recheck (connected at the first
/// GCS location), one per location at execute (its recorded endpoint).
pub struct Buckets {
    settings: Settings,
    client: Option<Gcs>,
}

impl Buckets {
    pub fn new(setup: &Setup) -> Self {
        Buckets {
            settings: setup.gcs.clone(),
            client: None,
        }
    }

    fn client(&mut self) -> Result<&Gcs> {
        if self.client.is_none() {
            self.client = Some(Gcs::connect(&self.settings)?);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }
}

impl Store for Buckets {
    fn kind(&self) -> Kind {
        Kind::Gcs
    }

    fn trace(&mut self, t: &mut Tracing<'_>, at: Place<'_>) -> Result<(PlanLocation, Vec<Risk>)> {
        let Target::Gcs { bucket, prefix } = at.target else {
            return Err(Error::input(format!("{}: not a GCS location", at.loc.uri)));
        };
        let settings = self.settings.clone();
        let criteria = t.criteria.clone();
        let progress = t.progress;
        let gcs = self.client()?;
        trace::trace_location(
            at.n,
            at.loc,
            (bucket, prefix),
            &criteria,
            (gcs, &settings),
            progress,
            &mut |item| {
                t.hold(at.n, item);
                Ok(())
            },
        )
    }

    fn trace_finish(&mut self, t: &mut Tracing<'_>) -> Result<Vec<Risk>> {
        Ok(t.sha256_only(
            Kind::Gcs,
            "GCS generations are matched by SHA-256 only (streamed; the store's MD5 and CRC32C identify no component)",
        ))
    }

    fn preflight(&mut self, _p: &Preflight<'_>) -> Result<()> {
        self.settings.check()
    }

    fn dispose(&mut self, d: &Disposing<'_, '_>) -> Result<()> {
        let proof = self.settings.proof()?;
        let concurrency = self.settings.concurrency()?;
        for pl in &d.plan.locations {
            let Some(g) = pl.gcs() else { continue };
            let undecided: Vec<&Artifact> = d
                .undecided(|i| matches!(i, Item::GcsGeneration(_) | Item::GcsLifecycle(_)))
                .into_iter()
                .filter(|a| a.location == pl.index)
                .collect();
            if undecided.is_empty() {
                continue;
            }
            let gcs = match Gcs::connect_exact(&g.endpoint, concurrency) {
                Ok(c) => c,
                Err(e) => {
                    for a in undecided {
                        d.ctx
                            .outcome(a, Outcome::Failed, format!("cannot reach GCS: {e}"))?;
                    }
                    continue;
                }
            };
            purge::location(d, &gcs, pl, g, proof)?;
            let mloc = d.plan.manifest_location(pl);
            for a in undecided {
                if let Item::GcsLifecycle(l) = &a.item {
                    lifecycle::folder(d.ctx, &gcs, (pl, mloc, g), a, l, &d.state(a.id))?;
                }
            }
        }
        Ok(())
    }

    fn recheck(&mut self, r: &mut Rechecking<'_>) -> Result<()> {
        let mut gone: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
        let mut emptied: Vec<(&str, &str)> = Vec::new();
        for item in &r.gone {
            match item {
                Item::GcsGeneration(x) => gone
                    .entry((&x.bucket, &x.name))
                    .or_default()
                    .push(&x.generation),
                Item::GcsLifecycle(l) => emptied.push((&l.bucket, &l.prefix)),
                _ => {}
            }
        }
        let concurrency = self.settings.concurrency()?;
        for (pl, loc) in r.locations(Kind::Gcs) {
            let Some(g) = pl.gcs() else { continue };
            let gcs = Gcs::connect_exact(&g.endpoint, concurrency)?;
            let (objects, _) =
                trace::generations(&gcs, loc, (&g.bucket, &g.prefix), Listing::Generations)?;
            let folder_emptied = emptied.iter().any(|(b, _)| *b == g.bucket);
            if folder_emptied && !objects.is_empty() {
                r.found_again.push(format!(
                    "{}: the emptied folder holds {} generation(s) again",
                    pl.uri,
                    objects.len()
                ));
            }
            for o in objects {
                let here = format!("gs://{}/{}#{}", g.bucket, o.name, o.generation);
                match gone.get(&(g.bucket.as_str(), o.name.as_str())) {
                    Some(gens) if gens.contains(&o.generation.as_str()) => r
                        .found_again
                        .push(format!("{here}: the disposed generation exists again")),
                    Some(_) => r
                        .found_again
                        .push(format!("{here}: the name holds an object again")),
                    None if loc.match_mode == MatchMode::Hash => {
                        let sha = gcs.sha256(&g.bucket, &o.name, &o.generation)?;
                        r.copy_of(loc, &here, Some(&sha));
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }
}
