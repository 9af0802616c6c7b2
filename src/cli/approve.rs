//! `decom approve`: the Data Custodian signs the exact bytes of a plan.

use super::records::Record;
use super::{KeyArgs, Printer, exit};
use crate::error::Result;
use crate::plan::Plan;
use crate::sign::{self, AllowedSigners, Role, SigningKey};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The plan to approve.
    pub plan: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Check first that this key may sign as custodian for the principal.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Approve a plan that lists no artifact (its certificate will say
    /// "nothing found").
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub tsa: super::TsaArg,
}

pub fn run(a: &ApproveArgs, p: &Printer) -> Result<u8> {
    let (plan, bytes) = Plan::load(&a.plan)?;
    if plan.local_only {
        return Err(crate::error::Error::refused(format!(
            "{}: traced with --local-only, this plan leaves the S3 locations out; merge it with the other hosts' plans (decom plan merge) and approve the fleet plan",
            a.plan.display()
        )));
    }
    if plan.artifacts.is_empty() && !a.allow_empty {
        return Err(crate::error::Error::refused(format!(
            "{}: the plan lists no artifact; trace found nothing to dispose of (check the locations and component hashes), or pass --allow-empty to certify that nothing was found",
            a.plan.display()
        )));
    }
    p.can_ask(a.yes)?;
    let key = SigningKey::load(&a.key.key, &|path| p.ask_passphrase(path))?;
    if a.allowed_signers.is_none() {
        p.warn("the key was not checked against a trusted signers file: pass --allowed-signers FILE to check that it may approve as custodian (execute will refuse an approval it does not allow)");
    }
    if let Some(f) = &a.allowed_signers {
        let signers = AllowedSigners::load(f)?;
        sign::check_allowed(
            &signers,
            &key,
            &a.key.principal,
            Role::Custodian,
            sign::now_unix(),
        )?;
    }
    if !p.json {
        for l in super::show::plan_lines(&plan) {
            p.info(&l);
        }
    }
    p.confirm(
        &format!(
            "Approve the destruction of these {} artifact(s) as custodian {:?}?",
            plan.totals.artifacts, a.key.principal
        ),
        a.yes,
    )?;
    let earlier = a
        .tsa
        .before_signing(&sign::sig_path(&a.plan, Role::Custodian));
    let sig = sign::sign_file(&a.plan, &bytes, &key, Role::Custodian)?;
    a.tsa.stamp(&sig, earlier, p)?;
    if p.json {
        p.record(&Record::Approval {
            plan: &a.plan,
            plan_sha256: crate::hash::sha256_hex(&bytes),
            signature: &sig,
            principal: &a.key.principal,
            key_fingerprint: key.fingerprint(),
        });
    } else {
        p.info(&format!(
            "approved: wrote {} (custodian {}, {})",
            sig.display(),
            a.key.principal,
            key.fingerprint()
        ));
    }
    Ok(exit::OK)
}
