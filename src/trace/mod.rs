//! Trace: read a resolved manifest and find every artifact, producing a
//! [`Plan`]. Trace changes nothing; it is the dry run. The location's URI
//! scheme picks the implementation: [`local`] walks directories, [`s3`]
//! lists buckets.

pub mod keep;
pub mod local;
pub mod s3;
pub mod stores;

use crate::error::Result;
use crate::manifest::{Component, Known, MatchMode, Model, Resolved, Target};
use crate::plan::RiskKind;
use crate::plan::{Artifact, Plan, Risk, Tool, Totals};
use crate::progress::Progress;
use std::io::BufRead;
use std::path::Path;

/// What decides, besides a location's own settings, which artifacts are
/// planned and how they are described: the known components (hash
/// matches), what the model is called in the stores decom knows (Hugging
/// Face, Ollama, PyTorch hub), the folders of models that stay (`[[keep]]`),
/// and whether the profile overwrites (which decides a file's sanitization
/// category). Trace takes it from the resolved manifest; `verify --recheck`
/// from the approved plan.
#[derive(Debug, Clone)]
pub struct Criteria<'a> {
    pub components: &'a [Component],
    pub model: &'a Model,
    pub keep: Vec<std::path::PathBuf>,
    pub overwrites: bool,
    /// decom's own inputs and outputs (the manifest and the files it
    /// names, the plan and its approval, the running binary), by real
    /// path: never planned, and named in the plan as excluded.
    pub own_files: Vec<std::path::PathBuf>,
}

impl<'a> Criteria<'a> {
    pub fn of_manifest(r: &'a Resolved) -> Self {
        Criteria {
            components: &r.components,
            model: &r.manifest.model,
            keep: r.keep.clone(),
            overwrites: !r.profile.passes.is_empty(),
            own_files: Vec::new(),
        }
    }

    /// The plan's criteria; `[[keep]]` folders that no longer exist keep
    /// nothing.
    pub fn of_plan(p: &'a Plan) -> Self {
        Criteria {
            components: &p.components,
            model: &p.model,
            keep: p
                .manifest
                .keep
                .iter()
                .filter_map(
                    |k| match crate::manifest::resolve_uri(&k.uri, Path::new("/")) {
                        Ok(Target::Local(p)) => Some(p),
                        _ => None,
                    },
                )
                .collect(),
            overwrites: !p.profile.passes.is_empty(),
            own_files: Vec::new(),
        }
    }

    pub fn known(&self) -> Known {
        Known::new(self.components)
    }
}

/// Trace every location of the manifest and build the plan. `s3_override`
/// holds command-line S3 settings, which win over the manifest's `[s3]`.
/// `host` names the machine whose disks the local locations are on (the
/// hostname unless `trace --host` says otherwise); a fleet plan tells hosts
/// apart by it.
///
/// `local_only` (`trace --local-only`) leaves the S3 locations to another
/// host's trace: in a fleet of many hosts, one of them lists the buckets.
/// The real path of `p`: its folder resolved (the file itself may not
/// exist yet, as a plan about to be written).
pub fn real_path(p: &Path) -> std::path::PathBuf {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(dir), p.file_name()) {
        (Ok(d), Some(n)) => d.join(n),
        _ => p.to_path_buf(),
    }
}

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
        .map(|p| real_path(&p))
        .collect()
}

pub fn trace(
    resolved: &Resolved,
    s3_override: &crate::s3::Settings,
    (host, local_only): (&str, bool),
    progress: &dyn Progress,
    out: &Path,
) -> Result<(Plan, String)> {
    let mut locations = Vec::new();
    // Local artifacts are held (hard links and kept models are judged
    // across all of them); S3 artifacts are spooled to a file beside the
    // plan as their listing pages are decided, so memory does not grow with
    // the versions of a location.
    let mut local_found: Vec<Artifact> = Vec::new();
    let mut spooled: Vec<(u32, u64)> = Vec::new();
    let mut spool: Option<std::io::BufWriter<std::fs::File>> = None;
    let spool_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut s3_totals = Totals::default();
    let mut risks: Vec<Risk> = Vec::new();
    let mut index = local::LinkIndex::default();
    let mut seen_models = stores::Seen::default();
    let mut local_locations = 0usize;
    let mut client: Option<crate::s3::S3> = None;
    let mut criteria = Criteria::of_manifest(resolved);
    criteria.own_files = own_files(resolved, out);
    let settings = resolved
        .manifest
        .s3
        .clone()
        .unwrap_or_default()
        .overlay(s3_override);
    // The same artifact reached from two locations is planned once. Two S3
    // locations can only meet in one bucket: only theirs are remembered.
    let mut seen = std::collections::HashSet::new();
    let buckets: Vec<&str> = resolved
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::S3 { bucket, .. } => Some(bucket.as_str()),
            _ => None,
        })
        .collect();
    for (loc, target) in resolved.manifest.locations.iter().zip(&resolved.targets) {
        if local_only && matches!(target, Target::S3 { .. }) {
            continue;
        }
        let n = locations.len() as u32 + 1;
        let mut local_items = |items: Vec<crate::plan::Item>| {
            for item in items {
                if seen.insert(item.path().into_owned()) {
                    local_found.push(Artifact {
                        id: 0,
                        location: n,
                        item,
                    });
                }
            }
        };
        let (pl, mut r) = match target {
            Target::Local(root) => {
                local_locations += 1;
                let (mut pl, items, r) = local::trace_location(
                    n,
                    loc,
                    root,
                    &criteria,
                    (&mut index, &mut seen_models),
                    progress,
                )?;
                pl.host = Some(host.to_string());
                local_items(items.into_iter().map(local::Found::into_item).collect());
                (pl, r)
            }
            Target::S3 { bucket, prefix } => {
                if client.is_none() {
                    client = Some(crate::s3::S3::connect(&settings)?);
                }
                let c = client.as_ref().expect("connected above");
                let shared = buckets.iter().filter(|b| **b == bucket.as_str()).count() > 1;
                if spool.is_none() {
                    let f = tempfile::tempfile_in(spool_dir)
                        .map_err(|e| crate::error::Error::io(spool_dir, e))?;
                    spool = Some(std::io::BufWriter::new(f));
                }
                let w = spool.as_mut().expect("opened above");
                let mut count = 0u64;
                let r = s3::trace_location(
                    n,
                    loc,
                    (bucket, prefix),
                    &criteria,
                    (c, &settings),
                    progress,
                    &mut |item| {
                        if shared && !seen.insert(item.path().into_owned()) {
                            return Ok(());
                        }
                        s3_totals.add(&item);
                        count += 1;
                        serde_json::to_writer(&mut *w, &item)
                            .map_err(std::io::Error::other)
                            .and_then(|()| std::io::Write::write_all(w, b"\n"))
                            .map_err(|e| crate::error::Error::io(spool_dir, e))
                    },
                )?;
                spooled.push((n, count));
                r
            }
            Target::Luks(dev) => {
                let (mut pl, items, r) = luks_location(n, loc, dev)?;
                pl.host = Some(host.to_string());
                local_items(items);
                (pl, r)
            }
        };
        locations.push(pl);
        risks.append(&mut r);
    }
    if local_locations > 0 {
        stores::named_model_found(&resolved.manifest.model, &seen_models)?;
    }
    let mut artifacts = local_found;
    risks.extend(index.resolve(&mut artifacts));
    let labels: Vec<String> = resolved.manifest.keep.iter().map(|k| k.label()).collect();
    let keep: Vec<(std::path::PathBuf, &str)> = resolved
        .keep
        .iter()
        .cloned()
        .zip(labels.iter().map(String::as_str))
        .collect();
    risks.extend(keep::identical(&keep, &artifacts));
    // S3 versions are matched by SHA-256 only (checksum or streamed hash).
    let s3_hash = resolved
        .manifest
        .locations
        .iter()
        .zip(&resolved.targets)
        .filter(|(l, t)| l.match_mode == MatchMode::Hash && matches!(t, Target::S3 { .. }))
        .map(|(l, _)| l.uri.as_str())
        .collect::<Vec<_>>();
    let no_sha256: Vec<String> = resolved
        .components
        .iter()
        .filter(|c| c.sha256.is_none())
        .map(|c| c.label())
        .collect();
    if !s3_hash.is_empty() && !no_sha256.is_empty() {
        risks.push(Risk {
            kind: RiskKind::ComponentsNotSearched,
            subject: s3_hash.join(", "),
            detail: format!(
                "S3 versions are matched by SHA-256 only; these component(s) have only SHA-384 or SHA-512 and were not looked for there: {}",
                no_sha256.join(", ")
            ),
        });
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
    let mut totals = s3_totals;
    for a in &artifacts {
        totals.add(&a.item);
    }
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
        locations,
        residual_risks: risks,
        hosts: Vec::new(),
        local_only,
        totals,
        artifacts: Vec::new(),
    };
    // In location order: each local location's held artifacts, each S3
    // location's spooled ones, numbered 1, 2, 3, …
    let mut spool = match spool {
        Some(w) => {
            let mut f = w
                .into_inner()
                .map_err(|e| crate::error::Error::io(spool_dir, e.into_error()))?;
            std::io::Seek::rewind(&mut f).map_err(|e| crate::error::Error::io(spool_dir, e))?;
            Some(std::io::BufReader::new(f).lines())
        }
        None => None,
    };
    let sha256 = crate::util::write_atomic_with(out, |w| {
        let mut w = crate::plan::PlanWriter::start(w, &header)?;
        let mut id = 0u32;
        let mut held = artifacts.into_iter().peekable();
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
    })?;
    Ok((header, sha256))
}

/// A `luks://` location: the whole LUKS2 volume, one artifact (its
/// keyslots), disposed of by cryptographic erase. Refused when the device
/// is in use (mounted, mapped, claimed) or holds no LUKS2 volume.
fn luks_location(
    index: u32,
    loc: &crate::manifest::Location,
    dev: &std::path::Path,
) -> Result<(crate::plan::PlanLocation, Vec<crate::plan::Item>, Vec<Risk>)> {
    use crate::plan::{Item, LuksKeyslots, LuksVolume, PlanLocation, Store};
    let v = crate::localfs::luks::inspect(dev)
        .map_err(|m| crate::error::Error::input(format!("location {}: {m}", loc.uri)))?;
    if loc.match_mode == crate::manifest::MatchMode::Hash
        || !loc.include.is_empty()
        || !loc.exclude.is_empty()
    {
        return Err(crate::error::Error::input(format!(
            "location {}: a LUKS volume is erased whole; it takes no match = \"hash\", include or exclude",
            loc.uri
        )));
    }
    let device = dev.display().to_string();
    let risks = vec![Risk {
        kind: RiskKind::LuksHeaderBackup,
        subject: loc.uri.clone(),
        detail: format!(
            "luksErase destroys the {} keyslot(s) on the device; a LUKS header backup (cryptsetup luksHeaderBackup) or an image of the volume made earlier still opens it with an old passphrase: find and destroy those too",
            v.keyslots.len()
        ),
    }];
    let pl = PlanLocation {
        index,
        uri: loc.uri.clone(),
        host: None,
        match_mode: loc.match_mode,
        store: Store::Luks(LuksVolume {
            device: device.clone(),
            rdev: v.rdev,
            uuid: v.uuid.clone(),
            size: v.size,
        }),
    };
    let item = Item::LuksKeyslots(LuksKeyslots {
        device,
        uuid: v.uuid,
        keyslots: v.keyslots,
        size: v.size,
    });
    Ok((pl, vec![item], risks))
}
