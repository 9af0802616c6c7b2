//! RFC 3161 timestamps over the signatures (`--tsa`), checked by `verify
//! --tsa-certs` and by `openssl ts -verify`, against a local TSA on
//! loopback (`scripts/tsa.sh`: `openssl ts -reply` behind a small HTTP
//! server, and a second TSA of another CA that nobody trusts).

use crate::common::*;
use std::process::Command;

/// The trusted TSA's URL and CA file, and the untrusted TSA's URL.
fn tsa() -> [String; 3] {
    crate::s3::started(
        "tsa.sh",
        "the local TSA",
        [
            "DECOM_TEST_TSA_URL",
            "DECOM_TEST_TSA_CERTS",
            "DECOM_TEST_TSA_UNTRUSTED_URL",
        ],
    )
}

/// A model disposed of with every signature timestamped by `url`.
fn stamped_run(url: &str) -> Env {
    let env = Env::new();
    env.file("models/m/model.safetensors", &random_bytes(20_000));
    env.manifest_all("nist-clear", &env.path("models/m").display().to_string());
    env.trace().ok();
    env.run(&signed(&["approve", "plan.json", "--tsa", url], APPROVING))
        .ok();
    env.run(&signed(
        &["execute", "plan.json", "--tsa", url],
        AS_OPERATOR,
    ))
    .ok();
    env.run(&signed(
        &["cosign", "certificate.json", "--tsa", url],
        AS_CUSTODIAN,
    ))
    .ok();
    env
}

fn verify_stamps(env: &Env, certs: &str) -> Run {
    env.run(&[
        "verify",
        "certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
        "--tsa-certs",
        certs,
    ])
}

/// A timestamp of `file` from the TSA at `url`, asked with openssl and curl
/// as a user would.
fn stamp_with(url: &str, file: &std::path::Path) -> Vec<u8> {
    let query = Command::new("openssl")
        .args(["ts", "-query", "-sha256", "-cert", "-data"])
        .arg(file)
        .output()
        .unwrap();
    let reply = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-H",
            "Content-Type: application/timestamp-query",
            "--data-binary",
            "@-",
            url,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&query.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(reply.status.success());
    reply.stdout
}

fn openssl_ts_verify(data: &std::path::Path, tsr: &std::path::Path, ca: &str) -> bool {
    Command::new("openssl")
        .args(["ts", "-verify", "-data"])
        .arg(data)
        .arg("-in")
        .arg(tsr)
        .args(["-CAfile", ca])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn every_signature_is_timestamped_in_order_and_openssl_accepts_each_token() {
    let [url, ca, _] = tsa();
    let env = stamped_run(&url);
    let r = verify_stamps(&env, &ca);
    r.ok();
    assert!(
        r.stdout.contains("ok   timestamps: approval "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("; execution "), "{}", r.stdout);
    assert!(r.stdout.contains("; co-signature "), "{}", r.stdout);
    for sig in [
        "plan.json.custodian.sig",
        "certificate.json.operator.sig",
        "certificate.json.custodian.sig",
    ] {
        let sig = env.path(sig);
        let tsr = std::path::PathBuf::from(format!("{}.tsr", sig.display()));
        assert!(openssl_ts_verify(&sig, &tsr, &ca), "{}", tsr.display());
        // A token checked against other bytes fails, with openssl too.
        assert!(!openssl_ts_verify(&env.path("plan.json"), &tsr, &ca));
    }
    // The PDF carries each token beside the signature it covers: extracted
    // with poppler's pdfdetach, openssl accepts every pair; its first page
    // says every signature and timestamp verified.
    env.run(&[
        "render",
        "certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
        "--tsa-certs",
        &ca,
        "--pdf",
        "cert.pdf",
    ])
    .ok();
    let out = env.path("detached");
    std::fs::create_dir(&out).unwrap();
    let d = Command::new("pdfdetach")
        .args(["-saveall", "-o"])
        .arg(&out)
        .arg(env.path("cert.pdf"))
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    for sig in [
        "plan.json.custodian.sig",
        "certificate.json.operator.sig",
        "certificate.json.custodian.sig",
    ] {
        let tsr = out.join(format!("{sig}.tsr"));
        assert!(
            openssl_ts_verify(&out.join(sig), &tsr, &ca),
            "{sig}.tsr from the PDF"
        );
    }
    let text = Command::new("pdftotext")
        .args(["-f", "1", "-l", "1", "-layout"])
        .arg(env.path("cert.pdf"))
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("every signature and every timestamp verified"),
        "{text}"
    );
}

/// A token over other bytes, a token from a TSA nobody trusts, and a
/// reversed order each fail verification with exit 1.
#[test]
fn a_token_over_other_bytes_an_untrusted_tsa_and_a_reversed_order_fail() {
    let [url, ca, untrusted] = tsa();
    let env = stamped_run(&url);
    let tsr = |s: &str| env.path(&format!("{s}.tsr"));
    let keep = std::fs::read(tsr("certificate.json.operator.sig")).unwrap();

    // The approval's token where the execution's belongs: other bytes.
    std::fs::copy(
        tsr("plan.json.custodian.sig"),
        tsr("certificate.json.operator.sig"),
    )
    .unwrap();
    let r = verify_stamps(&env, &ca);
    r.code(1);
    assert!(
        r.stdout.contains("FAIL timestamps: execution"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("other bytes"), "{}", r.stdout);
    std::fs::write(tsr("certificate.json.operator.sig"), &keep).unwrap();
    verify_stamps(&env, &ca).ok();

    // The co-signature stamped by a TSA whose CA is not trusted.
    let cosig = env.path("certificate.json.custodian.sig");
    let saved = std::fs::read(tsr("certificate.json.custodian.sig")).unwrap();
    let reply = stamp_with(&untrusted, &cosig);
    std::fs::write(tsr("certificate.json.custodian.sig"), &reply).unwrap();
    let r = verify_stamps(&env, &ca);
    r.code(1);
    assert!(
        r.stdout.contains("FAIL timestamps: co-signature"),
        "{}",
        r.stdout
    );
    std::fs::write(tsr("certificate.json.custodian.sig"), &saved).unwrap();

    // The approval stamped again now: after the execution it approved.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let approval = env.path("plan.json.custodian.sig");
    let reply = stamp_with(&url, &approval);
    std::fs::write(tsr("plan.json.custodian.sig"), &reply).unwrap();
    let r = verify_stamps(&env, &ca);
    r.code(1);
    assert!(r.stdout.contains("the order is reversed"), "{}", r.stdout);
}

/// Without --tsa nothing is stamped and verify needs no TSA; an https URL
/// or an unreachable TSA is a one-line error and no new approval is left
/// behind (exit 2: nothing approved; an earlier one is put back).
#[test]
fn without_a_tsa_nothing_changes_and_a_bad_tsa_leaves_no_approval() {
    let env = Env::new();
    env.file("models/m/model.safetensors", &random_bytes(1000));
    env.manifest_all("nist-clear", &env.path("models/m").display().to_string());
    env.trace().ok();
    for (url, needle) in [
        ("https://tsa.example/", "only plain http"),
        ("http://127.0.0.1:9/tsa", "127.0.0.1:9"),
    ] {
        env.run(&signed(&["approve", "plan.json", "--tsa", url], APPROVING))
            .code(2)
            .one_line_error(needle);
        assert!(!env.path("plan.json.custodian.sig").exists());
    }
    env.approve().ok();
    // A second approval whose timestamp fails puts the first back as it was.
    let first = std::fs::read(env.path("plan.json.custodian.sig")).unwrap();
    env.run(&signed(
        &["approve", "plan.json", "--tsa", "http://127.0.0.1:9/tsa"],
        APPROVING,
    ))
    .code(2);
    assert_eq!(
        std::fs::read(env.path("plan.json.custodian.sig")).unwrap(),
        first
    );
    env.execute().ok();
    env.cosign().ok();
    assert!(!env.path("certificate.json.operator.sig.tsr").exists());
    env.verify().ok();
}
