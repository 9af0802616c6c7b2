//! `decom verify`: check a certificate, say exactly what failed, and print
//! the `ssh-keygen -Y verify` commands that check the same signatures
//! without decom. The checks are library code ([`crate::cert::Evidence`]);
//! this file only presents them.

use super::records::Record;
use super::{Printer, exit};
use crate::cert::verify::CheckKind;
use crate::cert::{CoSignature, Evidence, Naming};
use crate::error::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The certificate (its .sig files beside it).
    pub certificate: PathBuf,
    /// Trusted signers (OpenSSH allowed_signers with namespaces= roles).
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: PathBuf,
    /// Also re-scan every location and prove that no disposed artifact
    /// exists again (at its path or key, or by content where matched by hash).
    #[arg(long)]
    pub recheck: bool,
    /// The approved plan, for --recheck (default: the file the certificate names, beside it).
    #[arg(long, value_name = "FILE", requires = "recheck")]
    pub plan: Option<PathBuf>,
    /// Check the RFC 3161 timestamps beside the signatures (SIG.tsr)
    /// against these trusted TSA certificates (PEM), and their order.
    #[arg(long, value_name = "FILE")]
    pub tsa_certs: Option<PathBuf>,
    #[command(flatten)]
    pub s3: super::S3Endpoint,
}

pub fn run(a: &VerifyArgs, p: &Printer) -> Result<u8> {
    let mut ev = Evidence::gather(&a.certificate, &a.allowed_signers, CoSignature::Required)?;
    if let Some(trust) = &a.tsa_certs {
        ev.check_timestamps(trust)?;
    }
    if a.recheck {
        ev.recheck(a.plan.as_deref(), &a.s3.settings(), &p.progress())?;
    }
    let ok = ev.verified();
    let commands = ev.ssh_keygen_commands(Naming::AsGiven);
    if p.json {
        for c in ev.checks() {
            p.record(&Record::Check(c));
        }
        p.record(&Record::Verdict {
            ok,
            certificate: &a.certificate,
            ssh_keygen: &commands,
        });
    } else {
        for c in ev.checks() {
            p.data(&format!(
                "{} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.kind,
                c.detail
            ));
        }
        let nothing = ev
            .certificate()
            .is_some_and(|c| c.status == crate::cert::Status::NothingFound);
        let uncosigned_part = ev.certificate().is_some_and(|c| c.part.is_some())
            && !ev
                .checks()
                .iter()
                .any(|c| c.kind == CheckKind::CustodianCoSignature);
        p.data(match (ok, nothing) {
            (true, _) if uncosigned_part => {
                "verified: one host's part, complete and valid (the custodian co-signs the fleet certificate that vouches for it, not the part)"
            }
            (true, false) => "verified: complete, valid and co-signed",
            (true, true) => "verified: valid and co-signed; NOTHING FOUND, nothing was disposed",
            (false, _) => "NOT verified",
        });
        if !commands.is_empty() {
            p.info("the same signatures, checked without decom:");
            for c in &commands {
                p.info(&format!("  {c}"));
            }
        }
    }
    Ok(if ok { exit::OK } else { exit::INCOMPLETE })
}
