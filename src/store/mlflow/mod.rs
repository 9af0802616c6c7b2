//! The MLflow model registry: a model version, the aliases that point at
//! it, its runs and every artifact they point to. The registry is two
//! lines of the store registry, because its disposal brackets the others:
//! [`Entries`] (first) deletes the aliases and the model version before
//! any byte goes, so nothing new loads the model once disposal began;
//! [`Runs`] (last) deletes the runs, and purges them with `mlflow gc`,
//! after the artifact locations are disposed of and proven.
//! ARCHITECTURE.md "MLflow" says why this order.

mod client;
pub mod dispose;
pub mod sample;
pub mod spec;
pub mod trace;

pub use client::*;

use super::{Disposing, Kind, Place, Rechecking, Store, Tracing};
use crate::error::{Error, Result};
use crate::manifest::{Location, Resolved, Target};
use crate::plan::{Item, PlanLocation, Risk, Store as PlanStore};

/// The registry entries: trace, aliases and the version at execute, recheck.
#[derive(Default)]
pub struct Entries {
    /// What `expand` read, for the trace of the `mlflow:` location.
    entry: Option<trace::Entry>,
}

impl Store for Entries {
    fn kind(&self) -> Kind {
        Kind::Mlflow
    }

    fn expand(&mut self, r: &Resolved) -> Result<(Vec<Location>, Vec<Risk>)> {
        let Some(reg) = &r.manifest.model.mlflow else {
            return Ok((Vec::new(), Vec::new()));
        };
        let m = Mlflow::connect(&reg.tracking_uri)?;
        let e = trace::entry(&m, reg)?;
        let out = (e.locations.clone(), e.risks.clone());
        self.entry = Some(e);
        Ok(out)
    }

    fn trace(&mut self, t: &mut Tracing<'_>, at: Place<'_>) -> Result<(PlanLocation, Vec<Risk>)> {
        let Target::Mlflow { name, version } = at.target else {
            return Err(Error::input(format!(
                "{}: not an MLflow location",
                at.loc.uri
            )));
        };
        let e = self
            .entry
            .as_ref()
            .filter(|e| e.location.name == *name && e.location.version == *version)
            .ok_or_else(|| {
                Error::input(format!("{}: not the manifest's [model.mlflow]", at.loc.uri))
            })?;
        for item in &e.items {
            t.hold(at.n, item.clone());
        }
        Ok((
            PlanLocation {
                index: at.n,
                uri: at.loc.uri.clone(),
                host: None,
                match_mode: at.loc.match_mode,
                store: PlanStore::Mlflow(e.location.clone()),
            },
            Vec::new(),
        ))
    }

    fn dispose(&mut self, d: &Disposing<'_, '_>) -> Result<()> {
        dispose::entries(d)
    }

    fn recheck(&mut self, r: &mut Rechecking<'_>) -> Result<()> {
        for (pl, _) in r.locations(Kind::Mlflow) {
            let Some(ml) = pl.mlflow() else { continue };
            let m = Mlflow::connect(&ml.tracking_uri)?;
            for item in r.gone.clone() {
                let again = match item {
                    Item::MlflowVersion(v) => {
                        matches!(m.model_version(&v.name, &v.version)?, Found::Yes(_))
                    }
                    // An alias of that name on another version is a new
                    // assignment, not the disposed one.
                    Item::MlflowAlias(a) => matches!(
                        m.version_by_alias(&a.name, &a.alias)?,
                        Found::Yes(v) if v.version == a.version
                    ),
                    Item::MlflowRun(x) => matches!(m.run(&x.run_id)?, Found::Yes(_)),
                    _ => false,
                };
                if again {
                    r.found_again
                        .push(format!("{}: the registry has it again", item.path()));
                }
            }
        }
        Ok(())
    }
}

/// The runs (and the registered model), disposed of last.
pub struct Runs;

impl Store for Runs {
    fn kind(&self) -> Kind {
        Kind::Mlflow
    }

    fn trace(&mut self, _t: &mut Tracing<'_>, at: Place<'_>) -> Result<(PlanLocation, Vec<Risk>)> {
        Err(Error::input(format!(
            "{}: MLflow entries are traced by the registry's first store",
            at.loc.uri
        )))
    }

    fn dispose(&mut self, d: &Disposing<'_, '_>) -> Result<()> {
        dispose::runs(d)
    }

    fn recheck(&mut self, _r: &mut Rechecking<'_>) -> Result<()> {
        // `Entries` rechecks every registry item.
        Ok(())
    }
}
