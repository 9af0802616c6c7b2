//! Trace: read a resolved manifest and find every artifact, producing a
//! [`Plan`]. Trace changes nothing; it is the dry run. The location's URI
//! scheme picks the implementation: [`local`] walks directories, [`s3`]
//! lists buckets.

pub mod local;
pub mod s3;

use crate::error::Result;
use crate::manifest::{Component, Resolved, Target};
use crate::plan::{Artifact, Plan, Risk, Tool, Totals};
use crate::progress::Progress;

/// What decides, besides a location's own settings, which artifacts are
/// planned and how they are described: the known components (hash matches),
/// the model's Hugging Face repository, and whether the profile overwrites
/// (which decides a file's sanitization category). Trace takes it from the
/// resolved manifest; `verify --recheck` from the approved plan.
#[derive(Debug, Clone, Copy)]
pub struct Criteria<'a> {
    pub components: &'a [Component],
    pub hf_repo: Option<&'a str>,
    pub overwrites: bool,
}

impl<'a> Criteria<'a> {
    pub fn of_manifest(r: &'a Resolved) -> Self {
        Criteria {
            components: &r.components,
            hf_repo: r.manifest.model.hf_repo.as_deref(),
            overwrites: !r.profile.passes.is_empty(),
        }
    }

    pub fn of_plan(p: &'a Plan) -> Self {
        Criteria {
            components: &p.components,
            hf_repo: p.manifest.model.hf_repo.as_deref(),
            overwrites: !p.profile.passes.is_empty(),
        }
    }
}

/// Trace every location of the manifest and build the plan. `s3_override`
/// holds command-line S3 settings, which win over the manifest's `[s3]`.
pub fn trace(
    resolved: &Resolved,
    s3_override: &crate::s3::Settings,
    progress: &dyn Progress,
) -> Result<Plan> {
    let mut locations = Vec::new();
    let mut found: Vec<(u32, crate::plan::Item)> = Vec::new();
    let mut risks: Vec<Risk> = Vec::new();
    let mut index = local::LinkIndex::default();
    let mut client: Option<crate::s3::S3> = None;
    let criteria = Criteria::of_manifest(resolved);
    let settings = resolved
        .manifest
        .s3
        .clone()
        .unwrap_or_default()
        .overlay(s3_override);
    for (i, (loc, target)) in resolved
        .manifest
        .locations
        .iter()
        .zip(&resolved.targets)
        .enumerate()
    {
        let n = i as u32 + 1;
        let (pl, items, mut r) = match target {
            Target::Local(root) => {
                let (pl, items, r) =
                    local::trace_location(n, loc, root, &criteria, &mut index, progress)?;
                (
                    pl,
                    items
                        .into_iter()
                        .map(local::Found::into_item)
                        .collect::<Vec<_>>(),
                    r,
                )
            }
            Target::S3 { bucket, prefix } => {
                if client.is_none() {
                    client = Some(crate::s3::S3::connect(&settings)?);
                }
                let c = client.as_ref().expect("connected above");
                s3::trace_location(n, loc, (bucket, prefix), &criteria, c, &settings, progress)?
            }
        };
        locations.push(pl);
        risks.append(&mut r);
        found.extend(items.into_iter().map(|it| (n, it)));
    }
    // The same artifact reached from two locations is planned once.
    let mut seen = std::collections::HashSet::new();
    found.retain(|(_, it)| seen.insert(it.path().into_owned()));
    let mut artifacts: Vec<Artifact> = found
        .into_iter()
        .enumerate()
        .map(|(i, (loc, item))| Artifact {
            id: i as u32 + 1,
            location: loc,
            item,
        })
        .collect();
    risks.extend(index.resolve(&mut artifacts));
    risks.sort_by(|a, b| (&a.kind, &a.subject).cmp(&(&b.kind, &b.subject)));
    risks.dedup();
    let m = &resolved.manifest;
    Ok(Plan {
        schema: crate::plan::PLAN_SCHEMA.into(),
        tool: Tool::this(),
        created: crate::util::now_rfc3339(),
        host: crate::util::hostname(),
        model: m.model.clone(),
        manifest_sha256: resolved.manifest_sha256.clone(),
        manifest: m.clone(),
        profile: resolved.profile.clone(),
        components: resolved.components.clone(),
        locations,
        residual_risks: risks,
        totals: Totals::of(&artifacts),
        artifacts,
    })
}
