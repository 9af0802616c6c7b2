//! The certificate for people and for the archive: the PDF/A-3b rendering
//! (checked with poppler's pdfinfo, pdftotext and pdfdetach, qpdf, and the
//! extracted attachments with the real ssh-keygen), the HTML page, the
//! write-once archive (a moto bucket with object lock; a local hash-chained
//! index), and `verify --recheck`.

use crate::common::*;
use crate::s3::{S3Env, aws_env, endpoint};
use std::path::Path;
use std::process::Command;

fn tool(name: &str, args: &[&str]) -> Run {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} must be installed (scripts/test.sh installs poppler-utils): {e}")
    });
    Run::from(out)
}

/// A model of `n` extra shards, disposed, co-signed.
fn disposed(n: usize) -> Env {
    let env = Env::new();
    env.file("models/m/model.safetensors", &random_bytes(300_000));
    env.file("models/m/config.json", br#"{"layers": 2}"#);
    for i in 0..n {
        env.file(
            &format!("models/m/shards/a-rather-long-directory-name-for-wrapping/shard-{i:04}.bin"),
            &random_bytes(100),
        );
    }
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    let mut a = env.execute_args();
    a.extend(
        [
            "--operator-name",
            "Olivia Operator",
            "--operator-location",
            "Frankfurt, hall B",
            "--operator-contact",
            "ops@example.org",
        ]
        .map(String::from),
    );
    env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    env.cosign().ok();
    env
}

fn render(env: &Env, extra: &[&str]) -> Run {
    let mut args = vec![
        "render",
        "certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn pdftotext(pdf: &Path) -> String {
    let r = tool("pdftotext", &["-layout", pdf.to_str().unwrap(), "-"]);
    r.ok();
    r.stdout
}

fn pages(pdf: &Path) -> u32 {
    let r = tool("pdfinfo", &[pdf.to_str().unwrap()]);
    r.ok();
    // Nothing at all on stderr: poppler's "Suspects object is wrong type"
    // (for typst's valid `/Suspects false`) is gone too.
    assert_eq!(r.stderr, "", "pdfinfo has something to say");
    // qpdf judges the structure: xref, objects, streams.
    let q = tool("qpdf", &["--check", pdf.to_str().unwrap()]);
    q.ok();
    assert!(
        q.stdout
            .contains("No syntax or stream encoding errors found"),
        "{}",
        q.stdout
    );
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .expect("pdfinfo prints Pages:")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn pdf_shows_model_status_and_fingerprints_and_carries_the_signed_files() {
    let env = disposed(3);
    let cert_before = std::fs::read(env.cert()).unwrap();
    let sigs_before = sha256_file(&env.path("certificate.json.custodian.sig"));
    render(&env, &["--pdf", "cert.pdf", "--html", "cert.html"]).ok();
    assert_eq!(
        std::fs::read(env.cert()).unwrap(),
        cert_before,
        "rendering never changes certificate.json"
    );
    assert_eq!(
        sha256_file(&env.path("certificate.json.custodian.sig")),
        sigs_before
    );
    let pdf = env.path("cert.pdf");

    // A PDF/A-3b document of at most three pages for a small model (the
    // first page answers the auditor's questions, then the tables).
    let n = pages(&pdf);
    assert!((1..=3).contains(&n), "{n} pages");
    let meta = tool("pdfinfo", &["-meta", pdf.to_str().unwrap()]);
    meta.ok();
    assert!(
        meta.stdout.contains("<pdfaid:part>3</pdfaid:part>")
            && meta
                .stdout
                .contains("<pdfaid:conformance>B</pdfaid:conformance>"),
        "PDF/A-3b identification in the XMP metadata:\n{}",
        meta.stdout
    );

    let text = pdftotext(&pdf);
    let c = env.cert_json();
    assert_eq!(c["operator"]["details"]["location"], "Frankfurt, hall B");
    assert_eq!(c["operator"]["details"]["name"], "Olivia Operator");
    for needle in [
        "test-model 1.0",
        "COMPLETE",
        c["operator"]["key_fingerprint"].as_str().unwrap(),
        c["custodian"]["key_fingerprint"].as_str().unwrap(),
        c["id"].as_str().unwrap(),
        "5.5.1-1",
        "5.5.1-2",
        "Frankfurt, hall B",
        "ops@example.org",
    ] {
        assert!(
            text.contains(needle),
            "the PDF text lacks {needle:?}:\n{text}"
        );
    }

    // The attachments come out byte-identical, and ssh-keygen accepts them.
    let out = env.path("detached");
    std::fs::create_dir(&out).unwrap();
    tool(
        "pdfdetach",
        &[
            "-saveall",
            "-o",
            out.to_str().unwrap(),
            pdf.to_str().unwrap(),
        ],
    )
    .ok();
    for (name, original) in [
        ("certificate.json", env.cert()),
        (
            "certificate.json.operator.sig",
            env.path("certificate.json.operator.sig"),
        ),
        (
            "certificate.json.custodian.sig",
            env.path("certificate.json.custodian.sig"),
        ),
        ("allowed_signers", env.signers()),
    ] {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(&original).unwrap(),
            "{name} is attached byte for byte"
        );
    }
    let when = format!(
        "-Overify-time={}",
        c["issued"]
            .as_str()
            .unwrap()
            .replace(['-', ':', 'T', 'Z'], "")
    );
    for (who, ns, sig) in [
        (OPERATOR, "decom-operator", "certificate.json.operator.sig"),
        (
            CUSTODIAN,
            "decom-custodian",
            "certificate.json.custodian.sig",
        ),
    ] {
        let r = Command::new("ssh-keygen")
            .current_dir(&out)
            .args(["-Y", "verify", "-f", "allowed_signers", "-I", who, "-n", ns])
            .args(["-s", sig, &when])
            .stdin(std::fs::File::open(out.join("certificate.json")).unwrap())
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "ssh-keygen rejects the extracted {sig}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }

    // The HTML page: same facts, self-contained, the certificate inside.
    let html = std::fs::read_to_string(env.path("cert.html")).unwrap();
    for needle in [
        "test-model 1.0",
        "COMPLETE",
        c["operator"]["key_fingerprint"].as_str().unwrap(),
        c["custodian"]["key_fingerprint"].as_str().unwrap(),
    ] {
        assert!(html.contains(needle), "the HTML lacks {needle:?}");
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&cert_before);
    assert!(html.contains(&format!("data:application/json;base64,{b64}\"")));
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
}

#[test]
fn long_artifact_lists_continue_on_further_pages() {
    let env = disposed(160);
    render(&env, &[]).ok(); // default: certificate.pdf beside it
    let pdf = env.path("certificate.pdf");
    assert!(pages(&pdf) >= 3, "{} pages", pages(&pdf));
    let text = pdftotext(&pdf);
    // The last artifact of the list made it into the document.
    let c = env.cert_json();
    let last = c["artifacts"].as_array().unwrap().len();
    assert!(text.contains("shard-0159.bin"), "{text}");
    assert!(text.contains(&format!("{last}")));
}

#[test]
fn an_unsigned_or_incomplete_certificate_says_so_on_its_first_page() {
    let env = disposed(0);
    // Tamper: the PDF must report the broken signature, not hide it.
    let c = std::fs::read_to_string(env.cert()).unwrap();
    std::fs::write(env.cert(), c.replace("test-model", "test-modeI")).unwrap();
    let r = render(&env, &["--pdf", "bad.pdf"]);
    r.code(1);
    let text = pdftotext(&env.path("bad.pdf"));
    let first = text.split('\u{c}').next().unwrap();
    assert!(first.contains("NOT VERIFIED"), "{first}");
    assert!(first.contains("NOT VALID"), "{first}");
}

#[test]
fn render_refuses_to_write_over_its_inputs() {
    let env = disposed(0);
    let before = std::fs::read(env.cert()).unwrap();
    render(&env, &["--pdf", "certificate.json"])
        .code(2)
        .one_line_error("input file");
    assert_eq!(std::fs::read(env.cert()).unwrap(), before);
}

fn archive(env: &Env, to: &str) -> Run {
    env.run(&[
        "archive",
        "certificate.json",
        "--to",
        to,
        "--allowed-signers",
        "keys/allowed_signers",
    ])
}

#[test]
fn local_archive_index_detects_a_removed_or_edited_entry() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_str().unwrap().to_string();
    let envs: Vec<Env> = (0..3).map(|_| disposed(1)).collect();
    for e in &envs {
        archive(e, &dir).ok();
    }
    // Archiving the same evidence again adds nothing.
    let again = archive(&envs[0], &dir);
    again.ok();
    assert!(
        again.stdout.contains("already archived"),
        "{}",
        again.stdout
    );
    let verify = |env: &Env| env.run(&["archive", "--verify", &dir]);
    verify(&envs[0]).ok();

    // The bundle holds the evidence named by the issue.
    let index = store.path().join("index.jsonl");
    let text = std::fs::read_to_string(&index).unwrap();
    assert_eq!(text.lines().count(), 3);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let tar = store.path().join(first["bundle"].as_str().unwrap());
    let list = tool("tar", &["-tf", tar.to_str().unwrap()]);
    list.ok();
    for m in [
        "certificate.json",
        "certificate.json.operator.sig",
        "certificate.json.custodian.sig",
        "plan.json",
        "plan.json.custodian.sig",
        "journal.jsonl",
        "allowed_signers",
        "certificate.pdf",
    ] {
        assert!(
            list.stdout.lines().any(|l| l == m),
            "{m} in {}",
            list.stdout
        );
    }

    let lines: Vec<&str> = text.lines().collect();
    let put = |ls: &[String]| std::fs::write(&index, ls.join("\n") + "\n").unwrap();
    let own = |ls: &[&str]| ls.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // An edited entry (its status changed).
    let mut edited = own(&lines);
    edited[1] = edited[1].replace("\"status\":\"complete\"", "\"status\":\"incomplete\"");
    assert_ne!(edited[1], lines[1]);
    put(&edited);
    let r = verify(&envs[0]);
    r.code(1);
    assert!(
        r.stdout.contains("line 2") && r.stdout.contains("edited"),
        "{}",
        r.stdout
    );

    // A removed entry in the middle.
    put(&own(&[lines[0], lines[2]]));
    let r = verify(&envs[0]);
    r.code(1);
    assert!(r.stdout.contains("not in index.jsonl"), "{}", r.stdout);
    assert!(r.stdout.contains("does not chain"), "{}", r.stdout);

    // The last entry removed: its bundle is left without an entry.
    put(&own(&lines[..2]));
    let r = verify(&envs[0]);
    r.code(1);
    assert!(r.stdout.contains("not in index.jsonl"), "{}", r.stdout);

    // An altered bundle.
    put(&own(&lines));
    verify(&envs[0]).ok();
    let mut b = std::fs::read(&tar).unwrap();
    let last = b.len() - 2000;
    b[last] ^= 1;
    std::fs::write(&tar, b).unwrap();
    let r = verify(&envs[0]);
    r.code(1);
    assert!(r.stdout.contains("content does not match"), "{}", r.stdout);
    // And a broken index is never extended.
    archive(&disposed(0), &dir)
        .code(2)
        .one_line_error("does not verify");
}

#[test]
fn s3_archive_with_object_lock_is_write_once() {
    use aws_sdk_s3::primitives::ByteStream;
    let s = S3Env::new();
    s.create_bucket(true, true);
    let env = disposed(1);
    let to = format!("s3://{}/evidence", s.bucket);
    let run = |args: &[&str]| {
        let mut c = env.command();
        aws_env(&mut c);
        Run::from(
            c.args(args)
                .arg("--endpoint-url")
                .arg(endpoint())
                .output()
                .unwrap(),
        )
    };
    let r = run(&[
        "--json",
        "archive",
        "certificate.json",
        "--to",
        &to,
        "--retain-days",
        "30",
        "--allowed-signers",
        "keys/allowed_signers",
    ]);
    r.ok();
    let rec: serde_json::Value = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["type"] == "archived")
        .unwrap_or_else(|| panic!("{}", r.stdout));
    let loc = rec["location"].as_str().unwrap();
    let key = loc.strip_prefix(&format!("s3://{}/", s.bucket)).unwrap();
    let version = rec["version_id"].as_str().unwrap().to_string();
    let c = &s.client;
    let head =
        s.rt.block_on(
            c.head_object()
                .bucket(&s.bucket)
                .key(key)
                .version_id(&version)
                .send(),
        )
        .unwrap();
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    let archived = || {
        s.rt.block_on(async {
            c.get_object()
                .bucket(&s.bucket)
                .key(key)
                .version_id(&version)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
        })
        .unwrap()
        .into_bytes()
    };
    let original = archived();

    // The server refuses to delete the archived version, even with the
    // governance bypass. (Real S3 also refuses to shorten a COMPLIANCE
    // retention; moto 5.1 allows it, so that is not asserted here.)
    let del = s.rt.block_on(
        c.delete_object()
            .bucket(&s.bucket)
            .key(key)
            .version_id(&version)
            .send(),
    );
    assert!(
        del.is_err(),
        "deleting a COMPLIANCE-locked version must fail"
    );
    let del = s.rt.block_on(
        c.delete_object()
            .bucket(&s.bucket)
            .key(key)
            .version_id(&version)
            .bypass_governance_retention(true)
            .send(),
    );
    assert!(del.is_err(), "COMPLIANCE mode has no bypass");
    // An overwrite only adds a version; the archived one is unchanged.
    s.rt.block_on(
        c.put_object()
            .bucket(&s.bucket)
            .key(key)
            .body(ByteStream::from_static(b"forged"))
            .send(),
    )
    .unwrap();
    let still = archived();
    assert_eq!(still, original);
    // ... and archive --verify notices the forged, unlocked version.
    let v = run(&["archive", "--verify", &to]);
    v.code(1);
    assert!(
        v.stdout.contains("not locked in COMPLIANCE mode"),
        "{}",
        v.stdout
    );

    // A bucket without object lock is refused before anything is written.
    let plain = S3Env::new();
    plain.create_bucket(true, false);
    run(&[
        "archive",
        "certificate.json",
        "--to",
        &format!("s3://{}/e", plain.bucket),
        "--retain-days",
        "30",
        "--allowed-signers",
        "keys/allowed_signers",
    ])
    .code(2)
    .one_line_error("no S3 Object Lock");
    assert!(plain.versions("").is_empty());
}

#[test]
fn recheck_passes_after_disposal_and_fails_when_a_file_or_a_copy_is_put_back() {
    let env = Env::new();
    let weights = random_bytes(200_000);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&weights));
    env.file("models/m/model.safetensors", &weights);
    env.file("models/m/config.json", b"{}");
    env.file("home/alice/copy-of-model.bin", &weights);
    env.file("home/alice/notes.txt", b"unrelated");
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\n[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n[[components]]\nname = \"model.safetensors\"\nsha256 = \"{sha}\"\n",
            env.path("models/m").display(),
            env.path("home/alice").display()
        ),
    );
    env.trace().ok();
    env.approve().ok();
    env.execute().ok();
    env.cosign().ok();
    let r = env.recheck();
    r.ok();
    assert!(
        r.stdout.contains("no disposed artifact exists again"),
        "{}",
        r.stdout
    );

    // The disposed file put back at its path.
    let back = env.file("models/m/config.json", b"{}");
    let r = env.recheck();
    r.code(1);
    assert!(
        r.stdout.contains(&format!(
            "{}: exists again with the disposed content",
            back.display()
        )),
        "{}",
        r.stdout
    );
    std::fs::remove_file(&back).unwrap();
    env.recheck().ok();

    // A copy with the disposed content under another name, in the location
    // matched by hash.
    let copy = env.file("home/alice/renamed/weights.bin", &weights);
    let r = env.recheck();
    r.code(1);
    assert!(
        r.stdout
            .contains(&format!("{}: a copy of disposed", copy.display())),
        "{}",
        r.stdout
    );
}

#[test]
fn recheck_on_s3_fails_when_a_purged_key_is_written_again() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("m/model.bin", b"weights v1");
    s.put("m/model.bin", b"weights v2");
    s.manifest("m/", "");
    s.trace().ok();
    s.approve().ok();
    s.execute().ok();
    s.env.cosign().ok();
    s.recheck().ok();
    s.put("m/model.bin", b"weights v2");
    let r = s.recheck();
    r.code(1);
    assert!(
        r.stdout.contains(&format!("s3://{}/m/model.bin", s.bucket))
            && r.stdout.contains("holds an object again"),
        "{}",
        r.stdout
    );
}
