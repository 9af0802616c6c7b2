//! Careless and hostile use (issue: what the custodian approves is what is
//! destroyed, and the evidence survives). Each test reproduces one finding
//! and fails on the build before the fix.

use crate::common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Run execute stopped (SIGSTOP, the `DECOM_TEST_STOP_AFTER_RECORDS` hook)
/// right after journal record `n`; `during` then changes the filesystem as a
/// racing process would, and the run goes on (SIGCONT).
fn execute_stopped_at(env: &Env, n: u64, during: impl FnOnce()) -> Run {
    let child = env
        .command()
        .args(env.execute_args())
        .env("DECOM_TEST_STOP_AFTER_RECORDS", n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t0 = std::time::Instant::now();
    let mut stopped = false;
    while t0.elapsed().as_secs() < 60 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        if state == Some('T') {
            stopped = true;
            break;
        }
        if state == Some('Z') || stat.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if stopped {
        during();
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
    Run::from(child.wait_with_output().unwrap())
}

fn journal_kinds(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event"]["type"]
                .as_str()
                .or_else(|| v["type"].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

/// The race of the report: after a step of the disposal, the planned file
/// is renamed aside and a symlink put at its path; after the run it is put
/// back. At every step the swap can land on, the certificate must never say
/// the file was disposed of while its inode is still on disk under a name.
#[test]
fn a_name_swapped_while_execute_runs_is_never_certified_removed() {
    let mut seen_steps = 0;
    for profile in ["nist-clear", "delete-only", "dod-3pass"] {
        for n in 2.. {
            let env = Env::new();
            let a = env.file("models/m/a.bin", &random_bytes(64 << 10));
            env.file("victim.txt", b"the attacker's decoy");
            env.manifest_all(profile, "models/m");
            env.trace().ok();
            env.approve().ok();
            let aside = env.path("aside.bin");
            let swapped = std::cell::Cell::new(false);
            let r = execute_stopped_at(&env, n, || {
                if a.exists() {
                    std::fs::rename(&a, &aside).unwrap();
                    std::os::unix::fs::symlink(env.path("victim.txt"), &a).unwrap();
                    swapped.set(true);
                }
            });
            let kinds = journal_kinds(&env);
            if kinds.len() as u64 <= n {
                // The run ended before record n: every step was covered.
                assert!(seen_steps > 0);
                break;
            }
            if !swapped.get() {
                continue;
            }
            seen_steps += 1;
            // The attacker puts the file back where it was.
            if a.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                std::fs::remove_file(&a).unwrap();
            }
            std::fs::rename(&aside, &a).unwrap();
            let outcome = env.outcome(&a);
            assert_ne!(
                outcome,
                "disposed",
                "{profile}, swap after record {n} ({:?}): the file is back at its path, yet certified removed; {}",
                kinds.get(n as usize - 1),
                r.stderr
            );
            assert_ne!(r.code, 0, "{profile}, swap after record {n}: {}", r.stderr);
            assert_eq!(
                std::fs::read(env.path("victim.txt")).unwrap(),
                b"the attacker's decoy",
                "the link's target is untouched"
            );
        }
    }
    assert!(seen_steps >= 6, "the swap landed on {seen_steps} step(s)");
}

/// `decom execute … 2>&1 | head`: a closed output stream is not a crash.
fn closed_output(env: &Env, args: &[String]) -> i32 {
    let mut child: Child = env
        .command()
        .args(args)
        .arg("-v")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn closed_stdout_and_stderr_neither_panic_trace_nor_execute() {
    let env = Env::new();
    for i in 0..300 {
        env.file(&format!("models/m/f{i:03}.bin"), &random_bytes(512));
    }
    env.manifest_all("nist-clear", "models/m");
    let trace: Vec<String> = ["trace", "decom.toml", "-o", "plan.json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        closed_output(&env, &trace),
        0,
        "trace exits as its work earned"
    );
    assert!(env.plan().exists());
    env.approve().ok();
    assert_eq!(closed_output(&env, &env.execute_args()), 0);
    assert!(env.cert().exists(), "the certificate is written");
    env.cosign().ok();
    env.verify().ok();
    let c = env.cert_json();
    assert_eq!(c["status"], "complete");
}

#[test]
fn resume_refuses_a_complete_run_and_a_missing_journal_and_keeps_the_evidence() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(4096));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    env.resume().code(2).one_line_error("no journal");
    assert!(
        !env.path("journal.jsonl").exists(),
        "a refused resume starts nothing"
    );
    env.execute().ok();
    env.cosign().ok();
    let cert = std::fs::read(env.cert()).unwrap();
    let cosig = env.path("certificate.json.custodian.sig");
    let sig = std::fs::read(&cosig).unwrap();
    env.resume().code(2).one_line_error("the run is complete");
    assert_eq!(std::fs::read(env.cert()).unwrap(), cert);
    assert_eq!(std::fs::read(&cosig).unwrap(), sig);
    env.verify().ok();
}

/// An incomplete run resumed writes a new certificate; the earlier one and
/// its signatures are kept, never replaced.
#[test]
fn a_resumed_run_keeps_the_earlier_certificate() {
    let (env, _) = executed_while_immutable();
    let first = std::fs::read(env.cert()).unwrap();
    env.resume().ok();
    let kept = env.path("certificate.superseded-1.json");
    assert_eq!(std::fs::read(&kept).unwrap(), first);
    assert!(
        env.path("certificate.superseded-1.json.operator.sig")
            .exists()
    );
    env.run(&[
        "verify",
        "certificate.superseded-1.json",
        "--allowed-signers",
        "keys/allowed_signers",
    ])
    .code(1); // it says incomplete, and verifies as what it is
}

/// One planned file made immutable (`chattr +i`) for an execute, then
/// writable again: the run ends incomplete (exit 1).
fn executed_while_immutable() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let a = env.file("models/m/a.bin", &random_bytes(4096));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    run_cmd("chattr", &["+i", a.to_str().unwrap()]);
    let r = env.execute();
    run_cmd("chattr", &["-i", a.to_str().unwrap()]);
    r.code(1);
    (env, a)
}

fn run_cmd(cmd: &str, args: &[&str]) {
    let s = Command::new(cmd).args(args).status().unwrap();
    assert!(s.success(), "{cmd} {args:?}");
}

/// `chattr +i`: the file did not change, it cannot be written. The outcome
/// is a failure (tried again on resume), not "changed since approval".
#[test]
fn an_immutable_file_fails_and_resume_retries_it_once_writable() {
    let (env, a) = executed_while_immutable();
    assert_eq!(env.outcome(&a), "failed");
    let c = env.cert_json();
    let reason = c["artifacts"][0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("immutable"), "{reason}");
    env.resume().ok();
    assert_eq!(env.outcome(&a), "disposed");
    assert!(!a.exists());
}

#[test]
fn a_symlinked_location_is_shown_with_its_real_path() {
    let env = Env::new();
    env.file("real/models/a.bin", &random_bytes(1000));
    std::os::unix::fs::symlink(env.path("real/models"), env.path("link")).unwrap();
    env.manifest_all("nist-clear", "link");
    env.trace().ok();
    let real = std::fs::canonicalize(env.path("real/models")).unwrap();
    let show = env.run(&["show", "plan.json"]);
    show.ok();
    let want = format!("{} → {}", env.path("link").display(), real.display());
    assert!(
        show.stdout.contains(&want) || show.stderr.contains(&want),
        "{}",
        show.stdout
    );
}

#[test]
fn system_folders_and_a_home_folder_as_a_whole_are_refused() {
    let env = Env::new();
    std::os::unix::fs::symlink("/etc", env.path("etclink")).unwrap();
    for uri in ["/etc", "/usr", "/var", "/boot"] {
        env.manifest("nist-clear", &format!("[[locations]]\nuri = \"{uri}\"\n"));
        env.trace().code(2).one_line_error("allow_system");
    }
    env.manifest_all("nist-clear", "etclink");
    env.trace().code(2).one_line_error("system folder /etc");
    // A home folder as a whole.
    std::fs::create_dir_all(env.path("home/ana")).unwrap();
    env.manifest_all("nist-clear", "home/ana");
    let r = Run::from(
        env.command()
            .args(["trace", "decom.toml", "-o", "plan.json", "--force"])
            .env("HOME", env.path("home/ana"))
            .output()
            .unwrap(),
    );
    r.code(2).one_line_error("home folder");
    assert!(!env.plan().exists());
}

/// A location holding decom's own files: the manifest and the plan are
/// excluded at trace and named; the keys and trusted signers file, which
/// trace cannot know, make execute refuse before anything is touched.
#[test]
fn decoms_own_inputs_are_never_planned_and_execute_refuses_to_destroy_them() {
    let env = Env::new();
    env.file("data/a.bin", &random_bytes(1000));
    env.manifest(
        "nist-clear",
        &format!("[[locations]]\nuri = \"{}\"\n", env.root.display()),
    );
    env.trace().ok();
    // Traced again, the plan of the first trace is there to be found.
    env.trace().ok();
    let paths = env.planned_paths();
    for own in ["decom.toml", "plan.json"] {
        let p = std::fs::canonicalize(env.path(own)).unwrap();
        assert!(!paths.contains(&p.display().to_string()), "{own} planned");
        assert!(
            env.risks("decom-own-file")
                .iter()
                .any(|(s, _)| *s == p.display().to_string()),
            "{own} named as excluded"
        );
    }
    // The keys and the trusted signers file, which trace is not told of,
    // are known by their content.
    for own in ["keys/custodian", "keys/operator", "keys/allowed_signers"] {
        let p = std::fs::canonicalize(env.path(own)).unwrap();
        assert!(!paths.contains(&p.display().to_string()), "{own} planned");
    }
    // A trusted signers file trace could not know (a long comment first)
    // is planned; execute, told it is its signers file, refuses the plan.
    let signers = std::fs::read_to_string(env.signers()).unwrap();
    let disguised = format!("{}{signers}", "# a long preamble\n".repeat(300));
    env.file("data/signers", disguised.as_bytes());
    env.trace().ok();
    assert!(
        env.planned_paths()
            .iter()
            .any(|p| p.ends_with("data/signers"))
    );
    env.approve().ok();
    let before = env.snapshot(&env.root);
    let mut args = env.execute_args();
    let at = args.iter().position(|a| a == "--allowed-signers").unwrap();
    args[at + 1] = "data/signers".into();
    env.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .code(2)
        .one_line_error("its own inputs");
    assert_eq!(env.snapshot(&env.root), before, "nothing touched");
}

#[test]
fn out_inside_a_folder_the_plan_removes_is_refused() {
    let env = Env::new();
    env.file("models/m/sub/a.bin", &random_bytes(1000));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    let mut args = env.execute_args();
    args.extend([
        "--out".into(),
        env.path("models/m/sub/evidence").display().to_string(),
    ]);
    let r = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.code(2).one_line_error("a folder the plan removes");
    assert!(env.path("models/m/sub/a.bin").exists());
}

#[test]
fn special_files_are_accounted_for_as_residual_risks() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(1000));
    run_cmd("mkfifo", &[env.path("models/m/pipe").to_str().unwrap()]);
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let risks = env.risks("special-file");
    assert!(
        risks
            .iter()
            .any(|(s, d)| s.ends_with("/pipe") && d.contains("FIFO")),
        "{risks:?}"
    );
    env.approve().ok();
    env.execute().ok();
    let c = env.cert_json();
    assert!(
        c["residual_risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "special-file"),
        "the certificate names what stays"
    );
}

#[test]
fn a_file_open_for_writing_elsewhere_is_reported_and_skipped() {
    let env = Env::new();
    let a = env.file("models/m/a.bin", &random_bytes(1000));
    env.file("models/m/b.bin", &random_bytes(1000));
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg("exec 3>>\"$1\"; sleep 60")
        .arg("sh")
        .arg(&a)
        .spawn()
        .unwrap();
    // Wait until the shell holds it open.
    let t0 = std::time::Instant::now();
    while !std::fs::read_dir(format!("/proc/{}/fd", writer.id()))
        .map(|d| {
            d.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == a))
        })
        .unwrap_or(false)
    {
        assert!(t0.elapsed().as_secs() < 10);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let risks = env.risks("open-for-writing");
    assert!(risks.iter().any(|(s, _)| Path::new(s) == a), "{risks:?}");
    env.approve().ok();
    let r = env.execute();
    let _ = writer.kill();
    let _ = writer.wait();
    r.code(1);
    assert_eq!(env.outcome(&a), "skipped-changed");
    assert!(a.exists());
    assert_eq!(env.outcome(&env.path("models/m/b.bin")), "disposed");
}

#[test]
fn a_name_with_a_newline_is_reported_not_planned_and_the_plan_stays_approvable() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(1000));
    env.file("models/m/evil\nname.bin", &random_bytes(1000));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    assert_eq!(env.risks("unrecordable-name").len(), 1);
    env.run(&["show", "plan.json"]).ok();
    env.approve().ok();
    env.execute().ok();
    assert!(env.path("models/m/evil\nname.bin").exists());
}

/// Quiet by default: a run over many files does not print a line each.
#[test]
fn execute_prints_no_line_per_artifact_without_verbose() {
    let env = Env::new();
    for i in 0..20 {
        env.file(&format!("models/m/f{i:02}.bin"), &random_bytes(100));
    }
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    let r = env.execute();
    r.ok();
    let named = r.stderr.lines().filter(|l| l.contains("/f0")).count();
    assert_eq!(named, 0, "{}", r.stderr);
}

#[test]
fn an_empty_location_is_said() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("models/empty")).unwrap();
    env.file("models/m/a.bin", &random_bytes(100));
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\n[[locations]]\nuri = \"{}\"\n",
            env.path("models/m").display(),
            env.path("models/empty").display()
        ),
    );
    env.trace().ok();
    let r = env.risks("empty-location");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].0.ends_with("models/empty"));
}

/// `[[keep]]` needs no model name: the risk then names the folder.
#[test]
fn keep_without_a_model_name_is_accepted() {
    let env = Env::new();
    let tokenizer = random_bytes(2000);
    env.file("models/fraud/tokenizer.json", &tokenizer);
    env.file("models/keeper/tokenizer.json", &tokenizer);
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\n[[keep]]\nuri = \"{}\"\n",
            env.path("models").display(),
            env.path("models/keeper").display()
        ),
    );
    env.trace().ok();
    let shared = env.risks("shared-content");
    assert!(
        shared.iter().any(|(_, d)| d.contains("[[keep]] folder")),
        "{shared:?}"
    );
}

/// approve without --allowed-signers cannot check the key's role: it says so.
#[test]
fn approve_without_a_signers_file_warns_that_the_role_is_unchecked() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(100));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let r = env.approve();
    r.ok();
    assert!(r.stderr.contains("--allowed-signers"), "{}", r.stderr);
}

/// A sparse file is written in full: the plan says so.
#[test]
fn a_sparse_file_is_noted() {
    let env = Env::new();
    let f = env.path("models/m/sparse.bin");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&f).unwrap();
    file.set_len(64 << 20).unwrap();
    env.manifest_all("delete-only", "models/m");
    env.trace().ok();
    let r = env.risks("sparse-file");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].1.contains("64.0 MiB"), "{r:?}");
}

/// A missing TMPDIR is named as such, before anything is touched.
#[test]
fn a_missing_tmpdir_is_a_clear_refusal() {
    let env = Env::new();
    let a = env.file("models/m/a.bin", &random_bytes(100));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    let r = Run::from(
        env.command()
            .args(env.execute_args())
            .env("TMPDIR", env.path("no-such-dir"))
            .output()
            .unwrap(),
    );
    r.code(2).one_line_error("TMPDIR");
    assert!(!r.stderr.contains("not a valid decom plan"), "{}", r.stderr);
    assert!(a.exists());
}

/// An approved plan is evidence (its certificate finds it by hash): trace
/// --force over it is refused, and neither the plan nor its approval is
/// touched. Before, the approval was removed and the plan replaced.
#[test]
fn an_approved_plan_is_never_replaced_by_a_new_trace() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(100));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
    let plan = std::fs::read(env.plan()).unwrap();
    let sig = std::fs::read(env.path("plan.json.custodian.sig")).unwrap();
    env.file("models/m/b.bin", &random_bytes(100));
    env.trace()
        .code(2)
        .one_line_error("the plan there is approved");
    assert_eq!(std::fs::read(env.plan()).unwrap(), plan);
    assert_eq!(
        std::fs::read(env.path("plan.json.custodian.sig")).unwrap(),
        sig
    );
}
