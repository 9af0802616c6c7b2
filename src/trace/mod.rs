//! Trace: read a resolved manifest and find every artifact, producing a
//! [`Plan`]. Trace changes nothing; it is the dry run. Local locations are
//! walked by [`local`]; the URI scheme picks the implementation.

pub mod local;

use crate::error::Result;
use crate::manifest::{Resolved, Target};
use crate::plan::{Artifact, Plan, PlanLocation, Risk, Tool, Totals};
use crate::progress::Progress;

/// Trace every location of the manifest and build the plan.
pub fn trace(resolved: &Resolved, progress: &dyn Progress) -> Result<Plan> {
    let mut locations = Vec::new();
    let mut found: Vec<(u32, local::Found)> = Vec::new();
    let mut risks: Vec<Risk> = Vec::new();
    let mut index = local::LinkIndex::default();
    for (i, (loc, target)) in resolved
        .manifest
        .locations
        .iter()
        .zip(&resolved.targets)
        .enumerate()
    {
        let n = i as u32 + 1;
        match target {
            Target::Local(root) => {
                let (pl, items, mut r) =
                    local::trace_location(n, loc, root, resolved, &mut index, progress)?;
                locations.push(pl);
                risks.append(&mut r);
                found.extend(items.into_iter().map(|f| (n, f)));
            }
        }
    }
    // The same path reached from two locations is planned once.
    let mut seen = std::collections::HashSet::new();
    found.retain(|(_, f)| seen.insert(f.path().to_string()));
    let mut artifacts: Vec<Artifact> = found
        .into_iter()
        .enumerate()
        .map(|(i, (loc, f))| Artifact {
            id: i as u32 + 1,
            location: loc,
            item: f.into_item(),
        })
        .collect();
    risks.extend(index.resolve(&mut artifacts, &locations));
    risks.sort_by(|a, b| (&a.kind, &a.subject).cmp(&(&b.kind, &b.subject)));
    risks.dedup();
    let mut locations_out: Vec<PlanLocation> = locations;
    locations_out.sort_by_key(|l| l.index);
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
        locations: locations_out,
        residual_risks: risks,
        totals: Totals::of(&artifacts),
        artifacts,
    })
}
