//! `decom show`: a human summary of a plan or a certificate, residual risks
//! first, then by location and by matched component.

use super::records::Record;
use super::{Printer, exit};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::plan::{Item, Plan};
use crate::util::human_bytes;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A plan.json or certificate.json.
    pub file: PathBuf,
}

pub fn run(a: &ShowArgs, p: &Printer) -> Result<u8> {
    let bytes = crate::util::read_input(&a.file, "file", 4 << 30)?;
    let schema = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("schema").and_then(|s| s.as_str()).map(str::to_string))
        .ok_or_else(|| {
            Error::input(format!(
                "{}: not a decom plan or certificate",
                a.file.display()
            ))
        })?;
    if schema == crate::plan::PLAN_SCHEMA {
        let plan = Plan::parse(&bytes, &a.file.display().to_string())?;
        show_plan(&plan, &a.file, p);
    } else if schema == crate::cert::CERT_SCHEMA {
        let (cert, _) = Certificate::load(&a.file)?;
        show_cert(&cert, p);
    } else {
        return Err(Error::input(format!(
            "{}: unknown schema {schema:?}",
            a.file.display()
        )));
    }
    Ok(exit::OK)
}

/// The plan as the custodian reads it before approving: risks first, then
/// hosts, locations, components and totals.
pub fn plan_lines(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "Plan for model {} {} (created {} on {})",
        plan.model.name, plan.model.version, plan.created, plan.host
    ));
    out.push(format!(
        "Profile: {} — {}",
        plan.profile.name,
        plan.profile.method_summary()
    ));
    if plan.residual_risks.is_empty() {
        out.push("Residual risks: none found".into());
    } else {
        out.push(format!("Residual risks ({}):", plan.residual_risks.len()));
        for r in &plan.residual_risks {
            out.push(format!("  ! [{}] {}: {}", r.kind, r.subject, r.detail));
        }
    }
    let logical = plan
        .artifacts
        .iter()
        .filter(|a| matches!(&a.item, Item::File(f) if f.sanitization.category != crate::plan::Category::Clear))
        .count();
    if logical > 0 {
        out.push(format!("  ! {logical} file(s) can only be logically sanitized (SSD, copy-on-write, memory or network storage)"));
    }
    let mut by_location: std::collections::HashMap<u32, Vec<&crate::plan::Artifact>> =
        std::collections::HashMap::new();
    for a in &plan.artifacts {
        by_location.entry(a.location).or_default().push(a);
    }
    if !plan.hosts.is_empty() {
        out.push(format!("Hosts ({}):", plan.hosts.len()));
        for h in &plan.hosts {
            out.push(format!(
                "  {}: {} location(s), {} artifact(s), {} file(s), {}",
                h.host,
                h.locations.len(),
                h.totals.artifacts,
                h.totals.files,
                human_bytes(h.totals.bytes)
            ));
        }
        let uris: Vec<&str> = plan
            .manifest
            .locations
            .iter()
            .filter(|m| !m.uri.starts_with("s3://"))
            .map(|m| m.uri.as_str())
            .collect();
        out.push(format!("  on every host: {}", uris.join(", ")));
    }
    if plan.local_only {
        out.push("  ! traced with --local-only: the manifest's S3 locations are left to another host's plan (a part for decom plan merge)".into());
    }
    out.push("Locations:".into());
    for l in &plan.locations {
        // A fleet plan lists its hosts above, not each host's locations.
        if !plan.hosts.is_empty() && l.local().is_some() {
            continue;
        }
        let arts: Vec<&crate::plan::Artifact> =
            by_location.get(&l.index).cloned().unwrap_or_default();
        out.push(location_line(l, &arts));
        store_lines(plan, l, &arts, &mut out);
    }
    component_lines(plan, &mut out);
    out.push(format!(
        "Total: {} artifact(s), {}: {} file(s), {} symlink(s), {} dir(s), {} S3 version(s), {} delete marker(s), {} unfinished upload(s)",
        plan.totals.artifacts,
        human_bytes(plan.totals.bytes),
        plan.totals.files,
        plan.totals.symlinks,
        plan.totals.dirs,
        plan.totals.s3_versions,
        plan.totals.s3_delete_markers,
        plan.totals.s3_uploads
    ));
    for (n, what) in [
        (plan.totals.gcs_generations, "GCS generation(s)"),
        (
            plan.totals.gcs_lifecycle,
            "GCS folder(s) delegated to the bucket's lifecycle rules",
        ),
        (plan.totals.registry_entries, "model registry entries"),
    ] {
        if n > 0 {
            out.push(format!("       and {n} {what}"));
        }
    }
    if plan.totals.s3_lifecycle > 0 {
        out.push(format!(
            "       and {} S3 folder(s) delegated to S3 Lifecycle",
            plan.totals.s3_lifecycle
        ));
    }
    out
}

/// A location's line: its URI (real path where it differs), match mode,
/// medium and what it holds.
fn location_line(l: &crate::plan::PlanLocation, arts: &[&crate::plan::Artifact]) -> String {
    let bytes: u64 = arts.iter().map(|a| a.item.size()).sum();
    let files = arts
        .iter()
        .filter(|a| matches!(a.item, Item::File(_)))
        .count();
    // A location reached through a link is shown with the real path
    // the plan records, so the custodian approves what is destroyed.
    let shown = match l.local() {
        Some(r)
            if Path::new(l.uri.strip_prefix("file://").unwrap_or(&l.uri)) != Path::new(&r.root) =>
        {
            format!("{} → {}", l.uri, r.root)
        }
        _ => l.uri.clone(),
    };
    format!(
        "  [{}] {} (match {}, {}): {} artifact(s), {} file(s), {} S3 version(s), {} GCS generation(s), {}",
        l.index,
        shown,
        match l.match_mode {
            crate::manifest::MatchMode::All => "all",
            crate::manifest::MatchMode::Hash => "hash",
        },
        l.medium(),
        arts.len(),
        files,
        arts.iter()
            .filter(|a| matches!(a.item, Item::S3Version(_)))
            .count(),
        arts.iter()
            .filter(|a| matches!(a.item, Item::GcsGeneration(_)))
            .count(),
        human_bytes(bytes)
    )
}

/// What a location's store adds under its line: where trace found it,
/// what a registry entry shares, how a bucket is disposed of and proven.
fn store_lines(
    plan: &Plan,
    l: &crate::plan::PlanLocation,
    arts: &[&crate::plan::Artifact],
    out: &mut Vec<String>,
) {
    if let Some(by) = &plan.manifest_location(l).found_by {
        out.push(format!("      found by {by}"));
    }
    if let Some(m) = l.mlflow() {
        for line in &m.shared {
            out.push(format!("      shared, kept: {line}"));
        }
    }
    if let Some(s) = l.s3() {
        s3_lines(plan, s, arts, out);
    }
    if let Some(g) = l.gcs() {
        gcs_lines(plan, g, arts, out);
    }
}

/// An S3 location's KMS keys, what it covers and how absence is proved.
fn s3_lines(
    plan: &Plan,
    s: &crate::plan::S3Location,
    arts: &[&crate::plan::Artifact],
    out: &mut Vec<String>,
) {
    let (mode, sample) = plan
        .manifest
        .s3
        .as_ref()
        .and_then(|c| c.proof().ok())
        .unwrap_or((Default::default(), crate::store::s3::DEFAULT_VERIFY_SAMPLE));
    let delegated = arts.iter().find_map(|a| match &a.item {
        Item::S3Lifecycle(l) => Some(l),
        _ => None,
    });
    for k in &s.kms_keys {
        let window = arts.iter().find_map(|a| match &a.item {
            Item::KmsKey(x) if x.key_arn == k.key_arn => Some(x.window_days),
            _ => None,
        });
        out.push(format!(
            "      KMS key {} ({}{}; {} planned version(s), {} outside the plan, {} grant(s)): {}",
            k.key_arn,
            k.key_manager,
            if k.aliases.is_empty() {
                String::new()
            } else {
                format!(", {}", k.aliases.join(", "))
            },
            k.versions,
            k.used_outside,
            k.grants,
            match window {
                Some(d) => format!(
                    "CRYPTOGRAPHIC ERASE after the purge (ScheduleKeyDeletion, {d}-day waiting period); {}",
                    k.reason
                ),
                None => format!("not destroyed: {}", k.reason),
            }
        ));
    }
    match delegated {
        None => out.push(format!(
            "      covers {}; absence proof: complete listing + HEAD by version id of {}",
            crate::store::s3::Scope::new(&s.prefix).rule(),
            match mode {
                crate::store::s3::VerifyMode::Each => "every purged version".to_string(),
                crate::store::s3::VerifyMode::Sample => format!("a random sample of {sample}"),
            }
        )),
        Some(l) => {
            out.push(format!(
                "      covers {}; delegated to S3 Lifecycle: {} version(s), {} delete marker(s), {} upload(s) now; pending until a later execute --resume lists it empty",
                crate::store::s3::Scope::new(&s.prefix).rule(),
                l.versions,
                l.delete_markers,
                l.uploads
            ));
            for r in &l.rules {
                out.push(format!("        installs {}", r.describe()));
            }
            if !l.existing_rules.is_empty() {
                out.push(format!(
                    "        keeps the bucket's rules unchanged: {}",
                    l.existing_rules.join(", ")
                ));
            }
        }
    }
}

/// A GCS location: what it covers, the bucket's facts that decide the
/// outcome, and how absence is proved (or the lifecycle rules added).
fn gcs_lines(
    plan: &Plan,
    g: &crate::plan::GcsLocation,
    arts: &[&crate::plan::Artifact],
    out: &mut Vec<String>,
) {
    let f = &g.facts;
    out.push(format!(
        "      covers {}; soft delete {}; retention policy {}; {} lifecycle rule(s) in the bucket",
        g.covers,
        f.soft_delete(),
        match f.retention_seconds {
            Some(s) => format!(
                "{}{}",
                crate::plan::gcs::duration(s),
                if f.retention_locked { " (locked)" } else { "" }
            ),
            None => "none".into(),
        },
        f.lifecycle_rules.len()
    ));
    let delegated = arts.iter().find_map(|a| match &a.item {
        Item::GcsLifecycle(l) => Some(l),
        _ => None,
    });
    match delegated {
        Some(l) => {
            out.push(format!(
                "      delegated to the bucket's lifecycle rules: {} generation(s) now; pending until a later execute --resume lists it empty",
                l.generations
            ));
            for r in &l.rules {
                out.push(format!("        adds {r}"));
            }
        }
        None => {
            let (mode, sample) = plan
                .manifest
                .gcs
                .as_ref()
                .and_then(|c| c.proof().ok())
                .unwrap_or((
                    Default::default(),
                    crate::store::gcs::spec::DEFAULT_VERIFY_SAMPLE,
                ));
            out.push(format!(
                "      deletes by generation with the approved metageneration as precondition; absence proof: complete listing of every generation + GET by generation of {}",
                match mode {
                    crate::store::gcs::spec::VerifyMode::Each => "every purged generation".to_string(),
                    crate::store::gcs::spec::VerifyMode::Sample => format!("a random sample of {sample}"),
                }
            ));
        }
    }
}

/// The files by the manifest component they matched.
fn component_lines(plan: &Plan, out: &mut Vec<String>) {
    let mut by_comp: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for a in &plan.artifacts {
        if let Item::File(f) = &a.item {
            let key = f
                .matched
                .component
                .clone()
                .unwrap_or_else(|| format!("(no known component; matched {})", f.matched.how));
            let e = by_comp.entry(key).or_default();
            e.0 += 1;
            e.1 += f.size;
        }
    }
    if !by_comp.is_empty() {
        out.push("By component:".into());
        for (k, (n, b)) in by_comp {
            out.push(format!("  {k}: {n} file(s), {}", human_bytes(b)));
        }
    }
}

fn show_plan(plan: &Plan, path: &Path, p: &Printer) {
    if p.json {
        p.record(&Record::Shown {
            path,
            model: &plan.model,
            profile: &plan.profile.name,
            residual_risks: &plan.residual_risks,
            totals: &plan.totals,
            locations: &plan.locations,
        });
        return;
    }
    for l in plan_lines(plan) {
        p.data(&l);
    }
    if p.verbose {
        for a in &plan.artifacts {
            p.data(&format!(
                "  #{} {} {} {}",
                a.id,
                a.item.kind(),
                a.item.path(),
                human_bytes(a.item.size())
            ));
        }
    }
}

pub fn cert_lines<A: crate::cert::Artifacts>(c: &Certificate<A>) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "Certificate {} — status: {}",
        c.id,
        match c.status {
            crate::cert::Status::Complete => "COMPLETE",
            crate::cert::Status::Incomplete => "INCOMPLETE",
            crate::cert::Status::NothingFound => "NOTHING FOUND (the plan listed no artifact)",
            crate::cert::Status::Pending =>
                "PENDING (S3 Lifecycle or a KMS key deletion has not finished)",
        }
    ));
    out.push(format!(
        "Model {} {}; plan sha256 {}",
        c.model.name, c.model.version, c.plan.sha256
    ));
    out.push(format!(
        "Operator {} ({}); custodian {} ({})",
        c.operator.principal,
        c.operator.key_fingerprint,
        c.custodian.principal,
        c.custodian.key_fingerprint
    ));
    out.push(format!(
        "From {} to {}; method type: {}",
        c.started, c.finished, c.nist_sp_800_88.method_type
    ));
    if let Some(part) = &c.part {
        out.push(format!(
            "Part of a fleet plan: host {}{} ({} location(s)); decom collect joins the parts",
            part.host,
            if part.s3 { " and the S3 locations" } else { "" },
            part.locations.len()
        ));
    }
    if let Some(f) = &c.fleet {
        out.push(format!(
            "Fleet: {} of {} host(s) reported; coverage {}",
            f.coverage.reported,
            f.coverage.hosts,
            if f.coverage.complete {
                "complete"
            } else {
                "INCOMPLETE"
            }
        ));
        for h in &f.hosts {
            out.push(match &h.part {
                Some(p) => format!(
                    "  {:<24} {:<13} {} artifact(s), {}{} (part {}, operator {})",
                    h.host,
                    crate::cert::status_name(p.status),
                    p.totals.artifacts,
                    human_bytes(p.totals.bytes),
                    if p.s3 { ", with the S3 locations" } else { "" },
                    &p.sha256[..12],
                    p.operator.principal
                ),
                None => format!("  {:<24} NO PART", h.host),
            });
        }
        for why in &f.coverage.problems {
            out.push(format!("  ! {why}"));
        }
    }
    for r in &c.residual_risks {
        out.push(format!("  ! [{}] {}: {}", r.kind, r.subject, r.detail));
    }
    for (o, n) in &c.totals.by_outcome {
        out.push(format!(
            "  {o}: {} artifact(s), {}",
            n.artifacts,
            human_bytes(n.bytes)
        ));
    }
    let listed = c.artifacts.each_undisposed(&mut |a| {
        out.push(format!(
            "  {}: {} ({})",
            a.outcome,
            a.path,
            a.reason.clone().unwrap_or_default()
        ));
    });
    if let Err(e) = listed {
        out.push(format!("  ! {e}"));
    }
    out
}

fn show_cert(c: &Certificate, p: &Printer) {
    if p.json {
        p.record(&Record::Certificate {
            id: &c.id,
            status: c.status,
            totals: &c.totals,
            model: &c.model,
        });
        return;
    }
    for l in cert_lines(c) {
        p.data(&l);
    }
}
