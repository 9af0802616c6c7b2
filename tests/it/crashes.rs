//! Crash safety: the process is stopped like `kill -9` at many points spread
//! over one execute (the journal fault hook aborts right after record N),
//! and `--resume` finishes the job. Every artifact ends disposed and verified
//! exactly once, and the journal never records a disposal before its
//! verification.

use crate::common::*;
use std::collections::HashMap;
use std::path::PathBuf;

#[test]
fn kill_at_twenty_points_then_resume_disposes_everything_exactly_once() {
    let env = Env::new();
    let files: Vec<PathBuf> = (0..50)
        .map(|i| env.path(&format!("models/m/d{}/f{i:02}.bin", i % 5)))
        .collect();
    kill_and_resume(&env, &files, &[env.path("models/m")], 55);
}

/// The same over two devices, where two workers journal at once: a crash
/// can fall anywhere in either worker's sequence.
#[test]
fn kill_at_twenty_points_over_two_devices_then_resume() {
    let env = Env::new();
    let (_keep, shm) = second_device(&env);
    let files: Vec<PathBuf> = (0..50)
        .map(|i| {
            let base = if i % 2 == 0 {
                env.path("models/m")
            } else {
                shm.clone()
            };
            base.join(format!("d{}/f{i:02}.bin", i % 5))
        })
        .collect();
    kill_and_resume(&env, &files, &[env.path("models/m"), shm.clone()], 60);
}

/// Write `files` (mixed sizes), plan the `roots` with dod-3pass, then run
/// execute with a crash every 23 journal records until it finishes, and check
/// that every artifact was disposed exactly once, never before its last
/// pass was read back and verified.
fn kill_and_resume(env: &Env, files: &[PathBuf], roots: &[PathBuf], planned: usize) {
    let sizes = [0usize, 1, 4095, 65_536, 300_000, 1 << 20];
    for (i, f) in files.iter().enumerate() {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, random_bytes(sizes[i % sizes.len()])).unwrap();
    }
    let locations: String = roots
        .iter()
        .map(|r| format!("[[locations]]\nuri = \"{}\"\n", r.display()))
        .collect();
    env.manifest("dod-3pass", &locations);
    env.trace().ok();
    env.approve().ok();
    assert_eq!(
        env.plan_json()["artifacts"].as_array().unwrap().len(),
        planned
    );

    let mut crashes = 0;
    let mut point = 4u64;
    let mut resume = false;
    loop {
        let out = env.execute_until(resume, point);
        resume = true;
        if out.status.success() {
            break; // finished before reaching the crash point
        }
        assert_eq!(
            out.status.code(),
            None,
            "stopped by the fault hook (a signal), not an error: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        crashes += 1;
        point += 23;
    }
    assert!(crashes >= 20, "only {crashes} crash points were hit");
    // Done: a further resume would only replace the evidence.
    let cert = std::fs::read(env.cert()).unwrap();
    env.resume().code(2).one_line_error("the run is complete");
    assert_eq!(std::fs::read(env.cert()).unwrap(), cert);

    let c = env.cert_json();
    assert_eq!(c["status"], "complete");
    let arts = c["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), planned);
    assert!(
        arts.iter()
            .all(|a| a["outcome"] == "disposed" && a["verification"]["verified"] == true)
    );
    for f in files {
        assert!(!f.exists(), "{} still exists", f.display());
    }

    // The journal: one disposed outcome per artifact, each after the
    // read-back of the last pass and after the removal.
    let text = std::fs::read_to_string(env.path("journal.jsonl")).unwrap();
    let mut disposed: HashMap<u64, usize> = HashMap::new();
    let mut verified_at: HashMap<u64, u64> = HashMap::new();
    let mut removed_at: HashMap<u64, u64> = HashMap::new();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let seq = r["seq"].as_u64().unwrap();
        let id = r["id"].as_u64().unwrap_or(0);
        // One outcome record, or a batch's outcomes in one record.
        let disposals: Vec<u64> = match r["type"].as_str().unwrap() {
            "read-back" if r["ok"] == true && r["pass"] == 3 => {
                verified_at.insert(id, seq);
                continue;
            }
            "pass" if r["pass"] == 3 => {
                verified_at.remove(&id); // a redone last pass needs a new read-back
                continue;
            }
            "removed" => {
                removed_at.insert(id, seq);
                continue;
            }
            "outcome" if r["outcome"] == "disposed" => vec![id],
            "outcomes" => r["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["outcome"] == "disposed")
                .map(|i| i["id"].as_u64().unwrap())
                .collect(),
            _ => continue,
        };
        for id in disposals {
            *disposed.entry(id).or_default() += 1;
            if arts[id as usize - 1]["kind"] != "file" {
                continue;
            }
            let v = verified_at.get(&id).unwrap_or_else(|| {
                panic!("artifact {id} disposed at {seq} without a verified read-back before it")
            });
            assert!(*v < seq);
            // (Unlinked just before a crash, a file has no removed record:
            // the resume proves its absence instead.)
            if let Some(rm) = removed_at.get(&id) {
                assert!(v < rm, "artifact {id} removed before it was verified");
            }
        }
    }
    assert_eq!(disposed.len(), planned);
    assert!(
        disposed.values().all(|n| *n == 1),
        "an artifact was recorded disposed twice"
    );
}

#[test]
fn torn_last_journal_line_is_tolerated_on_resume() {
    let env = Env::new();
    for i in 0..4 {
        env.file(&format!("models/m/{i}.bin"), &random_bytes(100_000));
    }
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    let out = env.execute_until(false, 6);
    assert!(!out.status.success());
    // A crash in the middle of writing a record.
    use std::io::Write;
    let mut j = std::fs::OpenOptions::new()
        .append(true)
        .open(env.path("journal.jsonl"))
        .unwrap();
    j.write_all(b"{\"seq\":7,\"time\":\"2026-").unwrap();
    drop(j);
    env.resume().ok();
    assert_eq!(env.cert_json()["status"], "complete");
}

#[test]
fn interrupt_stops_journals_exits_130_and_resume_continues() {
    let env = Env::new();
    for i in 0..6 {
        env.file(&format!("models/m/{i}.bin"), &random_bytes(24 << 20));
    }
    env.manifest_all("dod-3pass", "models/m");
    env.trace().ok();
    env.approve().ok();
    let child = env
        .command()
        .args(env.execute_args())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_journal(&env.path("journal.jsonl"), 3);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    assert!(
        !env.cert().exists(),
        "no certificate from an interrupted run"
    );
    env.resume().ok();
    assert_eq!(env.cert_json()["status"], "complete");
}

/// A batch of small files stopped after every file's overwrite is durable
/// and journaled, before any read-back: the resume reads each back against
/// the journaled hash (the pass is not written again) and finishes.
#[test]
fn a_batch_stopped_between_its_overwrite_and_its_read_back_resumes() {
    let env = Env::new();
    let originals: Vec<(PathBuf, Vec<u8>)> = (0..10)
        .map(|i| {
            let b = random_bytes(4096);
            (env.file(&format!("models/m/f{i}.bin"), &b), b)
        })
        .collect();
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    // 1 run-started, 10 started (one group), 10 passes (one group).
    let out = env.execute_until(false, 21);
    assert_eq!(out.status.code(), None, "stopped by the hook");
    let kinds = |text: &str, kind: &str| {
        text.lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"] == kind)
            .count()
    };
    let text = std::fs::read_to_string(env.path("journal.jsonl")).unwrap();
    assert_eq!(kinds(&text, "pass"), 10);
    assert_eq!(kinds(&text, "read-back"), 0);
    for (p, b) in &originals {
        let now = std::fs::read(p).unwrap();
        assert_eq!(now.len(), 4096);
        assert_ne!(&now, b, "{} overwritten before the stop", p.display());
    }
    env.resume().ok();
    let text = std::fs::read_to_string(env.path("journal.jsonl")).unwrap();
    assert_eq!(kinds(&text, "pass"), 10, "no pass written twice");
    assert_eq!(kinds(&text, "read-back"), 10);
    assert!(text.lines().all(|l| {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        r["type"] != "read-back" || r["ok"] == true
    }));
    assert_eq!(env.cert_json()["status"], "complete");
    assert!(originals.iter().all(|(p, _)| !p.exists()));
}

/// A batch holds two descriptors per file (the file and its directory):
/// under a low descriptor limit, batches shrink to fit beside the location
/// roots held open, instead of files failing to open.
#[test]
fn batches_fit_a_low_descriptor_limit() {
    // One location of 300 files; then 45 locations of 10 files, whose
    // 45 open roots leave room for small batches only.
    for (locations, per) in [(1usize, 300usize), (45, 10)] {
        let env = Env::new();
        let mut files = Vec::new();
        let mut toml = String::new();
        for l in 0..locations {
            for i in 0..per {
                files.push(env.file(
                    &format!("models/m{l}/d{}/f{i:03}.bin", i % 3),
                    &random_bytes(512),
                ));
            }
            toml += &format!(
                "[[locations]]\nuri = \"{}\"\n",
                env.path(&format!("models/m{l}")).display()
            );
        }
        env.manifest("nist-clear", &toml);
        env.trace().ok();
        env.approve().ok();
        let args = env.execute_args().join(" ");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n 64 && exec \"$0\" {args}"))
            .arg(bin())
            .current_dir(&env.root)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{locations} location(s): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(env.cert_json()["status"], "complete");
        assert!(files.iter().all(|f| !f.exists()));
    }
}

/// A journal from before reproducible streams records a random pass by the
/// hash of what was written and no seed: resuming it reads back and
/// compares hashes, and the certificate is complete.
#[test]
fn a_pass_journaled_by_hash_only_resumes_by_hash() {
    let env = Env::new();
    let f = env.file("models/m/w.bin", &random_bytes(100_000));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    // 1 run-started, 2 started, 3 pass.
    let out = env.execute_until(false, 3);
    assert_eq!(out.status.code(), None, "stopped by the hook");
    let written = sha256_file(&f);
    let journal = env.path("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let old: Vec<String> = text
        .lines()
        .map(|l| {
            let mut r: serde_json::Value = serde_json::from_str(l).unwrap();
            if r["type"] == "pass" {
                let o = r.as_object_mut().unwrap();
                o.remove("seed");
                o.remove("generator");
                o.insert("written_sha256".into(), written.clone().into());
            }
            r.to_string()
        })
        .collect();
    std::fs::write(&journal, old.join("\n") + "\n").unwrap();
    env.resume().ok();
    let text = std::fs::read_to_string(&journal).unwrap();
    let rb: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["type"] == "read-back")
        .unwrap();
    assert_eq!(rb["ok"], true);
    assert_eq!(rb["written_sha256"], written.as_str());
    assert_eq!(rb["readback_sha256"], written.as_str());
    assert!(rb.get("compared").is_none(), "compared by hash: {rb}");
    assert_eq!(env.cert_json()["status"], "complete");
    assert!(!f.exists());
}
