//! `decom trace`: manifest → plan. Changes nothing.

use super::records::Record;
use super::{Printer, exit};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// The manifest (decom.toml).
    pub manifest: PathBuf,
    /// Where to write the plan.
    #[arg(short, long, default_value = "plan.json")]
    pub output: PathBuf,
    /// Replace an existing plan file (its approval, if any, becomes invalid).
    #[arg(long)]
    pub force: bool,
    /// The host whose disks the local locations are on, recorded on each
    /// (default: this machine's hostname); `decom plan merge` joins the
    /// plans of several hosts into one fleet plan.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Trace only the local locations and leave the S3 ones to one other
    /// host of the fleet (the plan is then only a part for plan merge).
    #[arg(long)]
    pub local_only: bool,
    #[command(flatten)]
    pub s3: super::S3Args,
}

pub fn run(a: &TraceArgs, p: &Printer) -> Result<u8> {
    let host = a.host.clone().unwrap_or_else(crate::util::hostname);
    crate::plan::fleet::check_host_name(&host).map_err(|m| Error::input(format!("--host: {m}")))?;
    let (m, sha) = Manifest::load(&a.manifest)?;
    let base = a
        .manifest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut resolved = m.resolve(sha, base)?;
    resolved.file = Some(a.manifest.clone());
    crate::plan::check_replaceable(&a.output, a.force)?;
    // Components decom cannot use are said, never dropped silently.
    let lists = [
        (
            &resolved.not_searched,
            "known component(s) cannot be searched for by content (no SHA-256, SHA-384 or SHA-512 hash, or a BOM type that is not a model artifact)",
        ),
        (
            &resolved.ignored_hashes,
            "hash(es) of algorithms decom does not match were ignored",
        ),
    ];
    for (list, what) in lists {
        if list.is_empty() {
            continue;
        }
        let tail = if p.verbose { ":" } else { " (-v lists them)" };
        p.warn(&format!("{} {what}{tail}", list.len()));
        if p.verbose {
            for n in list {
                p.info(&format!("  {} ({}): {}", n.component, n.origin, n.reason));
            }
        }
    }
    let progress = p.progress();
    let (plan, sha256) = crate::trace::trace(
        &resolved,
        &a.s3.settings(),
        (&host, a.local_only),
        &progress,
        &a.output,
    )?;
    if p.json {
        p.record(&Record::Traced {
            path: &a.output,
            sha256: &sha256,
            artifacts: plan.totals.artifacts,
            bytes: plan.totals.bytes,
            residual_risks: plan.residual_risks.len(),
            components_not_searched: &resolved.not_searched,
            hashes_ignored: &resolved.ignored_hashes,
        });
    } else {
        for r in &plan.residual_risks {
            p.warn(&format!(
                "residual risk [{}] {}: {}",
                r.kind, r.subject, r.detail
            ));
        }
        p.info(&format!(
            "traced {} artifact(s) ({} file(s), {}) into {}",
            plan.totals.artifacts,
            plan.totals.files,
            crate::util::human_bytes(plan.totals.bytes),
            a.output.display()
        ));
        p.info(&format!("next: the Data Custodian reviews it (decom show {0}) and approves it (decom approve {0} --key … --principal …)", a.output.display()));
    }
    Ok(exit::OK)
}
