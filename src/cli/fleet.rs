//! `decom plan merge` (per-host plans → one fleet plan) and `decom collect`
//! (per-host part certificates → one fleet certificate). The checks are
//! library code ([`crate::plan::fleet`], [`crate::cert::fleet`]).

use super::records::Record;
use super::{KeyArgs, Printer, exit};
use crate::cert::{Party, RunFiles, Status};
use crate::error::{Error, Result};
use crate::sign::{self, AllowedSigners, SigningKey};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: PlanCommand,
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Join the plans of several hosts (each from `decom trace --host`) into one fleet plan.
    Merge(MergeArgs),
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The per-host plans, one per host.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// Where to write the fleet plan.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace an existing plan file (its approval, if any, becomes invalid).
    #[arg(long)]
    pub force: bool,
}

pub fn plan(a: &PlanArgs, p: &Printer) -> Result<u8> {
    match &a.command {
        PlanCommand::Merge(m) => merge(m, p),
    }
}

fn merge(a: &MergeArgs, p: &Printer) -> Result<u8> {
    crate::plan::check_replaceable(&a.output, a.force)?;
    if a.parts.iter().any(|part| part == &a.output) {
        return Err(Error::input(format!(
            "{}: the output is one of the plans to merge",
            a.output.display()
        )));
    }
    let merged = crate::plan::fleet::merge(&a.parts, &a.output)?;
    if p.json {
        p.record(&Record::Merged {
            path: &a.output,
            sha256: &merged.sha256,
            hosts: &merged.hosts,
            s3_locations: merged.s3_locations,
            totals: &merged.totals,
        });
    } else {
        for h in &merged.hosts {
            p.info(&format!(
                "{}: {} location(s), {} artifact(s), {}",
                h.host,
                h.locations.len(),
                h.totals.artifacts,
                crate::util::human_bytes(h.totals.bytes)
            ));
        }
        p.info(&format!(
            "wrote fleet plan {} ({} host(s), {} S3 location(s), {} artifact(s), {}); next: the custodian reviews and approves it (decom show, decom approve)",
            a.output.display(),
            merged.hosts.len(),
            merged.s3_locations,
            merged.totals.artifacts,
            crate::util::human_bytes(merged.totals.bytes)
        ));
    }
    Ok(exit::OK)
}

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// The approved fleet plan (PLAN.custodian.sig beside it).
    pub plan: PathBuf,
    /// The part certificates (certificate.HOST.json, each with its .operator.sig).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// Where to write the fleet certificate; accepted parts are copied into parts/ beside it.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Trusted signers (OpenSSH allowed_signers with namespaces= roles).
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

pub fn collect(a: &CollectArgs, p: &Printer) -> Result<u8> {
    let signers = AllowedSigners::load(&a.allowed_signers)?;
    let key = SigningKey::load(&a.key.key, &|path| p.ask_passphrase(path))?;
    let signed = crate::plan::approved::SignedPlan::verify_ids(
        &a.plan,
        &signers,
        &key,
        &a.key.principal,
        sign::now_unix(),
    )?;
    p.can_ask(a.yes)?;
    if a.parts.iter().any(|part| part == &a.output) {
        return Err(Error::input(format!(
            "{}: the output is one of the parts",
            a.output.display()
        )));
    }
    let files = RunFiles::of_certificate(&a.output);
    crate::util::check_dir(files.folder(), "--output")?;
    p.confirm(
        &format!(
            "Collect {} part(s) of a plan for {} host(s) and sign the fleet certificate as operator {:?}?",
            a.parts.len(),
            signed.plan.local_hosts().len(),
            signed.operator.principal
        ),
        a.yes,
    )?;
    let operator = Party::new(&signed.operator, Default::default());
    let cert = crate::cert::fleet::collect(crate::cert::fleet::CollectInputs {
        plan: &signed,
        parts: &a.parts,
        certificate: &a.output,
        signers: &signers,
        operator,
    })?;
    let sig = super::execute::write_certificate(&files, &cert, &key)?;
    let fleet = cert.fleet.as_ref().expect("collect writes a fleet");
    if p.json {
        p.record(&Record::Collected {
            path: &a.output,
            signature: &sig,
            status: cert.status,
            coverage: &fleet.coverage,
            totals: &cert.totals,
        });
    } else {
        for l in super::show::cert_lines(&cert) {
            p.info(&l);
        }
        for why in &fleet.coverage.problems {
            p.warn(why);
        }
        p.info(&format!(
            "wrote {} and {}",
            a.output.display(),
            sig.display()
        ));
        if cert.status == Status::Complete {
            p.info(&format!(
                "next: the custodian co-signs it (decom cosign {} …)",
                a.output.display()
            ));
        } else {
            p.warn(&format!(
                "fleet disposal {}: {} of {} host(s) reported a part",
                crate::cert::status_name(cert.status).to_uppercase(),
                fleet.coverage.reported,
                fleet.coverage.hosts
            ));
        }
    }
    Ok(
        if matches!(cert.status, Status::Complete | Status::NothingFound) {
            exit::OK
        } else {
            exit::INCOMPLETE
        },
    )
}
