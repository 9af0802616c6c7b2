//! Safety under attack: each test is named after the attack it reproduces.
//! In every case the victim's bytes must be unchanged and the artifact must
//! not be reported disposed.

use crate::common::*;
use std::path::Path;

fn victim(
    env: &Env,
) -> (
    std::path::PathBuf,
    std::collections::BTreeMap<std::path::PathBuf, String>,
) {
    let v = env.path("victim");
    env.file("victim/a.bin", &random_bytes(64 << 10));
    env.file("victim/sub/a.bin", &random_bytes(64 << 10));
    let snap = env.snapshot(&v);
    (v, snap)
}

fn approved(env: &Env, files: &[&str]) {
    for f in files {
        env.file(&format!("models/m/{f}"), &random_bytes(64 << 10));
    }
    env.manifest_all("dod-3pass", "models/m");
    env.trace().ok();
    env.approve().ok();
}

#[test]
fn attack_symlink_as_final_component() {
    let env = Env::new();
    let (v, snap) = victim(&env);
    approved(&env, &["a.bin", "b.bin"]);
    let a = env.path("models/m/a.bin");
    std::fs::remove_file(&a).unwrap();
    std::os::unix::fs::symlink(v.join("a.bin"), &a).unwrap();
    env.execute().code(1);
    assert_eq!(env.snapshot(&v), snap, "victim unchanged");
    assert_eq!(env.outcome(&a), "skipped-changed");
    assert!(
        std::fs::symlink_metadata(&a)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the attacker's link is left alone"
    );
    assert_eq!(env.outcome(&env.path("models/m/b.bin")), "disposed");
}

#[test]
fn attack_symlink_swapped_into_parent_directory_after_approval() {
    let env = Env::new();
    let (v, snap) = victim(&env);
    approved(&env, &["sub/a.bin", "top.bin"]);
    std::fs::rename(env.path("models/m/sub"), env.path("models/m/sub.orig")).unwrap();
    std::os::unix::fs::symlink(v.join("sub"), env.path("models/m/sub")).unwrap();
    env.execute().code(1);
    assert_eq!(env.snapshot(&v), snap, "victim unchanged");
    let out = env.outcome(&env.path("models/m/sub/a.bin"));
    assert_eq!(out, "skipped-changed");
    let c = env.cert_json();
    let reason = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().ends_with("sub/a.bin"))
        .unwrap()["reason"]
        .clone();
    assert!(
        reason.as_str().unwrap().contains("symbolic link"),
        "{reason}"
    );
}

#[test]
fn attack_location_root_replaced_by_symlink() {
    let env = Env::new();
    let (v, snap) = victim(&env);
    approved(&env, &["a.bin"]);
    std::fs::rename(env.path("models/m"), env.path("models/m.orig")).unwrap();
    std::os::unix::fs::symlink(&v, env.path("models/m")).unwrap();
    env.execute().code(2).one_line_error("now resolves to");
    assert_eq!(env.snapshot(&v), snap);
}

#[test]
fn attack_file_replaced_by_hard_link_to_victim() {
    let env = Env::new();
    let (v, snap) = victim(&env);
    approved(&env, &["a.bin"]);
    let a = env.path("models/m/a.bin");
    std::fs::remove_file(&a).unwrap();
    std::fs::hard_link(v.join("a.bin"), &a).unwrap();
    env.execute().code(1);
    assert_eq!(env.snapshot(&v), snap, "victim unchanged");
    assert_eq!(env.outcome(&a), "skipped-changed");
}

#[test]
fn attack_extra_hard_link_added_after_approval_is_detected() {
    let env = Env::new();
    approved(&env, &["a.bin"]);
    let a = env.path("models/m/a.bin");
    std::fs::hard_link(&a, env.path("elsewhere-link")).unwrap();
    let before = sha256_file(&a);
    env.execute().code(1);
    assert_eq!(
        sha256_file(&env.path("elsewhere-link")),
        before,
        "content reachable elsewhere is not overwritten"
    );
    assert_eq!(env.outcome(&a), "skipped-changed");
}

/// Large files go one at a time: a directory swapped for a symlink mid-run
/// makes the files not yet opened "changed", and the victim is untouched.
#[test]
fn attack_directory_replaced_by_symlink_during_execute() {
    let (disposed, not) = directory_swapped_during_execute(6, 17 << 20, "nist-clear", 6);
    assert!(
        not > 0,
        "some files must be reported not disposed after the swap ({disposed} disposed)"
    );
}

/// Small files go in batches, their directories opened before the first
/// byte is written: a swap mid-batch changes nothing the batch holds open,
/// so the files are disposed of in the real (moved) directory, and the
/// victim behind the symlink is untouched.
#[test]
fn attack_directory_replaced_by_symlink_during_a_batch() {
    let (disposed, not) = directory_swapped_during_execute(40, 256 << 10, "dod-3pass", 45);
    assert_eq!(disposed + not, 40);
}

/// Swap `models/m/sub` for a symlink to `victim` once the journal holds
/// `after` lines; returns (files disposed, files not) after checking that the
/// victim is unchanged and that the outcomes are true of the moved directory.
fn directory_swapped_during_execute(
    count: usize,
    size: usize,
    profile: &str,
    after: usize,
) -> (usize, usize) {
    let env = Env::new();
    let v = env.path("victim");
    let names: Vec<String> = (0..count).map(|i| format!("f{i:02}.bin")).collect();
    for n in &names {
        env.file(&format!("victim/{n}"), &random_bytes(size));
        env.file(&format!("models/m/sub/{n}"), &random_bytes(size));
    }
    let snap = env.snapshot(&v);
    env.manifest_all(profile, "models/m");
    env.trace().ok();
    env.approve().ok();
    let journal = env.path("journal.jsonl");
    let sub = env.path("models/m/sub");
    let moved = env.path("models/m/sub.moved");
    let racer = {
        let (journal, sub, moved, v) = (journal.clone(), sub.clone(), moved.clone(), v.clone());
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while std::fs::read_to_string(&journal)
                .map(|s| s.lines().count())
                .unwrap_or(0)
                < after
            {
                assert!(t0.elapsed().as_secs() < 60, "execute never started");
                std::thread::yield_now();
            }
            std::fs::rename(&sub, &moved).unwrap();
            std::os::unix::fs::symlink(&v, &sub).unwrap();
        })
    };
    let r = env.execute();
    racer.join().unwrap();
    assert_eq!(env.snapshot(&v), snap, "victim unchanged");
    let c = env.cert_json();
    let arts = c["artifacts"].as_array().unwrap();
    let disposed = arts
        .iter()
        .filter(|a| a["outcome"] == "disposed" && a["kind"] == "file")
        .count();
    let not = arts
        .iter()
        .filter(|a| a["outcome"] != "disposed" && a["kind"] == "file")
        .count();
    // Files reported disposed are really gone from the moved real directory;
    // those not disposed are still there, intact.
    let remaining = std::fs::read_dir(&moved).unwrap().count();
    assert_eq!(remaining, not, "{disposed} disposed, {not} not");
    // The directory itself was swapped: never reported removed.
    r.code(1);
    (disposed, not)
}

/// Sign a plan's bytes as the custodian with stock ssh-keygen (so a forged
/// plan carries a valid approval).
pub fn custodian_signs(env: &Env, bytes: &[u8]) {
    use std::io::Write;
    std::fs::write(env.plan(), bytes).unwrap();
    let mut c = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "decom-custodian", "-f"])
        .arg(env.key("custodian"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    std::fs::write(
        format!("{}.custodian.sig", env.plan().display()),
        out.stdout,
    )
    .unwrap();
}

fn forge(env: &Env, original: &[u8], edit: impl Fn(&mut serde_json::Value)) -> crate::common::Run {
    let mut v: serde_json::Value = serde_json::from_slice(original).unwrap();
    edit(&mut v);
    custodian_signs(env, &serde_json::to_vec_pretty(&v).unwrap());
    env.execute()
}

#[test]
fn forged_plans_are_refused_before_anything_is_touched() {
    let env = Env::new();
    let (v, snap) = victim(&env);
    approved(&env, &["a.bin"]);
    let model = env.snapshot(&env.path("models"));
    let original = std::fs::read(env.plan()).unwrap();
    let outside = v.join("a.bin").display().to_string();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "not under its location",
            Box::new(move |p| p["artifacts"][0]["path"] = outside.clone().into()),
        ),
        (
            "contains \"..\"",
            Box::new(|p| {
                let s = p["artifacts"][0]["path"]
                    .as_str()
                    .unwrap()
                    .replace("/a.bin", "/../../victim/a.bin");
                p["artifacts"][0]["path"] = s.into();
            }),
        ),
        (
            "not under its location",
            Box::new(|p| p["artifacts"][0]["path"] = "/etc/passwd".into()),
        ),
        (
            "has an empty component",
            Box::new(|p| {
                let s = p["artifacts"][0]["path"]
                    .as_str()
                    .unwrap()
                    .replace("/a.bin", "//a.bin");
                p["artifacts"][0]["path"] = s.into();
            }),
        ),
        (
            "may not cross filesystems",
            Box::new(|p| p["artifacts"][0]["device"] = 12345.into()),
        ),
        (
            "does not match its manifest",
            Box::new(|p| p["locations"][0]["uri"] = "/etc".into()),
        ),
        (
            "not under its location",
            Box::new(|p| p["locations"][0]["root"] = "/etc".into()),
        ),
        (
            "totals do not add up",
            Box::new(|p| p["totals"]["bytes"] = 1.into()),
        ),
        // A host name becomes part of the journal's file name.
        (
            "host name \"../../victim\" is not usable",
            Box::new(|p| p["locations"][0]["host"] = "../../victim".into()),
        ),
    ];
    for (want, edit) in cases {
        let r = forge(&env, &original, edit);
        r.code(2).one_line_error(want);
        assert_eq!(env.snapshot(&v), snap, "victim unchanged ({want})");
        assert_eq!(
            env.snapshot(&env.path("models")),
            model,
            "model unchanged ({want})"
        );
        assert!(
            !env.path("journal.jsonl").exists(),
            "nothing journaled ({want})"
        );
    }
    let _ = Path::new("");
}

#[test]
fn two_executes_of_one_plan_cannot_run_at_once() {
    let env = Env::new();
    for i in 0..8 {
        env.file(&format!("models/m/{i}.bin"), &random_bytes(16 << 20));
    }
    env.manifest_all("dod-3pass", "models/m");
    env.trace().ok();
    env.approve().ok();
    let mut first = env
        .command()
        .args(env.execute_args())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_journal(&env.path("journal.jsonl"), 2);
    let second = env.resume();
    let status = first.wait().unwrap();
    assert!(status.success());
    second.code(2).one_line_error("another decom execute");
}
