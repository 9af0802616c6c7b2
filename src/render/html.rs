//! The same report as one self-contained HTML page: inline CSS, no scripts,
//! no external resources; the attachments are `data:` links that download
//! the exact bytes.

use super::{Attachment, Report};
use base64::Engine;
use std::fmt::Write;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn verdict(ok: bool, text: &str) -> String {
    format!(
        "<span class=\"{}\">{}</span>",
        if ok { "ok" } else { "bad" },
        esc(text)
    )
}

/// A table from a header and rows of already-escaped cells.
fn table(out: &mut String, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    out.push_str("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1b1b1b}\
h1{font-size:1.6em;margin-bottom:0}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\
.sub{color:#555}.banner{padding:.6em 1em;border:1px solid;border-radius:3px;margin:1em 0}\
.banner.good{background:#e6f4ea;border-color:#1a7f37}.banner.badb{background:#fde8e7;border-color:#b42318}\
.status{font-size:1.4em;font-weight:bold;margin-right:1em}.ok{color:#1a7f37;font-weight:bold}.bad{color:#b42318;font-weight:bold}\
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f2f2f2}code,.mono{font-family:ui-monospace,monospace;font-size:.88em;overflow-wrap:anywhere}\
td{overflow-wrap:anywhere}.parties{display:grid;grid-template-columns:1fr 1fr;gap:1em}\
.party{border:1px solid #bbb;padding:.6em}pre{background:#f5f5f5;padding:.5em;white-space:pre-wrap;overflow-wrap:anywhere}\
dl{display:grid;grid-template-columns:13em 1fr;gap:.2em 1em}dt{color:#555}dd{margin:0;overflow-wrap:anywhere}";

/// Render the page.
pub fn html(r: &Report, attachments: &[Attachment]) -> String {
    let mut o = String::new();
    banner(&mut o, r);
    people(&mut o, r);
    standards_and_checks(&mut o, r);
    hosts_and_locations(&mut o, r);
    artifacts(&mut o, r);
    attached(&mut o, r, attachments);
    o.push_str("</body></html>\n");
    o
}

/// The head, the title and the status banner.
fn banner(o: &mut String, r: &Report) {
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&r.title)
    );
    let _ = write!(
        o,
        "<h1>Certificate of AI model disposal</h1>\n<p class=\"sub\">NIST SP 800-88 Rev. 2 and IEEE 2883 sanitization record · \
         ETSI EN 304 223 provisions 5.5.1-1 and 5.5.1-2 · NIST SP 800-88 Rev. 1 Appendix G fields · {}</p>\n",
        esc(&r.certificate_id)
    );
    let good = r.complete && r.verified;
    let _ = writeln!(
        o,
        "<div class=\"banner {}\"><span class=\"status {}\">{}</span>{}</div>",
        if good { "good" } else { "badb" },
        if r.complete { "ok" } else { "bad" },
        esc(&r.status),
        if r.verified {
            format!(
                "signatures and consistency verified by {} at rendering",
                esc(&r.tool)
            )
        } else {
            verdict(false, "NOT VERIFIED: see the checks below")
        }
    );
}

/// The summary and each party with its signature.
fn people(o: &mut String, r: &Report) {
    o.push_str("<h2>At a glance</h2>\n");
    table(
        o,
        &["", ""],
        r.glance
            .iter()
            .map(|f| vec![format!("<strong>{}</strong>", esc(&f.label)), esc(&f.value)]),
    );
    o.push_str("<h2>Summary</h2>\n<dl>");
    for f in &r.summary {
        let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", esc(&f.label), esc(&f.value));
    }
    o.push_str("</dl>\n<h2>People and signatures</h2>\n<div class=\"parties\">");
    for p in &r.parties {
        let _ = write!(
            o,
            "<div class=\"party\"><strong>{}</strong><dl>",
            esc(&p.role)
        );
        for f in &p.person {
            let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", esc(&f.label), esc(&f.value));
        }
        let _ = write!(
            o,
            "<dt>Principal</dt><dd>{}</dd><dt>Key</dt><dd><code>{}</code></dd></dl>{}</div>",
            esc(&p.principal),
            esc(&p.fingerprint),
            verdict(p.signature_ok, &p.signature)
        );
    }
    o.push_str("</div>\n");
}

/// The Appendix G fields, the standards and the checks.
fn standards_and_checks(o: &mut String, r: &Report) {
    o.push_str("<h2>Sanitization (NIST SP 800-88 Rev. 2, IEEE 2883)</h2>\n");
    table(
        o,
        &["Method", "Technique", "Artifacts", "Size", "Validation"],
        r.sanitization.iter().map(|x| {
            vec![
                esc(&x.method),
                esc(&x.technique),
                x.artifacts.to_string(),
                esc(&x.size),
                esc(&x.validation),
            ]
        }),
    );
    if !r.retained.is_empty() {
        o.push_str("<h2>Retained by policy</h2>\n");
        table(
            o,
            &[
                "What",
                "Path",
                "Reason",
                "Owner",
                "Until",
                "Found at disposal",
            ],
            r.retained.iter().map(|x| {
                vec![
                    esc(&x.what),
                    format!("<code>{}</code>", esc(&x.path)),
                    esc(&x.reason),
                    esc(&x.owner),
                    esc(&x.until),
                    esc(&x.found),
                ]
            }),
        );
    }
    o.push_str("<h2>NIST SP 800-88 Rev. 1 (withdrawn 2025), Appendix G fields</h2>\n");
    table(
        o,
        &["Field", "Value"],
        r.nist.iter().map(|f| vec![esc(&f.label), esc(&f.value)]),
    );
    o.push_str("<h2>Standards and the evidence for each</h2>\n");
    table(
        o,
        &["Provision", "Evidence in this certificate"],
        r.standards
            .iter()
            .map(|f| vec![esc(&f.label), esc(&f.value)]),
    );
    o.push_str("<h2>Checks</h2>\n");
    table(
        o,
        &["Check", "Result", "Detail"],
        r.checks.iter().map(|c| {
            vec![
                esc(&c.name),
                verdict(c.ok, if c.ok { "ok" } else { "FAIL" }),
                esc(&c.detail),
            ]
        }),
    );
}

/// A fleet's hosts, the locations and the residual risks.
fn hosts_and_locations(o: &mut String, r: &Report) {
    if !r.hosts.is_empty() {
        o.push_str("<h2>Hosts (fleet)</h2>\n");
        table(
            o,
            &[
                "Host",
                "Status",
                "Artifacts",
                "Size",
                "Part certificate",
                "Operator",
            ],
            r.hosts.iter().map(|h| {
                vec![
                    esc(&h.host),
                    verdict(h.complete, &h.status),
                    h.artifacts.to_string(),
                    esc(&h.size),
                    format!("<code>{}</code>", esc(&h.part)),
                    esc(&h.operator),
                ]
            }),
        );
    }
    o.push_str("<h2>Locations and outcomes</h2>\n");
    table(
        o,
        &["#", "Location", "Medium", "Artifacts", "Size", "Outcomes"],
        r.locations.iter().map(|l| {
            vec![
                l.index.to_string(),
                format!("<code>{}</code>", esc(&l.uri)),
                esc(&l.medium),
                l.artifacts.to_string(),
                esc(&l.size),
                esc(&l.outcomes),
            ]
        }),
    );
    o.push_str("<h2>Residual risks</h2>\n");
    if r.risks.is_empty() {
        o.push_str("<p>None recorded.</p>\n");
    } else {
        table(
            o,
            &["Kind", "Subject", "Detail"],
            r.risks.iter().map(|x| {
                vec![
                    esc(&x.kind),
                    format!("<code>{}</code>", esc(&x.subject_lines.concat())),
                    esc(&x.detail),
                ]
            }),
        );
    }
}

/// Every artifact with its outcome.
fn artifacts(o: &mut String, r: &Report) {
    o.push_str("<h2>Artifacts</h2>\n");
    table(
        o,
        &[
            "ID",
            "Loc",
            "Kind",
            "Path and SHA-256 before disposal",
            "Size",
            "Outcome",
        ],
        r.artifacts.iter().map(|a| {
            let mut path = format!("<code>{}</code>", esc(&a.path));
            if let Some(h) = &a.sha256 {
                let _ = write!(path, "<br><span class=\"mono\">{}</span>", esc(h));
            }
            if let Some(why) = &a.reason {
                let _ = write!(path, "<br>{}", verdict(false, why));
            }
            vec![
                a.id.to_string(),
                a.location.to_string(),
                esc(&a.kind),
                path,
                esc(&a.size),
                format!("{}<br>{}", verdict(a.ok, &a.outcome), esc(&a.category)),
            ]
        }),
    );
}

/// The attached files as downloads, and the commands that check them.
fn attached(o: &mut String, r: &Report, attachments: &[Attachment]) {
    o.push_str(
        "<h2>Attached files</h2>\n<p>The exact bytes of these files are embedded in this page \
         (each name downloads its file). The certificate is the authoritative record; anyone can \
         check its signatures without decom:</p>\n",
    );
    table(
        o,
        &["File", "SHA-256", "Bytes"],
        r.attachments.iter().zip(attachments).map(|(v, a)| {
            vec![
                format!(
                    "<a download=\"{0}\" href=\"data:{1};base64,{2}\">{0}</a>",
                    esc(&a.name),
                    a.mime,
                    base64::engine::general_purpose::STANDARD.encode(&a.bytes)
                ),
                format!("<span class=\"mono\">{}</span>", esc(&v.sha256)),
                v.size.to_string(),
            ]
        }),
    );
    for c in &r.verify_commands {
        let _ = writeln!(o, "<pre>{}</pre>", esc(c));
    }
}
