//! Trace: read a resolved manifest and find every artifact, producing a
//! [`Plan`]. Trace changes nothing; it is the dry run. The location's URI
//! scheme picks its store ([`crate::store::registry`]): local files are
//! walked, buckets listed.

use crate::error::{Error, Result};
use crate::manifest::Resolved;
use crate::plan::RiskKind;
use crate::plan::{Artifact, Plan, Risk, Tool};
use crate::progress::Progress;
use crate::store::{self, Found, Place, Setup, Tracing};
use std::path::Path;

pub use crate::store::Criteria;

/// decom's own files a trace knows by name, by real path: the manifest
/// and the files it names, the plan being written and its approval, the
/// running binary.
fn own_files(resolved: &Resolved, out: &Path) -> Vec<std::path::PathBuf> {
    resolved
        .referenced_files()
        .into_iter()
        .chain(resolved.file.clone())
        .chain([
            out.to_path_buf(),
            crate::sign::sig_path(out, crate::sign::Role::Custodian),
        ])
        .chain(std::env::current_exe().ok())
        .map(|p| crate::util::real_path(&p))
        .collect()
}

/// Trace every location of the manifest and build the plan. `s3_override`
/// holds command-line S3 settings, which win over the manifest's `[s3]`.
/// `host` names the machine whose disks the local locations are on (the
/// hostname unless `trace --host` says otherwise); a fleet plan tells hosts
/// apart by it.
///
/// `local_only` (`trace --local-only`) leaves the S3 locations to another
/// host's trace: in a fleet of many hosts, one of them lists the buckets.
pub fn trace(
    resolved: &Resolved,
    s3_override: &crate::store::s3::Settings,
    (host, local_only): (&str, bool),
    progress: &dyn Progress,
    out: &Path,
) -> Result<(Plan, String)> {
    // Found artifacts are held in memory or spooled to an unnamed file
    // beside the plan, as each store chooses ([`Tracing`]).
    let spool_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut criteria = Criteria::of_manifest(resolved);
    criteria.own_files = own_files(resolved, out);
    let setup = Setup::listing(&resolved.manifest, s3_override);
    let mut stores = store::registry(&setup);
    // Locations a store finds (a registry entry's artifact locations) are
    // added first: the plan lists them like the manifest's own.
    let mut risks: Vec<Risk> = Vec::new();
    let mut expanded: Option<Resolved> = None;
    for s in &mut stores {
        let (found, mut r) = s.expand(expanded.as_ref().unwrap_or(resolved))?;
        risks.append(&mut r);
        if !found.is_empty() {
            let e = expanded.get_or_insert_with(|| resolved.clone());
            for (uri, why) in e.add_found(found)? {
                risks.push(Risk {
                    kind: RiskKind::Unreadable,
                    subject: uri,
                    detail: format!("not traced: {why}"),
                });
            }
        }
    }
    let resolved = expanded.as_ref().unwrap_or(resolved);
    let mut t = Tracing::new(criteria, resolved, progress, spool_dir);
    let mut locations = Vec::new();
    for (loc, target) in resolved.manifest.locations.iter().zip(&resolved.targets) {
        let kind = target.kind();
        if local_only && kind.remote() {
            continue;
        }
        let n = locations.len() as u32 + 1;
        let s = stores
            .iter_mut()
            .find(|s| s.kind() == kind)
            .ok_or_else(|| Error::input(format!("{}: no store handles it", loc.uri)))?;
        let (mut pl, mut r) = s.trace(&mut t, Place { n, loc, target })?;
        if !kind.remote() {
            pl.host = Some(host.to_string());
        }
        locations.push(pl);
        risks.append(&mut r);
    }
    for s in &mut stores {
        risks.extend(s.trace_finish(&mut t)?);
    }
    if !resolved.not_searched.is_empty() {
        let names: Vec<&str> = resolved
            .not_searched
            .iter()
            .map(|n| n.component.as_str())
            .collect();
        risks.push(Risk {
            kind: RiskKind::ComponentsNotSearched,
            subject: format!("{} known component(s)", names.len()),
            detail: format!(
                "not searched for by content (no SHA-256, SHA-384 or SHA-512 hash, or a BOM type that is not a model artifact; components_not_searched gives each reason), so copies of them outside the locations' other rules remain: {}",
                names.join(", ")
            ),
        });
    }
    risks.sort_by(|a, b| (&a.kind, &a.subject).cmp(&(&b.kind, &b.subject)));
    risks.dedup();
    let m = &resolved.manifest;
    let Found {
        held: artifacts,
        spool,
        spooled,
        totals,
    } = t.into_found()?;
    let header = Plan {
        schema: crate::plan::PLAN_SCHEMA.into(),
        tool: Tool::this(),
        created: crate::util::now_rfc3339(),
        host: host.to_string(),
        model: m.model.clone(),
        manifest_sha256: resolved.manifest_sha256.clone(),
        manifest: m.clone(),
        profile: resolved.profile.clone(),
        components: resolved.components.clone(),
        components_not_searched: resolved.not_searched.clone(),
        retained: m
            .retain
            .iter()
            .zip(&resolved.retained)
            .map(|(r, p)| crate::manifest::retain::Retained::of(r, p))
            .collect::<Result<_>>()?,
        locations,
        residual_risks: risks,
        hosts: Vec::new(),
        local_only,
        totals,
        artifacts: Vec::new(),
    };
    let sha256 = write(out, &header, artifacts, spool, &spooled)?;
    Ok((header, sha256))
}

/// Write the plan: in location order, each location's held artifacts,
/// then its spooled ones, numbered 1, 2, 3, …
fn write(
    out: &Path,
    header: &Plan,
    held: Vec<Artifact>,
    mut spool: Option<std::io::Lines<std::io::BufReader<std::fs::File>>>,
    spooled: &[(u32, u64)],
) -> Result<String> {
    crate::util::write_atomic_with(out, |w| {
        let mut w = crate::plan::PlanWriter::start(w, header)?;
        let mut id = 0u32;
        let mut held = held.into_iter().peekable();
        for loc in &header.locations {
            let n = loc.index;
            while let Some(mut a) = held.next_if(|a| a.location == n) {
                id += 1;
                a.id = id;
                w.push(&a)?;
            }
            let count = spooled.iter().find(|(l, _)| *l == n).map_or(0, |(_, c)| *c);
            for _ in 0..count {
                let line = spool
                    .as_mut()
                    .and_then(|l| l.next())
                    .ok_or_else(|| std::io::Error::other("the trace spool ended early"))??;
                let item = serde_json::from_str(&line).map_err(std::io::Error::other)?;
                id += 1;
                w.push(&Artifact {
                    id,
                    location: n,
                    item,
                })?;
            }
        }
        w.finish()
    })
}
