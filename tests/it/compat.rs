//! plan.json and certificate.json are stable formats: a plan approved and a
//! certificate signed by an earlier decom must read, re-serialize byte for
//! byte and verify with this one. The fixtures were written by `decom demo
//! --s3-endpoint` at commit e10b898 (before the types behind `kind`,
//! `matched.how`, `versioning` and the checks became enums), so local and S3
//! artifacts, delete markers and uploads are all in them.

use crate::common::bin;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compat")
}

#[test]
fn plans_and_certificates_of_earlier_versions_round_trip_byte_for_byte() {
    let dir = fixtures();
    let plan_bytes = std::fs::read(dir.join("plan.json")).unwrap();
    let plan = decom::plan::Plan::parse(&plan_bytes, "fixture").unwrap();
    assert_eq!(
        String::from_utf8(plan.to_bytes()).unwrap(),
        String::from_utf8(plan_bytes).unwrap()
    );
    let kinds: std::collections::BTreeSet<String> = plan
        .artifacts
        .iter()
        .map(|a| a.item.kind().to_string())
        .collect();
    assert!(
        ["file", "dir", "s3-version", "s3-delete-marker", "s3-upload"]
            .iter()
            .all(|k| kinds.contains(*k)),
        "the fixture covers every kind: {kinds:?}"
    );
    let cert_bytes = std::fs::read(dir.join("certificate.json")).unwrap();
    let cert = decom::cert::Certificate::parse(&cert_bytes, "fixture").unwrap();
    assert_eq!(
        String::from_utf8(cert.to_bytes()).unwrap(),
        String::from_utf8(cert_bytes).unwrap()
    );
}

#[test]
fn a_certificate_of_an_earlier_version_verifies() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
    }
    let out = std::process::Command::new(bin())
        .args([
            "verify",
            "certificate.json",
            "--allowed-signers",
            "allowed_signers",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok   plan approval"), "{stdout}");
}
