//! The bad-input corpus (`tests/corpus/`): every malformed manifest, profile,
//! plan, certificate, key and signers file gets exit code 2, exactly one
//! `error:` line on stderr, and touches nothing.

use crate::common::*;
use std::path::{Path, PathBuf};

fn corpus(dir: &str) -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[track_caller]
fn refused(env: &Env, r: &Run, case: &Path, before: &std::collections::BTreeMap<PathBuf, String>) {
    assert_eq!(
        r.code,
        2,
        "{}: exit {} stderr {}",
        case.display(),
        r.code,
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{}: expected one line, got {:?}",
        case.display(),
        lines
    );
    assert!(
        lines[0].starts_with("error: "),
        "{}: {:?}",
        case.display(),
        lines[0]
    );
    assert_eq!(
        &env.snapshot(&env.path("models")),
        before,
        "{}: something was touched",
        case.display()
    );
}

/// A model tree with an approved plan, so later stages can be fed bad input.
fn approved_env() -> Env {
    let env = Env::new();
    env.file("models/m/w.bin", &random_bytes(10_000));
    env.file("models/m/file.bin", b"x");
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    env
}

#[test]
fn bad_manifests_and_profiles_are_refused_with_one_line() {
    let env = approved_env();
    let before = env.snapshot(&env.path("models"));
    let corpus_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for case in corpus("manifest") {
        let text = std::fs::read(&case).unwrap();
        let text = String::from_utf8_lossy(&text)
            .replace("@ROOT@", env.path("models/m").to_str().unwrap())
            .replace("@CORPUS@", corpus_dir.to_str().unwrap());
        let m = env.path("case.toml");
        if std::str::from_utf8(&std::fs::read(&case).unwrap()).is_ok() {
            std::fs::write(&m, text).unwrap();
        } else {
            std::fs::copy(&case, &m).unwrap();
        }
        let r = env.run(&["trace", "case.toml", "-o", "case-plan.json"]);
        refused(&env, &r, &case, &before);
        assert!(
            !env.path("case-plan.json").exists(),
            "{}: a plan was written",
            case.display()
        );
        n += 1;
    }
    // Oversized: a manifest larger than the 1 MiB limit.
    let big = format!("# {}\n", "x".repeat(2 << 20));
    std::fs::write(env.path("case.toml"), big).unwrap();
    refused(
        &env,
        &env.run(&["trace", "case.toml", "-o", "case-plan.json"]),
        Path::new("oversized.toml"),
        &before,
    );
    // A manifest that is a directory.
    refused(
        &env,
        &env.run(&["trace", "models", "-o", "case-plan.json"]),
        Path::new("directory"),
        &before,
    );
    assert!(n >= 30, "the manifest corpus has {n} cases");
}

#[test]
fn bad_plans_certificates_keys_and_signers_are_refused_with_one_line() {
    let env = approved_env();
    let before = env.snapshot(&env.path("models"));
    let mut n = 0;
    for case in corpus("plan") {
        std::fs::copy(&case, env.path("bad-plan.json")).unwrap();
        let r = env.run(&signed(&["execute", "bad-plan.json"], AS_OPERATOR));
        refused(&env, &r, &case, &before);
        refused(&env, &env.run(&["show", "bad-plan.json"]), &case, &before);
        refused(
            &env,
            &env.run(&signed(&["approve", "bad-plan.json"], APPROVING)),
            &case,
            &before,
        );
        n += 1;
    }
    for case in corpus("certificate") {
        std::fs::copy(&case, env.path("bad-cert.json")).unwrap();
        refused(
            &env,
            &env.run(&[
                "verify",
                "bad-cert.json",
                "--allowed-signers",
                "keys/allowed_signers",
            ]),
            &case,
            &before,
        );
        refused(
            &env,
            &env.run(&signed(&["cosign", "bad-cert.json"], AS_CUSTODIAN)),
            &case,
            &before,
        );
        n += 1;
    }
    for case in corpus("key") {
        let k = case.to_str().unwrap();
        refused(
            &env,
            &env.run(&[
                "approve",
                "plan.json",
                "--key",
                k,
                "--principal",
                CUSTODIAN,
                "--yes",
            ]),
            &case,
            &before,
        );
        refused(
            &env,
            &env.run(&[
                "execute",
                "plan.json",
                "--key",
                k,
                "--principal",
                OPERATOR,
                "--allowed-signers",
                "keys/allowed_signers",
                "--yes",
            ]),
            &case,
            &before,
        );
        n += 1;
    }
    for case in corpus("signers") {
        let s = case.to_str().unwrap();
        refused(
            &env,
            &env.run(&[
                "execute",
                "plan.json",
                "--key",
                "keys/operator",
                "--principal",
                OPERATOR,
                "--allowed-signers",
                s,
                "--yes",
            ]),
            &case,
            &before,
        );
        n += 1;
    }
    // Missing files and bad flags.
    for args in [
        signed(&["execute", "no-such-plan.json"], AS_OPERATOR),
        vec![
            "execute",
            "plan.json",
            "--key",
            "keys/no-such-key",
            "--principal",
            OPERATOR,
            "--allowed-signers",
            "keys/allowed_signers",
            "--yes",
        ],
        vec![
            "execute",
            "plan.json",
            "--key",
            "keys/operator",
            "--principal",
            OPERATOR,
            "--allowed-signers",
            "keys/none",
            "--yes",
        ],
        vec![
            "execute",
            "plan.json",
            "--key",
            "keys/operator",
            "--principal",
            OPERATOR,
            "--allowed-signers",
            "keys/allowed_signers",
            // A file where the output folder should be (a missing folder
            // is created instead).
            "--out",
            "keys/allowed_signers",
            "--yes",
        ],
    ] {
        refused(&env, &env.run(&args), Path::new(args[1]), &before);
        n += 1;
    }
    // A request rate out of range.
    let mut args = env.execute_args();
    args.extend(["--s3-concurrency".to_string(), "0".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(
        &env,
        &env.run(&args),
        Path::new("--s3-concurrency 0"),
        &before,
    );
    n += 1;
    // Without --yes and without a terminal, execute refuses.
    refused(
        &env,
        &env.run(&[
            "execute",
            "plan.json",
            "--key",
            "keys/operator",
            "--principal",
            OPERATOR,
            "--allowed-signers",
            "keys/allowed_signers",
        ]),
        Path::new("no --yes"),
        &before,
    );
    let r = env.run(&["execute", "--bogus-flag"]);
    assert_eq!(r.code, 2);
    assert!(n >= 20, "{n}");
    assert!(!env.path("journal.jsonl").exists());
}
