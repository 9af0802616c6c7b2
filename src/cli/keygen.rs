//! `decom keygen`: an Ed25519 key pair in OpenSSH format.

use super::env::KEY_PASSPHRASE;
use super::records::Record;
use super::{Printer, exit};
use crate::error::{Error, Result};
use crate::sign::key;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the private key (the public key goes to PATH.pub).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Comment stored in the key: your principal, as the trusted signers
    /// file will name you (e.g. your e-mail address).
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Write the private key unencrypted.
    #[arg(long)]
    pub no_passphrase: bool,
}

pub fn run(a: &KeygenArgs, p: &Printer) -> Result<u8> {
    let passphrase = if a.no_passphrase {
        None
    } else if let Some(pass) = super::env::key_passphrase() {
        Some(pass)
    } else if std::io::stdin().is_terminal() {
        let one = rpassword::prompt_password("Passphrase for the new key: ")
            .map_err(|e| Error::io("<terminal>", e))?;
        let two = rpassword::prompt_password("Same passphrase again: ")
            .map_err(|e| Error::io("<terminal>", e))?;
        if one != two {
            return Err(Error::input("the passphrases differ; no key written"));
        }
        if one.is_empty() {
            return Err(Error::input(
                "empty passphrase; use --no-passphrase for an unencrypted key",
            ));
        }
        Some(one)
    } else {
        return Err(Error::input(format!(
            "no terminal to ask for a passphrase: set {KEY_PASSPHRASE}, or pass --no-passphrase for an unencrypted key"
        )));
    };
    let fp = key::generate(&a.out, &a.comment, passphrase.as_deref())?;
    let public = std::fs::read_to_string(format!("{}.pub", a.out.display()))
        .map_err(|e| Error::io(&a.out, e))?;
    if p.json {
        p.record(&Record::Key {
            private: &a.out,
            public: format!("{}.pub", a.out.display()),
            fingerprint: &fp,
            encrypted: passphrase.is_some(),
        });
    } else {
        p.data(&fp);
        p.info(&format!(
            "wrote {} and {}.pub",
            a.out.display(),
            a.out.display()
        ));
        let principal = match a.comment.trim() {
            "" => "PRINCIPAL",
            c => c,
        };
        p.info("add one of these lines to the trusted signers file (allowed_signers):");
        for (role, namespace) in [
            ("a Data Custodian", crate::sign::CUSTODIAN),
            ("an operator", crate::sign::OPERATOR),
        ] {
            p.info(&format!("  # if you are {role}:"));
            p.info(&format!(
                "  {principal} namespaces=\"{namespace}\" {}",
                public.trim()
            ));
        }
        if principal == "PRINCIPAL" {
            p.info("  (replace PRINCIPAL with your name as signers know it; --comment sets it)");
        }
    }
    Ok(exit::OK)
}
