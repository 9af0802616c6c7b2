//! The whole lifecycle through the binary, on real files.

use crate::common::*;
use std::path::Path;

fn model(env: &Env) {
    env.file("models/m/model.safetensors", &random_bytes(3 << 20));
    env.file("models/m/config.json", br#"{"layers": 2}"#);
    env.file("models/m/sub/tokenizer.json", br#"{"vocab": {}}"#);
    env.file("models/m/empty.bin", b"");
}

#[test]
fn full_lifecycle_disposes_everything_and_verifies() {
    let env = Env::new();
    model(&env);
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let planned = env.planned_paths();
    assert_eq!(planned.len(), 5, "{planned:?}"); // 4 files + sub/
    env.approve().ok();
    env.execute().ok();
    for p in &planned {
        assert!(std::fs::symlink_metadata(p).is_err(), "{p} still exists");
    }
    assert!(
        env.path("models/m").is_dir(),
        "the location root itself stays"
    );
    let c = env.cert_json();
    assert_eq!(c["status"], "complete");
    for a in c["artifacts"].as_array().unwrap() {
        assert_eq!(a["outcome"], "disposed");
        assert_eq!(a["verification"]["verified"], true);
        if a["kind"] == "file" {
            let p = &a["passes"][0];
            assert_eq!(p["written_sha256"], p["readback_sha256"]);
            assert!(p["written_sha256"].is_string());
            assert_eq!(
                p["readback_via"], "direct",
                "the temp dir (ext4) takes O_DIRECT"
            );
        }
    }
    env.cosign().ok();
    let v = env.verify();
    v.ok();
    assert!(v.stdout.contains("verified: complete"), "{}", v.stdout);
}

#[test]
fn plan_is_deterministic_apart_from_its_creation_time() {
    let env = Env::new();
    model(&env);
    env.manifest_all("dod-3pass", "models/m");
    env.trace().ok();
    let a = std::fs::read_to_string(env.plan()).unwrap();
    env.trace().ok();
    let b = std::fs::read_to_string(env.plan()).unwrap();
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.trim_start().starts_with("\"created\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(!a.contains('.') || !a.contains("e+"), "no floats");
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(
        v["profile"]["passes"],
        serde_json::json!(["zero", "one", "random"])
    );
    assert_eq!(v["manifest"]["model"]["name"], "test-model");
}

#[test]
fn trace_changes_nothing() {
    let env = Env::new();
    model(&env);
    let before = env.snapshot(&env.path("models"));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    assert_eq!(before, env.snapshot(&env.path("models")));
}

#[test]
fn file_modified_after_approval_is_skipped_and_left_intact() {
    let env = Env::new();
    model(&env);
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    // Same size, new content: mtime/ctime change.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let cfg = env.file("models/m/config.json", br#"{"layers": 3}"#);
    let want = sha256_file(&cfg);
    env.execute().code(1);
    assert_eq!(
        sha256_file(&cfg),
        want,
        "the changed file must be left intact"
    );
    assert_eq!(env.outcome(&cfg), "skipped-changed");
    assert_eq!(env.cert_json()["status"], "incomplete");
    assert!(
        !env.path("models/m/model.safetensors").exists(),
        "the others are still disposed"
    );
}

#[test]
fn a_byte_changed_in_the_approved_plan_is_refused() {
    let env = Env::new();
    model(&env);
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    let before = env.snapshot(&env.path("models"));
    let original = std::fs::read(env.plan()).unwrap();
    // A byte inside a value: the plan still parses, the signature fails.
    let text = String::from_utf8(original.clone()).unwrap();
    let i = text.find("test-model").unwrap();
    let mut bytes = original.clone();
    bytes[i] = b'b';
    std::fs::write(env.plan(), &bytes).unwrap();
    env.execute().code(2).one_line_error("not approved");
    // A byte inside a key: the plan no longer parses, and what is reported
    // is the failed approval (checked over the raw bytes first), not JSON.
    let mut bytes = original.clone();
    bytes[original.iter().position(|b| *b == b'"').unwrap() + 1] ^= 0x20;
    std::fs::write(env.plan(), &bytes).unwrap();
    let r = env.execute();
    r.code(2).one_line_error("the plan is not approved");
    assert!(!r.stderr.contains("not a valid decom plan"), "{}", r.stderr);
    // One trailing newline more: the exact bytes are signed.
    let mut bytes = original.clone();
    bytes.push(b'\n');
    std::fs::write(env.plan(), &bytes).unwrap();
    env.execute().code(2).one_line_error("not approved");
    assert_eq!(before, env.snapshot(&env.path("models")), "nothing touched");
    assert!(!env.path("journal.jsonl").exists());
}

#[test]
fn unapproved_plan_is_refused() {
    let env = Env::new();
    model(&env);
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let before = env.snapshot(&env.path("models"));
    env.execute().code(2).one_line_error("not approved");
    assert_eq!(before, env.snapshot(&env.path("models")));
}

#[test]
fn symlink_inside_a_location_is_removed_and_its_target_untouched() {
    let env = Env::new();
    model(&env);
    let victim = env.file("victim/important.bin", &random_bytes(10_000));
    let want = sha256_file(&victim);
    let link = env.path("models/m/link-to-victim");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    std::os::unix::fs::symlink(env.path("victim"), env.path("models/m/dir-link")).unwrap();
    env.manifest_all("dod-3pass", "models/m");
    env.trace().ok();
    let plan = env.plan_json();
    let kinds: Vec<_> = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "symlink")
        .collect();
    assert_eq!(kinds.len(), 2);
    env.approve().ok();
    env.execute().ok();
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
    assert_eq!(sha256_file(&victim), want, "target untouched");
    assert!(env.path("victim").is_dir());
}

#[test]
fn killed_execute_resumes_to_a_complete_verified_certificate() {
    let env = Env::new();
    for i in 0..12 {
        env.file(
            &format!("models/m/shard-{i:02}.bin"),
            &random_bytes(2 << 20),
        );
    }
    env.manifest_all("dod-3pass", "models/m");
    env.trace().ok();
    env.approve().ok();
    // Start, wait until the journal shows work in progress, then SIGKILL.
    let mut child = env
        .command()
        .args(env.execute_args())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = env.path("journal.jsonl");
    let t0 = std::time::Instant::now();
    loop {
        let n = std::fs::read_to_string(&journal)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 8 || t0.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    if status.success() {
        panic!("execute finished before it could be killed; make the files bigger");
    }
    // A plain re-run refuses (a journal exists); --resume continues.
    env.execute().code(2).one_line_error("--resume");
    env.resume().ok();
    let c = env.cert_json();
    assert_eq!(c["status"], "complete");
    assert!(
        c["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "disposed")
    );
    for i in 0..12 {
        assert!(!env.path(&format!("models/m/shard-{i:02}.bin")).exists());
    }
    env.cosign().ok();
    env.verify().ok();
}

#[test]
fn demo_runs_and_its_certificate_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = std::process::Command::new(bin())
        .args(["demo", "--weights-mib", "4", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("verified: complete")
            || String::from_utf8_lossy(&out.stdout).contains("verified: complete")
    );
    let cert = dir.join("certificate.json");
    let signers = dir.join("keys/allowed_signers");
    let v = std::process::Command::new(bin())
        .arg("verify")
        .arg(&cert)
        .arg("--allowed-signers")
        .arg(&signers)
        .output()
        .unwrap();
    assert!(v.status.success());
    // The other repo is whole (huggingface_hub's own scan judges it) and
    // the notebook untouched; the copy found by hash is gone.
    let hub = dir.join("home/alice/.cache/huggingface/hub");
    let scan: serde_json::Value = serde_json::from_str(&python_tool(&[
        "hf_cache.py",
        "scan",
        hub.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(scan["warnings"], serde_json::json!([]), "{scan}");
    assert_eq!(scan["repos"].as_array().unwrap().len(), 1, "{scan}");
    assert_eq!(scan["repos"][0]["id"], "acme/sentiment");
    assert_eq!(scan["repos"][0]["files"], 2);
    // The tokenizer both repos had stays with the other repo, and the
    // certificate says identical bytes were kept.
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("certificate.json")).unwrap()).unwrap();
    assert!(
        c["residual_risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "shared-content"
                && r["detail"]
                    .as_str()
                    .unwrap()
                    .contains("needed by models--acme--sentiment")),
        "{}",
        c["residual_risks"]
    );
    assert!(dir.join("home/alice/notebooks/analysis.ipynb").exists());
    assert!(
        !dir.join("home/alice/notebooks/scratch/weights_final2.bin")
            .exists()
    );
    assert!(
        !dir.join("home/alice/.cache/huggingface/hub/models--acme--fraud-detector")
            .exists()
    );
    // The printed ssh-keygen commands succeed in a shell.
    let cmds: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("ssh-keygen -Y verify"))
        .collect();
    assert_eq!(cmds.len(), 2, "{stderr}");
    for c in cmds {
        let r = std::process::Command::new("sh")
            .arg("-c")
            .arg(c)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{c}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

#[test]
fn demo_refuses_a_folder_that_is_not_empty() {
    let env = Env::new();
    let r = env.run(&["demo", "--dir", env.root.to_str().unwrap()]);
    r.code(2).one_line_error("not empty");
    let _ = Path::new("");
}
