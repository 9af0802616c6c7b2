//! Disposing of a registry entry, in the order that leaves every
//! interruption resumable and nothing new loading the model once disposal
//! began: aliases, then the model version (both re-identified first),
//! before any artifact location ([`entries`], the registry's first store);
//! the runs only after their artifact locations are disposed of, then
//! `mlflow gc` where the backend store is known, then the registered model
//! ([`runs`], the registry's last store). Each deletion is proven by the
//! registry answering RESOURCE_DOES_NOT_EXIST.

use super::client::{Found, Mlflow};
use crate::error::Result;
use crate::journal::{Event, Outcome};
use crate::plan::{Artifact, Item, MlflowLocation, PlanLocation};
use crate::store::{Ctx, Disposing};

/// The registry's locations with their undecided artifacts of `kind`.
fn undecided<'p>(
    d: &'p Disposing<'p, '_>,
    kind: fn(&Item) -> bool,
) -> Vec<(&'p PlanLocation, &'p MlflowLocation, Vec<&'p Artifact>)> {
    let all = d.undecided(kind);
    d.plan
        .locations
        .iter()
        .filter_map(|pl| {
            let ml = pl.mlflow()?;
            let arts: Vec<&Artifact> = all
                .iter()
                .copied()
                .filter(|a| a.location == pl.index)
                .collect();
            (!arts.is_empty()).then_some((pl, ml, arts))
        })
        .collect()
}

/// Delete, then prove: the registry must answer RESOURCE_DOES_NOT_EXIST.
fn delete_and_prove(
    ctx: &Ctx<'_>,
    a: &Artifact,
    delete: impl FnOnce() -> Result<Found<()>>,
    gone: impl FnOnce() -> Result<bool>,
) -> Result<()> {
    ctx.append(Event::Started { ids: vec![a.id] })?;
    if let Err(e) = delete() {
        return ctx.outcome(a, Outcome::Failed, format!("delete failed: {e}"));
    }
    match gone() {
        Ok(true) => ctx.outcome(
            a,
            Outcome::Disposed,
            "the registry answers RESOURCE_DOES_NOT_EXIST".to_string(),
        ),
        Ok(false) => ctx.outcome(
            a,
            Outcome::Failed,
            "the registry still has it after its delete".to_string(),
        ),
        Err(e) => ctx.outcome(a, Outcome::Failed, format!("absence not proven: {e}")),
    }
}

/// What to do with an entry the registry no longer has: proven gone if an
/// earlier run started deleting it, else it vanished since approval.
fn vanished(ctx: &Ctx<'_>, d: &Disposing<'_, '_>, a: &Artifact) -> Result<()> {
    match d.state(a.id).started.is_some() {
        true => ctx.outcome(
            a,
            Outcome::Disposed,
            "the registry answers RESOURCE_DOES_NOT_EXIST".to_string(),
        ),
        false => ctx.outcome(a, Outcome::SkippedChanged, "no longer exists".to_string()),
    }
}

/// The registry's client, or every artifact failed with why not.
fn connect(ctx: &Ctx<'_>, ml: &MlflowLocation, arts: &[&Artifact]) -> Result<Option<Mlflow>> {
    match Mlflow::connect(&ml.tracking_uri) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            for a in arts {
                ctx.outcome(
                    a,
                    Outcome::Failed,
                    format!("cannot reach the registry: {e}"),
                )?;
            }
            Ok(None)
        }
    }
}

/// Aliases, then the model version.
pub fn entries(d: &Disposing<'_, '_>) -> Result<()> {
    let ctx = d.ctx;
    for (_, ml, mut arts) in undecided(d, |i| {
        matches!(i, Item::MlflowAlias(_) | Item::MlflowVersion(_))
    }) {
        arts.sort_by_key(|a| !matches!(a.item, Item::MlflowAlias(_)));
        let Some(m) = connect(ctx, ml, &arts)? else {
            continue;
        };
        for a in arts {
            match &a.item {
                Item::MlflowAlias(x) => match m.version_by_alias(&x.name, &x.alias) {
                    Err(e) => ctx.outcome(a, Outcome::Failed, e.to_string())?,
                    Ok(Found::No) => vanished(ctx, d, a)?,
                    Ok(Found::Yes(v)) if v.version != x.version => ctx.outcome(
                        a,
                        Outcome::SkippedChanged,
                        format!(
                            "the alias now points at version {}, not the approved {}",
                            v.version, x.version
                        ),
                    )?,
                    Ok(Found::Yes(_)) => delete_and_prove(
                        ctx,
                        a,
                        || m.delete_alias(&x.name, &x.alias),
                        || Ok(matches!(m.version_by_alias(&x.name, &x.alias)?, Found::No)),
                    )?,
                },
                Item::MlflowVersion(x) => match m.model_version(&x.name, &x.version) {
                    Err(e) => ctx.outcome(a, Outcome::Failed, e.to_string())?,
                    Ok(Found::No) => vanished(ctx, d, a)?,
                    Ok(Found::Yes(v)) if v.source != x.source || v.run_id != x.run_id => ctx
                        .outcome(
                            a,
                            Outcome::SkippedChanged,
                            format!(
                                "its source is now {} (run {}), not the approved {} (run {})",
                                v.source,
                                v.run_id.as_deref().unwrap_or("none"),
                                x.source,
                                x.run_id.as_deref().unwrap_or("none")
                            ),
                        )?,
                    Ok(Found::Yes(_)) => delete_and_prove(
                        ctx,
                        a,
                        || m.delete_version(&x.name, &x.version),
                        || Ok(matches!(m.model_version(&x.name, &x.version)?, Found::No)),
                    )?,
                },
                _ => {}
            }
        }
    }
    Ok(())
}

/// Why a run must wait: an artifact of a location found through it that
/// is not disposed of (or retained) yet, by `now`, the journal as it is
/// now (the other stores wrote their outcomes during this run).
fn waiting_for(
    d: &Disposing<'_, '_>,
    now: &crate::journal::Replay,
    run: &crate::plan::MlflowRun,
) -> Result<Option<(Outcome, String)>> {
    let mut found = 0;
    for pl in &d.plan.locations {
        let m = d.plan.manifest_location(pl);
        let of_run = |f: &str| {
            f.contains(&run.run_id) || run.logged_models.iter().any(|id| f.contains(id.as_str()))
        };
        if !m.found_by.as_deref().is_some_and(of_run) {
            continue;
        }
        let mut ids: Vec<u32> = d
            .plan
            .artifacts
            .iter()
            .filter(|a| a.location == pl.index)
            .map(|a| a.id)
            .collect();
        for a in d.spool.location(pl.index) {
            ids.push(a?.id);
        }
        found += 1;
        for id in ids {
            match now.outcome(id).map(|o| o.0) {
                Some(Outcome::Disposed) => {}
                Some(o @ (Outcome::Retained | Outcome::SkippedChanged)) => {
                    return Ok(Some((
                        o,
                        format!(
                            "kept: some of its artifacts at {} are kept ({o}), and mlflow gc would delete them with the run",
                            pl.uri
                        ),
                    )));
                }
                Some(Outcome::Failed) => {
                    return Ok(Some((
                        Outcome::Failed,
                        format!(
                            "kept: its artifacts at {} are not all disposed of (one failed); the run stays as the pointer to them",
                            pl.uri
                        ),
                    )));
                }
                _ => {
                    return Ok(Some((
                        Outcome::Pending,
                        format!(
                            "kept until its artifacts at {} are disposed of; execute --resume then deletes it",
                            pl.uri
                        ),
                    )));
                }
            }
        }
    }
    if found == 0 {
        return Ok(Some((
            Outcome::SkippedChanged,
            "kept: none of its artifact locations is in the plan, and mlflow gc would delete them with the run".into(),
        )));
    }
    Ok(None)
}

/// The runs, after their artifacts; then `mlflow gc`; then the model.
pub fn runs(d: &Disposing<'_, '_>) -> Result<()> {
    let ctx = d.ctx;
    let reg = d.plan.manifest.model.mlflow.as_ref();
    for (_, ml, arts) in undecided(d, |i| {
        matches!(i, Item::MlflowRun(_) | Item::MlflowModel(_))
    }) {
        let Some(m) = connect(ctx, ml, &arts)? else {
            continue;
        };
        let mut deleted = Vec::new();
        // Read once: the artifact stores are done, and what this loop
        // journals (runs) is not what it reads (their locations' items).
        let now = crate::journal::Replay::of_file(&ctx.journal_path(), |_| false)?;
        for a in &arts {
            let Item::MlflowRun(x) = &a.item else {
                continue;
            };
            if let Some((o, why)) = waiting_for(d, &now, x)? {
                ctx.outcome(a, o, why)?;
                continue;
            }
            match m.run(&x.run_id) {
                Err(e) => ctx.outcome(a, Outcome::Failed, e.to_string())?,
                Ok(Found::No) => vanished(ctx, d, a)?,
                Ok(Found::Yes(r))
                    if r.model_outputs.iter().any(|m| !x.model_outputs.contains(m)) =>
                {
                    ctx.outcome(
                        a,
                        Outcome::SkippedChanged,
                        format!(
                            "it logged model(s) {} since approval; mlflow gc would take their run with it",
                            r.model_outputs
                                .iter()
                                .filter(|m| !x.model_outputs.contains(m))
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )?
                }
                Ok(Found::Yes(r))
                    if r.artifact_uri != x.artifact_uri || r.experiment_id != x.experiment_id =>
                {
                    ctx.outcome(
                        a,
                        Outcome::SkippedChanged,
                        format!(
                            "its artifact location is now {}, not the approved {}",
                            r.artifact_uri, x.artifact_uri
                        ),
                    )?
                }
                Ok(Found::Yes(r)) => {
                    ctx.append(Event::Started { ids: vec![a.id] })?;
                    if r.lifecycle_stage == "active"
                        && let Err(e) = m.delete_run(&x.run_id)
                    {
                        ctx.outcome(a, Outcome::Failed, format!("delete failed: {e}"))?;
                        continue;
                    }
                    if let Some(e) = x
                        .logged_models
                        .iter()
                        .find_map(|id| m.delete_logged_model(id).err())
                    {
                        ctx.outcome(
                            a,
                            Outcome::Failed,
                            format!("deleting its logged model failed: {e}"),
                        )?;
                        continue;
                    }
                    deleted.push(*a);
                }
            }
        }
        purge(ctx, &m, reg, &deleted)?;
        for a in &arts {
            if let Item::MlflowModel(x) = &a.item {
                match m.versions_of(&x.name) {
                    Err(e) => ctx.outcome(a, Outcome::Failed, e.to_string())?,
                    Ok(v) if !v.is_empty() => ctx.outcome(
                        a,
                        Outcome::SkippedChanged,
                        format!(
                            "the registered model has {} version(s) now; it stays",
                            v.len()
                        ),
                    )?,
                    Ok(_) => delete_and_prove(
                        ctx,
                        a,
                        || m.delete_registered_model(&x.name),
                        || {
                            Ok(m.versions_of(&x.name).is_ok_and(|v| v.is_empty())
                                && m.registered_model_gone(&x.name)?)
                        },
                    )?,
                }
            }
        }
    }
    Ok(())
}

/// Purge deleted runs with `mlflow gc` against the backend store, limited
/// to their ids, and prove each gone; without a backend store each stays
/// deleted, not purged (pending), with the command that finishes it.
fn purge(
    ctx: &Ctx<'_>,
    m: &Mlflow,
    reg: Option<&super::spec::Registry>,
    deleted: &[&Artifact],
) -> Result<()> {
    if deleted.is_empty() {
        return Ok(());
    }
    let runs: Vec<&crate::plan::MlflowRun> = deleted
        .iter()
        .filter_map(|a| match &a.item {
            Item::MlflowRun(x) => Some(x),
            _ => None,
        })
        .collect();
    let ids: Vec<&str> = runs.iter().map(|x| x.run_id.as_str()).collect();
    let mut models: Vec<&str> = runs
        .iter()
        .flat_map(|x| x.logged_models.iter().map(String::as_str))
        .collect();
    models.sort_unstable();
    models.dedup();
    let Some(backend) = reg.and_then(|r| r.backend_store_uri.as_deref()) else {
        return pending(
            ctx,
            m,
            (deleted, &ids, &models),
            None,
            "the run stays in the backend store until mlflow gc runs against it",
        );
    };
    // `mlflow gc` also purges every experiment in the deleted stage, with
    // its runs, whatever ids it is given: it runs only where there is none,
    // so that it touches nothing outside the plan.
    let blocked = match m.deleted_experiments() {
        Ok(e) if e.is_empty() => None,
        Ok(e) => Some(format!(
            "the registry has deleted experiment(s) {} that mlflow gc would purge too, outside this plan",
            e.join(", ")
        )),
        Err(e) => Some(format!("cannot tell what else mlflow gc would purge: {e}")),
    };
    // Without --logged-model-ids it would also purge every deleted logged
    // model of the registry: where the runs logged none (MLflow 2 style),
    // gc is given the sentinel, an empty logged model decom creates and
    // deletes for it, which gc then purges with the runs.
    let sentinel = match (&blocked, models.is_empty()) {
        (None, true) => match gc_sentinel(m, &runs[0].experiment_id) {
            Ok(id) => Some(id),
            Err(e) => {
                let why = format!(
                    "decom could not limit mlflow gc to these runs (creating and deleting the empty logged model that limits it failed: {e})"
                );
                return pending(ctx, m, (deleted, &ids, &models), Some(backend), &why);
            }
        },
        _ => None,
    };
    if let Some(why) = blocked {
        return pending(ctx, m, (deleted, &ids, &models), Some(backend), &why);
    }
    models.extend(sentinel.as_deref());
    let cmd = reg
        .and_then(|r| r.mlflow_command.as_deref())
        .unwrap_or("mlflow");
    let (ids_arg, models_arg) = (ids.join(","), models.join(","));
    let mut args = vec!["gc", "--backend-store-uri", backend, "--run-ids", &ids_arg];
    if !models.is_empty() {
        args.extend(["--logged-model-ids", &models_arg]);
    }
    let gc = std::process::Command::new(cmd)
        .args(&args)
        .env("MLFLOW_TRACKING_URI", &m.base)
        .stdin(std::process::Stdio::null())
        .output();
    let said = match &gc {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .to_string(),
        ),
        Err(e) => Some(format!("cannot run {cmd}: {e}")),
    };
    let limited = sentinel
        .map(|s| {
            format!(
                " (limited by {s}, an empty logged model decom created and deleted for that gc)"
            )
        })
        .unwrap_or_default();
    for (a, id) in deleted.iter().zip(&ids) {
        match (m.run(id), &said) {
            (Ok(Found::No), _) => ctx.outcome(
                a,
                Outcome::Disposed,
                format!(
                    "purged by mlflow gc{limited}; the registry answers RESOURCE_DOES_NOT_EXIST"
                ),
            )?,
            (Ok(Found::Yes(_)), Some(why)) => ctx.outcome(
                a,
                Outcome::Failed,
                format!("deleted, not purged: mlflow gc{limited} failed: {why}"),
            )?,
            (Ok(Found::Yes(_)), None) => ctx.outcome(
                a,
                Outcome::Failed,
                format!("deleted, not purged: mlflow gc{limited} left it in the backend store"),
            )?,
            (Err(e), _) => ctx.outcome(a, Outcome::Failed, format!("absence not proven: {e}"))?,
        }
    }
    Ok(())
}

/// Deleted runs that stay deleted, not purged: why, and the command that
/// purges each (gc given no logged model ids purges every deleted one).
fn pending(
    ctx: &Ctx<'_>,
    m: &Mlflow,
    (deleted, ids, models): (&[&Artifact], &[&str], &[&str]),
    backend: Option<&str>,
    why: &str,
) -> Result<()> {
    let (tail, caveat) = match models.is_empty() {
        true => (
            String::new(),
            " (it also purges every experiment in the deleted stage and, given no --logged-model-ids, every deleted logged model of the registry)",
        ),
        false => (
            format!(" --logged-model-ids {}", models.join(",")),
            " (it also purges every experiment in the deleted stage)",
        ),
    };
    for (a, id) in deleted.iter().zip(ids) {
        ctx.outcome(
            a,
            Outcome::Pending,
            format!(
                "deleted, not purged: {why}; `MLFLOW_TRACKING_URI={} mlflow gc --backend-store-uri {} --run-ids {id}{tail}` purges it{caveat}, then execute --resume records it",
                m.base,
                backend.unwrap_or("<the server's backend store>"),
            ),
        )?;
    }
    Ok(())
}

/// The name of the empty logged model that limits `mlflow gc`.
const SENTINEL: &str = "decom-gc-sentinel";

/// Create the sentinel in an experiment and delete it (gc purges only
/// logged models in the deleted stage); its id.
fn gc_sentinel(m: &Mlflow, experiment_id: &str) -> Result<String> {
    let id = m.create_logged_model(experiment_id, SENTINEL)?;
    m.delete_logged_model(&id)?;
    Ok(id)
}
