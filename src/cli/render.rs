//! `decom render`: the certificate as a PDF/A-3b document and/or a
//! self-contained HTML page for people, carrying the signed files inside.
//! The evidence and its wording are library code (`cert::Evidence`,
//! `render::Report`); this file picks the outputs and writes them.

use super::{Printer, exit};
use crate::cert::{CoSignature, Evidence};
use crate::error::{Error, Result};
use crate::render::Report;
use crate::sign::Role;
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
    /// Check the RFC 3161 timestamps against these trusted TSA
    /// certificates (PEM) and show the result on the first page.
    #[arg(long, value_name = "FILE")]
    pub tsa_certs: Option<PathBuf>,
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
    let pdf_out = match (&a.pdf, &a.html) {
        (None, None) => Some(a.certificate.with_extension("pdf")),
        (p, _) => p.clone(),
    };
    let mut ev = Evidence::gather(&a.certificate, &a.allowed_signers, CoSignature::IfPresent)?;
    if let Some(trust) = &a.tsa_certs {
        ev.check_timestamps(trust)?;
    }
    let op_sig = ev.files().signature(Role::Operator);
    let cu_sig = ev.files().signature(Role::Custodian);
    let inputs = [
        a.certificate.as_path(),
        a.allowed_signers.as_path(),
        op_sig.as_path(),
        cu_sig.as_path(),
    ];
    for out in pdf_out.iter().chain(a.html.iter()) {
        refuse_overwriting_inputs(out, &inputs)?;
    }
    let files = ev.attachments()?;
    let report = Report::new(&ev, &files)?;
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
