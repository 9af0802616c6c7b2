//! `decom render`: the certificate as a PDF/A-3b document and/or a
//! self-contained HTML page for people, carrying the signed files inside.

use super::verify::ssh_keygen_commands;
use super::{Printer, exit};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::render::{Attachment, Report};
use crate::sign::{self, AllowedSigners, Role};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The certificate (its .sig files beside it). It is only read.
    pub certificate: PathBuf,
    /// Trusted signers: the signatures are checked and the file is attached.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: PathBuf,
    /// Write the PDF here (default, without --html: CERTIFICATE with .pdf).
    #[arg(long, value_name = "OUT")]
    pub pdf: Option<PathBuf>,
    /// Write the HTML page here.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
}

/// The files carried inside the documents, read once: the certificate, the
/// signatures that exist beside it, and the signers file.
pub fn attachments(cert_path: &Path, cert_bytes: &[u8], signers: &Path) -> Result<Vec<Attachment>> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut out = vec![Attachment {
        name: name(cert_path),
        description: "the signed disposal certificate (authoritative record)".into(),
        mime: "application/json",
        bytes: cert_bytes.to_vec(),
    }];
    for (role, what) in [
        (
            Role::Operator,
            "operator signature (SSHSIG, namespace decom-operator)",
        ),
        (
            Role::Custodian,
            "custodian co-signature (SSHSIG, namespace decom-custodian)",
        ),
    ] {
        let p = sign::sig_path(cert_path, role);
        match std::fs::read(&p) {
            Ok(bytes) => out.push(Attachment {
                name: name(&p),
                description: what.into(),
                mime: "text/plain",
                bytes,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    out.push(Attachment {
        name: "allowed_signers".into(),
        description: "the trusted signers file the signatures were checked against".into(),
        mime: "text/plain",
        bytes: crate::util::read_input(signers, "allowed signers", 16 << 20)?,
    });
    Ok(out)
}

fn refuse_overwriting_inputs(out: &Path, inputs: &[&Path]) -> Result<()> {
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    };
    for i in inputs {
        if same(out, i) {
            return Err(Error::input(format!(
                "{}: refusing to write the rendering over an input file",
                out.display()
            )));
        }
    }
    Ok(())
}

pub fn run(a: &RenderArgs, p: &Printer) -> Result<u8> {
    let (cert, bytes) = Certificate::load(&a.certificate)?;
    let signers = AllowedSigners::load(&a.allowed_signers)?;
    let cosigned = sign::sig_path(&a.certificate, Role::Custodian).exists();
    let checks = crate::cert::verify::verify(&a.certificate, &cert, &bytes, &signers, cosigned);
    let files = attachments(&a.certificate, &bytes, &a.allowed_signers)?;
    // The commands name the files as pdfdetach extracts them.
    let names = |p: &Path| PathBuf::from(p.file_name().unwrap_or_default());
    let commands = ssh_keygen_commands(
        &names(&a.certificate),
        Path::new("allowed_signers"),
        &cert,
        super::verify::cosigner(&a.certificate, &cert, &bytes, &signers).as_deref(),
    );
    let report = Report::new(&cert, &bytes, &checks, &files, commands);
    let pdf_out = match (&a.pdf, &a.html) {
        (None, None) => Some(a.certificate.with_extension("pdf")),
        (p, _) => p.clone(),
    };
    let op_sig = sign::sig_path(&a.certificate, Role::Operator);
    let cu_sig = sign::sig_path(&a.certificate, Role::Custodian);
    let inputs = [
        a.certificate.as_path(),
        a.allowed_signers.as_path(),
        op_sig.as_path(),
        cu_sig.as_path(),
    ];
    for out in pdf_out.iter().chain(a.html.iter()) {
        refuse_overwriting_inputs(out, &inputs)?;
    }
    if let Some(out) = &pdf_out {
        let pdf = crate::render::pdf(&report, &files)?;
        crate::util::write_atomic(out, &pdf)?;
        p.info(&format!(
            "wrote {} ({} bytes, PDF/A-3b)",
            out.display(),
            pdf.len()
        ));
    }
    if let Some(out) = &a.html {
        let html = crate::render::html(&report, &files);
        crate::util::write_atomic(out, html.as_bytes())?;
        p.info(&format!("wrote {} ({} bytes)", out.display(), html.len()));
    }
    if !report.verified {
        p.warn("the certificate did not verify; the rendering says so on its first page");
    }
    Ok(if report.verified {
        exit::OK
    } else {
        exit::INCOMPLETE
    })
}
