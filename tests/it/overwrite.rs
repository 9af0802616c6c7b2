//! The overwrite lands in place: observed between passes (via the journal
//! fault hook, which stops the process like `kill -9` right after a record)
//! and, on ext4, the file's physical extents (FIEMAP) never move.

use crate::common::*;
use std::path::Path;

/// Physical extents (logical, physical, length) of a file, via FIEMAP
/// (the `fiemap` crate decom itself uses).
fn fiemap(path: &Path) -> Vec<(u64, u64, u64)> {
    let f = std::fs::File::open(path).unwrap();
    fiemap::Fiemap::with_flags(&f, fiemap::FiemapFlags::SYNC)
        .map(|e| {
            let e = e.unwrap_or_else(|err| panic!("FIEMAP failed on {}: {err}", path.display()));
            (e.fe_logical, e.fe_physical, e.fe_length)
        })
        .collect()
}

fn fs_is_ext4(p: &Path) -> bool {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "ext2/ext3"
}

/// What the journal says pass `pass` wrote: its read-back compared every
/// byte with the pass's regenerated stream and hashed them.
fn journal_written(env: &Env, pass: u64) -> String {
    let text = std::fs::read_to_string(env.path("journal.jsonl")).unwrap();
    let rb = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|r| r["type"] == "read-back" && r["pass"] == pass)
        .unwrap();
    assert_eq!(rb["ok"], true);
    assert_eq!(rb["compared"], "bytes");
    rb["written_sha256"].as_str().unwrap().to_string()
}

fn run_until(env: &Env, resume: bool, records: u64) {
    let out = env.execute_until(resume, records);
    assert!(
        !out.status.success(),
        "expected the fault hook to stop the run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_pass_lands_in_place_on_the_same_extents() {
    let env = Env::new();
    let size = 4 << 20;
    let f = env.file("models/m/weights.bin", &random_bytes(size));
    let ext4 = fs_is_ext4(&f);
    let extents = fiemap(&f);
    assert!(!extents.is_empty());
    env.manifest_all("dod-3pass", "models/m");
    env.trace().ok();
    env.approve().ok();

    // Records: 1 run-started, 2 artifact-started, 3 pass 1 (zeros).
    run_until(&env, false, 3);
    let data = std::fs::read(&f).unwrap();
    assert_eq!(data.len(), size);
    assert!(
        data.iter().all(|b| *b == 0x00),
        "pass 1 wrote zeros over the whole file"
    );
    if ext4 {
        assert_eq!(
            fiemap(&f),
            extents,
            "pass 1 stayed on the same physical extents"
        );
    }
    // Resume: 4 run-started, 5 pass 2 (ones).
    run_until(&env, true, 5);
    let data = std::fs::read(&f).unwrap();
    assert!(
        data.iter().all(|b| *b == 0xFF),
        "pass 2 wrote 0xFF over the whole file"
    );
    if ext4 {
        assert_eq!(fiemap(&f), extents);
    }
    // Resume: 6 run-started, 7 pass 3 (random), 8 read-back.
    run_until(&env, true, 8);
    let data = std::fs::read(&f).unwrap();
    assert_eq!(
        data.len(),
        size,
        "never truncated before the passes are done"
    );
    assert_eq!(
        sha256_file(&f),
        journal_written(&env, 3),
        "the file holds what the last pass wrote"
    );
    assert!(data.iter().any(|b| *b != 0xFF));
    if ext4 {
        assert_eq!(fiemap(&f), extents);
    }
    env.resume().ok();
    assert!(!f.exists());
    let c = env.cert_json();
    let a = &c["artifacts"][0];
    assert_eq!(
        a["passes"][2]["written_sha256"],
        a["passes"][2]["readback_sha256"]
    );
    // Which generator made each pass is on the certificate.
    let generators: Vec<&str> = a["passes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["generator"].as_str().unwrap())
        .collect();
    assert_eq!(generators, ["fill", "fill", "aes-256-ctr"]);
    assert_eq!(a["outcome"], "disposed");
}

#[test]
fn delete_only_unlinks_without_overwriting_and_says_so() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(10_000));
    env.manifest_all("delete-only", "models/m");
    env.trace().ok();
    env.approve().ok();
    env.execute().ok();
    let c = env.cert_json();
    let a = &c["artifacts"][0];
    assert_eq!(a["passes"].as_array().unwrap().len(), 0);
    assert_eq!(a["verification"]["method"], "absence proof");
    assert_eq!(a["sanitization"]["category"], "logical");
    assert!(!env.path("models/m/a.bin").exists());
}

/// Files on two devices are overwritten at once, one worker per device: in
/// the journal, a file on one device starts while a file on the other is
/// still being overwritten, and every file still ends verified and disposed.
#[test]
fn files_on_two_devices_are_overwritten_at_once() {
    let env = Env::new();
    let (_keep, shm) = second_device(&env);
    for i in 0..4 {
        env.file(&format!("models/m/f{i}.bin"), &random_bytes(8 << 20));
        std::fs::write(shm.join(format!("g{i}.bin")), random_bytes(8 << 20)).unwrap();
    }
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\n[[locations]]\nuri = \"{}\"\n",
            env.path("models/m").display(),
            shm.display()
        ),
    );
    env.trace().ok();
    env.approve().ok();
    env.execute().ok();

    let c = env.cert_json();
    assert_eq!(c["status"], "complete");
    let arts = c["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 8);
    assert!(
        arts.iter()
            .all(|a| a["outcome"] == "disposed" && a["verification"]["verified"] == true)
    );
    let on_shm = |id: u64| {
        arts.iter()
            .find(|a| a["id"] == id)
            .and_then(|a| a["path"].as_str())
            .unwrap()
            .starts_with(shm.to_str().unwrap())
    };
    // Each file's span in the journal: from its start to its outcome.
    let mut span: std::collections::HashMap<u64, (u64, u64)> = Default::default();
    for line in std::fs::read_to_string(env.path("journal.jsonl"))
        .unwrap()
        .lines()
    {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let (seq, id) = (r["seq"].as_u64().unwrap(), r["id"].as_u64().unwrap_or(0));
        match r["type"].as_str().unwrap() {
            "artifact-started" => {
                span.insert(id, (seq, u64::MAX));
            }
            "outcome" => span.get_mut(&id).unwrap().1 = seq,
            _ => {}
        }
    }
    assert_eq!(span.len(), 8);
    let overlap = span.iter().any(|(a, (start_a, end_a))| {
        span.iter().any(|(b, (start_b, _))| {
            on_shm(*a) != on_shm(*b) && start_a < start_b && start_b < end_a
        })
    });
    assert!(
        overlap,
        "no file on one device started while one on the other was in progress: {span:?}"
    );
}

/// The certificate never claims more than the journal holds about how a
/// pass was read back: a read-back recorded as going through the page cache
/// (what decom does where O_DIRECT is refused) is named so in the
/// certificate. The record is edited between a crash and the resume, as a
/// filesystem without O_DIRECT cannot be arranged here.
#[test]
fn a_read_back_through_the_cache_is_named_so_in_the_certificate() {
    let env = Env::new();
    env.file("models/m/w.bin", &random_bytes(100_000));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    // run-started, artifact-started, pass, read-back: stop after the read-back.
    let out = env.execute_until(false, 4);
    assert_eq!(out.status.code(), None, "stopped by the fault hook");
    let journal = env.path("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("\"read-back\"") && last.contains("\"via\":\"direct\""),
        "{last}"
    );
    std::fs::write(
        &journal,
        text.replace("\"via\":\"direct\"", "\"via\":\"cache-dropped\""),
    )
    .unwrap();
    env.resume().ok();

    let c = env.cert_json();
    let a = &c["artifacts"][0];
    assert_eq!(a["outcome"], "disposed");
    assert_eq!(a["passes"][0]["readback_via"], "cache-dropped");
    let method = a["verification"]["method"].as_str().unwrap();
    assert!(
        method.contains("page cache") && method.contains("no O_DIRECT"),
        "{method}"
    );
}
