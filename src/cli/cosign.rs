//! `decom cosign`: the custodian checks the operator's signature and the link
//! to the approved plan, then co-signs the certificate.

use super::records::Record;
use super::{KeyArgs, Printer, exit};
use crate::cert::{CoSignature, Evidence};
use crate::error::{Error, Result};
use crate::sign::{self, Role, SigningKey};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CosignArgs {
    /// The certificate to co-sign.
    pub certificate: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Trusted signers (OpenSSH allowed_signers with namespaces= roles).
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub tsa: super::TsaArg,
}

pub fn run(a: &CosignArgs, p: &Printer) -> Result<u8> {
    let ev = Evidence::gather(&a.certificate, &a.allowed_signers, CoSignature::NotYet)?;
    p.can_ask(a.yes)?;
    if let Some(c) = ev.first_failure() {
        return Err(Error::refused(format!(
            "refusing to co-sign: {}: {}",
            c.kind, c.detail
        )));
    }
    let cert = ev.require_certificate()?;
    let bytes = ev.bytes();
    let signers = ev.signers();
    let key = SigningKey::load(&a.key.key, &|path| p.ask_passphrase(path))?;
    let me = sign::check_allowed(
        signers,
        &key,
        &a.key.principal,
        Role::Custodian,
        sign::now_unix(),
    )?;
    sign::two_person(&cert.operator.signer(), std::slice::from_ref(&me)).map_err(Error::refused)?;
    if !p.json {
        for l in super::show::cert_lines(cert) {
            p.info(&l);
        }
    }
    p.confirm(
        &format!(
            "Co-sign this {:?} certificate as custodian {:?}?",
            cert.status, me.principal
        ),
        a.yes,
    )?;
    let earlier = a
        .tsa
        .before_signing(&sign::sig_path(&a.certificate, Role::Custodian));
    let sig = sign::sign_file(&a.certificate, bytes, &key, Role::Custodian)?;
    a.tsa.stamp(&sig, earlier, p)?;
    if p.json {
        p.record(&Record::Cosignature {
            certificate: &a.certificate,
            signature: &sig,
            principal: &me.principal,
            key_fingerprint: &me.key_fingerprint,
        });
    } else {
        p.info(&format!("co-signed: wrote {}", sig.display()));
    }
    Ok(exit::OK)
}
