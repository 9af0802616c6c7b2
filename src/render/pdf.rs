//! PDF/A-3b through typst: a minimal in-memory [`World`] whose files are the
//! template, the report as JSON and the attachments, and whose fonts are the
//! three bundled DejaVu faces (nothing is read from the system, so the
//! output does not depend on the machine).

use super::{Attachment, Report};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::LazyLock;
use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards, Timestamp};

const TEMPLATE: &str = include_str!("certificate.typ");

static FONTS: LazyLock<(LazyHash<FontBook>, Vec<Font>)> = LazyLock::new(|| {
    let fonts: Vec<Font> = [
        &include_bytes!("../../assets/fonts/DejaVuSans.ttf")[..],
        &include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf")[..],
        &include_bytes!("../../assets/fonts/DejaVuSansMono.ttf")[..],
    ]
    .into_iter()
    .flat_map(|data| Font::iter(Bytes::new(data)))
    .collect();
    (LazyHash::new(FontBook::from_fonts(&fonts)), fonts)
});

static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

struct Doc {
    main: FileId,
    source: Source,
    files: HashMap<FileId, Bytes>,
    today: Option<Datetime>,
}

fn file_id(name: &str) -> FileId {
    let vpath = VirtualPath::new(format!("/{name}")).expect("fixed, valid names");
    FileId::new(RootedPath::new(VirtualRoot::Project, vpath))
}

impl World for Doc {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }
    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.0
    }
    fn main(&self) -> FileId {
        self.main
    }
    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main {
            Ok(self.source.clone())
        } else {
            Err(FileError::NotSource)
        }
    }
    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.main {
            return Ok(Bytes::from_string(self.source.clone()));
        }
        self.files
            .get(&id)
            .cloned()
            .ok_or_else(|| FileError::NotFound(id.vpath().get_with_slash().into()))
    }
    fn font(&self, index: usize) -> Option<Font> {
        FONTS.1.get(index).cloned()
    }
    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        self.today
    }
}

/// The issue time of the certificate as a typst datetime (the document's
/// date, so rendering the same certificate twice gives the same PDF).
fn issued(report: &Report) -> Option<Datetime> {
    let t = crate::util::parse_rfc3339(&report.issued).ok()?;
    Datetime::from_ymd_hms(
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
}

/// Render the PDF/A-3b document with `attachments` embedded.
pub fn pdf(report: &Report, attachments: &[Attachment]) -> Result<Vec<u8>> {
    let main = file_id("certificate.typ");
    let mut files = HashMap::new();
    files.insert(
        file_id("report.json"),
        Bytes::new(serde_json::to_vec(report).expect("reports serialize")),
    );
    let mut listed = Vec::new();
    for a in attachments {
        files.insert(
            file_id(&format!("attachments/{}", a.name)),
            Bytes::new(a.bytes.clone()),
        );
        listed.push(serde_json::json!({
            "name": a.name, "description": a.description, "mime": a.mime,
        }));
    }
    files.insert(
        file_id("attachments.json"),
        Bytes::new(serde_json::to_vec(&listed).expect("names serialize")),
    );
    let today = issued(report);
    let doc = Doc {
        main,
        source: Source::new(main, TEMPLATE.to_string()),
        files,
        today,
    };
    let fail = |what: &str, diags: &[typst::diag::SourceDiagnostic]| {
        let msgs: Vec<String> = diags
            .iter()
            .map(|d| {
                // Where in the template, for whoever changes it.
                let line = typst::WorldExt::range(&doc, d.span)
                    .and_then(|r| doc.source.lines().byte_to_line(r.start))
                    .map(|l| format!(" (certificate.typ line {})", l + 1))
                    .unwrap_or_default();
                format!("{}{line}", d.message)
            })
            .collect();
        Error::input(format!("cannot {what} the PDF: {}", msgs.join("; ")))
    };
    let compiled: PagedDocument = typst::compile(&doc)
        .output
        .map_err(|d| fail("lay out", &d))?;
    let options = PdfOptions {
        ident: Smart::Custom(report.certificate_id.clone()),
        creator: Smart::Custom(Some(report.tool.clone())),
        timestamp: today.map(Timestamp::new_utc),
        standards: PdfStandards::new(&[PdfStandard::A_3b])
            .map_err(|e| Error::input(format!("PDF/A-3b: {}", e.message())))?,
        ..PdfOptions::default()
    };
    let mut bytes = typst_pdf::pdf(&compiled, &options).map_err(|d| fail("write", &d))?;
    quiet_suspects(&mut bytes);
    Ok(bytes)
}

/// typst writes `/MarkInfo<</Marked true/Suspects false>>`: valid PDF, but
/// poppler up to 25.11 (pdfinfo, what auditors run) answers every
/// `/Suspects` that is not `true` with "Syntax Error: Suspects object is
/// wrong type (boolean)" (its Catalog.cc). `false` is the default, so the
/// entry is blanked to spaces of the same length: every byte offset, and
/// so the cross-reference table, stays as it was.
fn quiet_suspects(pdf: &mut [u8]) {
    const ENTRY: &[u8] = b"/Suspects false";
    if let Some(at) = memchr::memmem::find(pdf, b"/MarkInfo<</Marked true/Suspects false>>") {
        let start = at + b"/MarkInfo<</Marked true".len();
        pdf[start..start + ENTRY.len()].fill(b' ');
    }
}
