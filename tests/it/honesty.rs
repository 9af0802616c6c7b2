//! Exit codes that tell the truth. Exit 2 promises "nothing was touched":
//! once execute has begun destroying, every failure is exit 1 with a journal
//! that `--resume` continues. And a certificate with any byte changed is a
//! failed verification (exit 1), whether or not it still parses.

use crate::common::{APPROVING, AS_CUSTODIAN, Env, Run, signed};
use std::path::{Path, PathBuf};
use std::process::Command;

fn model(env: &Env, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| env.file(&format!("models/m/shard-{i:02}.bin"), &vec![i as u8; 6000]))
        .collect()
}

fn approved(env: &Env, n: usize) -> Vec<PathBuf> {
    let files = model(env, n);
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    files
}

/// `n` files in each of `folders` locations: one batch per location.
fn approved_in_folders(env: &Env, n: usize, folders: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut locations = String::new();
    for j in 0..folders {
        for i in 0..n {
            files.push(env.file(
                &format!("models/m{j}/shard-{i:02}.bin"),
                &vec![i as u8; 6000],
            ));
        }
        locations += &format!(
            "[[locations]]\nuri = \"{}\"\n",
            env.path(&format!("models/m{j}")).display()
        );
    }
    env.manifest("nist-clear", &locations);
    env.trace().ok();
    env.approve().ok();
    files
}

fn execute_with(env: &Env, extra: &[&str], vars: &[(&str, String)]) -> Run {
    let mut c = env.command();
    c.args(env.execute_args()).args(extra);
    for (k, v) in vars {
        c.env(k, v);
    }
    Run::from(c.output().unwrap())
}

fn journal_lines(p: &Path) -> usize {
    std::fs::read_to_string(p).unwrap().lines().count()
}

/// Regression: a journal write that failed after files had been overwritten
/// used to exit 2 ("nothing was touched"). At several points of the run the
/// journal stops accepting records, as a full disk would: the run must end
/// with exit 1 and one error line pointing at --resume, the journal must stay
/// parseable, and a resume must finish the job with every file disposed once.
#[test]
fn a_journal_write_failing_mid_run_exits_1_and_resume_completes() {
    // Files go in a batch: 1 run-started, 6 started, then 6 passes (8-13),
    // 6 read-backs (14-19), renames, removals. Each point is after the
    // first overwrite.
    for fail_after in [8u64, 11, 15, 19] {
        let env = Env::new();
        let files = approved(&env, 6);
        let r = execute_with(
            &env,
            &[],
            &[("DECOM_TEST_FAIL_AFTER_RECORDS", fail_after.to_string())],
        );
        r.code(1).one_line_error("--resume");
        assert!(
            !r.stderr.contains("nothing was touched"),
            "exit 1 must not claim nothing was touched: {}",
            r.stderr
        );
        assert_eq!(
            journal_lines(&env.path("journal.jsonl")),
            fail_after as usize,
            "the journal holds exactly the records written before the failure"
        );
        let touched = files
            .iter()
            .enumerate()
            .filter(|(i, f)| std::fs::read(f).map_or(true, |b| b != vec![*i as u8; 6000]))
            .count();
        assert!(
            touched > 0,
            "after {fail_after} records destruction had begun (so exit 2 would lie)"
        );
        assert!(!env.cert().exists(), "no certificate from a broken run");
        env.resume().ok();
        assert!(files.iter().all(|f| !f.exists()));
        let cert = env.cert_json();
        assert_eq!(cert["status"], "complete", "after failing at {fail_after}");
        env.cosign().ok();
        env.verify().ok();
    }
}

/// Unmounts a tmpfs when the test ends, however it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The real thing: the journal's folder (`--out`) is a 128 KiB tmpfs that
/// fills up part-way through the run. ENOSPC after destruction began is
/// exit 1, never 2; after space is freed, `--resume` completes. Needs root
/// (CI and the test machine run as root); fails rather than skips without.
#[test]
fn a_full_disk_under_the_journal_exits_1_and_resume_completes() {
    let env = Env::new();
    // Four locations, so four batches: the disk fills in one of them.
    let files = approved_in_folders(&env, 6, 4);
    let out = env.path("small-out");
    std::fs::create_dir(&out).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=128k,mode=0700",
            "decom-test-full",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs needs root");
    let _guard = Mount(out.clone());
    // Leave three 4 KiB pages for the journal: about two and a half of
    // the four batches (a batch of 6 files journals about 4.5 KB).
    let filler = out.join("filler");
    std::fs::write(&filler, vec![0u8; 116 << 10]).unwrap();
    let out_arg = out.to_str().unwrap();
    let r = execute_with(&env, &["--out", out_arg], &[]);
    r.code(1).one_line_error("--resume");
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    let gone = files.iter().filter(|f| !f.exists()).count();
    assert!(
        gone > 0 && gone < files.len(),
        "the disk filled part-way: {gone} of {} files gone",
        files.len()
    );
    // The journal holds only whole records and resumes.
    std::fs::remove_file(&filler).unwrap();
    execute_with(&env, &["--out", out_arg, "--resume"], &[]).ok();
    assert!(files.iter().all(|f| !f.exists()));
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("certificate.json")).unwrap()).unwrap();
    assert_eq!(cert["status"], "complete");
    assert_eq!(
        cert["totals"]["artifacts"],
        env.plan_json()["totals"]["artifacts"]
    );
}

/// `execute --out DIR` and `archive --to DIR` create a missing folder
/// (they used to stop with "not a directory", exit 2).
#[test]
fn missing_output_folders_are_created() {
    let env = Env::new();
    let files = approved(&env, 2);
    execute_with(&env, &["--out", "runs/2026/fd"], &[]).ok();
    assert!(files.iter().all(|f| !f.exists()));
    let dir = env.path("runs/2026/fd");
    assert!(dir.join("journal.jsonl").is_file());
    assert!(dir.join("certificate.json.operator.sig").is_file());
    // A file where the folder should be is still refused, before anything.
    let env2 = Env::new();
    let files2 = approved(&env2, 2);
    env2.file("taken", b"x");
    execute_with(&env2, &["--out", "taken"], &[])
        .code(2)
        .one_line_error("not a directory");
    assert!(files2.iter().all(|f| f.exists()));

    // archive --to a folder that does not exist yet.
    std::fs::copy(env.plan(), dir.join("plan.json")).unwrap();
    std::fs::copy(
        env.path("plan.json.custodian.sig"),
        dir.join("plan.json.custodian.sig"),
    )
    .unwrap();
    env.run(&signed(
        &["cosign", "runs/2026/fd/certificate.json"],
        AS_CUSTODIAN,
    ))
    .ok();
    env.run(&[
        "archive",
        "runs/2026/fd/certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
        "--to",
        "vault/new/folder",
    ])
    .ok();
    assert!(env.path("vault/new/folder/index.jsonl").is_file());
    assert_eq!(
        std::fs::read_dir(env.path("vault/new/folder/bundles"))
            .unwrap()
            .count(),
        1
    );
}

fn disposed_and_cosigned() -> Env {
    let env = Env::new();
    approved(&env, 2);
    env.execute().ok();
    env.cosign().ok();
    env.verify().ok();
    env
}

/// Every byte of a real, co-signed certificate flipped in turn (two bit
/// patterns: one that mostly keeps JSON valid, one that mostly breaks it):
/// the evidence never verifies. Run through the library's `Evidence`, the
/// code `decom verify` runs, so that all ~2 x 4,000 flips stay fast.
#[test]
fn every_byte_flip_of_a_certificate_fails_verification() {
    use decom::cert::{CoSignature, Evidence};
    let env = disposed_and_cosigned();
    let original = std::fs::read(env.cert()).unwrap();
    let signers = env.signers();
    let ev = Evidence::gather(&env.cert(), &signers, CoSignature::Required).unwrap();
    assert!(ev.verified(), "{:?}", ev.checks());
    let (mut parsed, mut unparsed) = (0, 0);
    for i in 0..original.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = original.clone();
            b[i] ^= bit;
            std::fs::write(env.cert(), &b).unwrap();
            let ev = Evidence::gather(&env.cert(), &signers, CoSignature::Required)
                .unwrap_or_else(|e| panic!("flip {bit:#x} at {i}: an error, not a verdict: {e}"));
            assert!(!ev.verified(), "flip {bit:#x} at byte {i} verified");
            if ev.certificate().is_some() {
                parsed += 1;
            } else {
                unparsed += 1;
            }
        }
    }
    // Both paths were exercised: flips that still parse and flips that do not.
    assert!(parsed > 100 && unparsed > 100, "{parsed} / {unparsed}");
    std::fs::write(env.cert(), &original).unwrap();
    env.verify().ok();
}

/// The same property through the binary, on random positions: exit 1 and
/// "NOT verified", never exit 2, whether the flip left valid JSON or not.
#[test]
fn decom_verify_exits_1_on_any_changed_byte() {
    use proptest::prelude::*;
    let env = disposed_and_cosigned();
    let original = std::fs::read(env.cert()).unwrap();
    let len = original.len();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(0..len, 1u8..=255), |(i, x)| {
            let mut b = original.clone();
            b[i] ^= x;
            std::fs::write(env.cert(), &b).unwrap();
            let r = env.verify();
            prop_assert_eq!(r.code, 1, "byte {} ^ {:#x}: {}", i, x, r.stderr);
            prop_assert!(r.stdout.contains("NOT verified"), "{}", r.stdout);
            Ok(())
        })
        .unwrap();
    // A certificate that no longer parses says why, as a failed check.
    let mut b = original.clone();
    b[0] = b'[';
    std::fs::write(env.cert(), &b).unwrap();
    let r = env.verify();
    r.code(1);
    assert!(r.stdout.contains("FAIL operator signature"), "{}", r.stdout);
    assert!(r.stdout.contains("FAIL certificate"), "{}", r.stdout);
}

/// Regression: a trace that found nothing gave a plan of 0 artifacts that a
/// custodian could approve and that certified "complete". approve now
/// refuses it without --allow-empty, and the certificate says "nothing
/// found", never complete; verify accepts it as such and says so.
#[test]
fn a_plan_of_nothing_is_refused_by_approve_and_never_certified_complete() {
    let env = Env::new();
    env.file("models/m/notes.txt", b"not the model");
    let w = env.file("elsewhere/w.bin", b"weights");
    let sha = crate::common::sha256_file(&w);
    env.manifest(
        "nist-clear",
        &format!(
            "[[components]]\nname = \"w\"\nsha256 = \"{}\"\n[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n",
            // A known component that is not in the location.
            sha.replace(&sha[..1], if &sha[..1] == "0" { "1" } else { "0" }),
            env.path("models/m").display()
        ),
    );
    env.trace().ok();
    assert_eq!(env.plan_json()["totals"]["artifacts"], 0);
    env.approve()
        .code(2)
        .one_line_error("the plan lists no artifact");
    assert!(!env.path("plan.json.custodian.sig").exists());
    env.run(&signed(
        &["approve", "plan.json", "--allow-empty"],
        APPROVING,
    ))
    .ok();
    let r = env.execute();
    r.ok();
    assert!(r.stderr.contains("NOTHING FOUND"), "{}", r.stderr);
    assert_eq!(env.cert_json()["status"], "nothing-found");
    assert!(env.path("models/m/notes.txt").exists());
    env.cosign().ok();
    let v = env.verify();
    v.ok();
    assert!(v.stdout.contains("NOTHING FOUND"), "{}", v.stdout);
    assert!(!v.stdout.contains("verified: complete"), "{}", v.stdout);
}
