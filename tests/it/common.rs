//! The test context: a temporary tree, keys for an operator and a custodian,
//! a trusted signers file, and helpers to run the binary and read results.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const OPERATOR: &str = "operator@example.org";
pub const CUSTODIAN: &str = "custodian@example.org";

/// Signing as the operator: the key, the principal, the trusted signers,
/// no prompt. The one place the tests spell the signing arguments.
pub const AS_OPERATOR: [&str; 7] = [
    "--key",
    "keys/operator",
    "--principal",
    OPERATOR,
    "--allowed-signers",
    "keys/allowed_signers",
    "--yes",
];
/// Signing as the custodian (see [`AS_OPERATOR`]).
pub const AS_CUSTODIAN: [&str; 7] = [
    "--key",
    "keys/custodian",
    "--principal",
    CUSTODIAN,
    "--allowed-signers",
    "keys/allowed_signers",
    "--yes",
];

/// The custodian's approval as `approve` takes it when the plan names no
/// signers file: the key, the principal, no prompt.
pub const APPROVING: [&str; 5] = ["--key", "keys/custodian", "--principal", CUSTODIAN, "--yes"];

/// `args` followed by the signing arguments `by` (`AS_OPERATOR`,
/// `AS_CUSTODIAN`, `APPROVING`).
pub fn signed<'a>(args: &[&'a str], by: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(by);
    v
}

/// `verify --recheck` of the run's certificate.
pub const RECHECK: &[&str] = &[
    "verify",
    "certificate.json",
    "--allowed-signers",
    "keys/allowed_signers",
    "--recheck",
];

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    /// The error is one line, starting with `error:`, and contains `needle`.
    #[track_caller]
    pub fn one_line_error(&self, needle: &str) -> &Self {
        let errs: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect();
        assert_eq!(
            errs.len(),
            1,
            "expected one error line, stderr:\n{}",
            self.stderr
        );
        assert!(
            errs[0].contains(needle),
            "error line {:?} lacks {needle:?}",
            errs[0]
        );
        self
    }
}

/// The binary under test: this build's, or `DECOM_TEST_BIN` (to show that
/// a regression test fails on an older build).
pub fn bin() -> PathBuf {
    std::env::var_os("DECOM_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_decom")))
}

pub fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

impl Env {
    pub fn new() -> Env {
        Self::new_in(None)
    }

    /// A tree under `base` (e.g. /dev/shm for tmpfs); default: the system temp dir.
    pub fn new_in(base: Option<&Path>) -> Env {
        let tmp = match base {
            Some(b) => tempfile::tempdir_in(b).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let env = Env { tmp, root };
        std::fs::create_dir_all(env.keys()).unwrap();
        for who in ["operator", "custodian"] {
            env.decom(
                &["keygen", "--no-passphrase", "--comment", who, "--out"],
                &[env.keys().join(who).to_str().unwrap()],
            )
            .ok();
        }
        env.write_signers(&format!(
            "{CUSTODIAN} namespaces=\"decom-custodian\" {}\n{OPERATOR} namespaces=\"decom-operator\" {}\n",
            env.public("custodian"),
            env.public("operator")
        ));
        env
    }

    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn key(&self, who: &str) -> PathBuf {
        self.keys().join(who)
    }
    pub fn public(&self, who: &str) -> String {
        std::fs::read_to_string(self.keys().join(format!("{who}.pub")))
            .unwrap()
            .trim()
            .to_string()
    }
    pub fn signers(&self) -> PathBuf {
        self.keys().join("allowed_signers")
    }
    pub fn write_signers(&self, text: &str) {
        std::fs::write(self.signers(), text).unwrap();
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    pub fn plan(&self) -> PathBuf {
        self.path("plan.json")
    }
    pub fn cert(&self) -> PathBuf {
        self.path("certificate.json")
    }

    /// Write a file (creating parents).
    pub fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Write the manifest with the given locations (TOML snippets) and extra text.
    pub fn manifest(&self, profile: &str, body: &str) -> PathBuf {
        // Top-level keys (before the first table) go before [model].
        let split = body.find("\n[").map(|i| i + 1).unwrap_or(0);
        let split = if body.starts_with('[') { 0 } else { split };
        let (top, rest) = body.split_at(split);
        let text = format!(
            "profile = \"{profile}\"\n{top}[model]\nname = \"test-model\"\nversion = \"1.0\"\n{rest}"
        );
        self.file("decom.toml", text.as_bytes())
    }

    /// Add keys to `[model]` of the manifest written last.
    pub fn model_keys(&self, keys: &str) {
        let p = self.path("decom.toml");
        let m = std::fs::read_to_string(&p).unwrap().replacen(
            "version = \"1.0\"\n",
            &format!("version = \"1.0\"\n{keys}\n"),
            1,
        );
        std::fs::write(p, m).unwrap();
    }

    /// Risks of the plan of this kind, as (subject, detail).
    pub fn risks(&self, kind: &str) -> Vec<(String, String)> {
        self.plan_json()["residual_risks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == kind)
            .map(|r| {
                (
                    r["subject"].as_str().unwrap().to_string(),
                    r["detail"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// A manifest with one `match = "all"` location.
    pub fn manifest_all(&self, profile: &str, location: &str) -> PathBuf {
        self.manifest(
            profile,
            &format!(
                "[[locations]]\nuri = \"{}\"\n",
                self.path(location).display()
            ),
        )
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(&self.root)
            .env_remove("DECOM_KEY_PASSPHRASE")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DECOM_TEST_ABORT_AFTER_RECORDS")
            .env_remove("DECOM_TEST_FAIL_AFTER_RECORDS")
            .env_remove("DECOM_TEST_STOP_AFTER_RECORDS");
        c
    }

    pub fn decom(&self, args: &[&str], more: &[&str]) -> Run {
        Run::from(self.command().args(args).args(more).output().unwrap())
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.decom(args, &[])
    }

    pub fn trace(&self) -> Run {
        self.run(&["trace", "decom.toml", "-o", "plan.json", "--force"])
    }

    pub fn approve(&self) -> Run {
        self.run(&signed(&["approve", "plan.json"], APPROVING))
    }

    pub fn execute_args(&self) -> Vec<String> {
        signed(&["execute", "plan.json"], AS_OPERATOR)
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub fn execute(&self) -> Run {
        let a = self.execute_args();
        self.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn resume(&self) -> Run {
        let mut a = self.execute_args();
        a.push("--resume".into());
        self.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn cosign(&self) -> Run {
        self.run(&signed(&["cosign", "certificate.json"], AS_CUSTODIAN))
    }

    pub fn verify(&self) -> Run {
        self.run(&[
            "verify",
            "certificate.json",
            "--allowed-signers",
            "keys/allowed_signers",
        ])
    }

    /// `verify --recheck` of certificate.json: every location traced again.
    pub fn recheck(&self) -> Run {
        self.run(RECHECK)
    }

    pub fn plan_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.plan()).unwrap()).unwrap()
    }

    pub fn cert_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.cert()).unwrap()).unwrap()
    }

    /// Each certificate artifact's `key` field (`path`, `kind`), outcome
    /// and reason.
    pub fn outcomes(&self, key: &str) -> Vec<(String, String, String)> {
        self.cert_json()["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a[key].as_str().unwrap().to_string(),
                    a["outcome"].as_str().unwrap().to_string(),
                    a["reason"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Paths the plan lists.
    pub fn planned_paths(&self) -> Vec<String> {
        self.plan_json()["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    }

    /// Outcome of the certificate artifact with this path.
    pub fn outcome(&self, path: &Path) -> String {
        let c = self.cert_json();
        let a = c["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not in certificate", path.display()));
        a["outcome"].as_str().unwrap().to_string()
    }

    /// Snapshot of every file under a directory: path → sha256 (symlinks as "-> target").
    pub fn snapshot(&self, dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
        let mut m = std::collections::BTreeMap::new();
        for e in walkdir::WalkDir::new(dir).follow_links(false) {
            let e = e.unwrap();
            let v = if e.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
            } else if e.file_type().is_file() {
                sha256_file(e.path())
            } else {
                "dir".into()
            };
            m.insert(e.path().to_path_buf(), v);
        }
        m
    }
}

/// Wait until the journal at `path` holds at least `n` lines (a running
/// execute has reached that point); panics after a minute.
pub fn wait_for_journal(path: &Path, n: usize) {
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < n
    {
        assert!(
            t0.elapsed().as_secs() < 60,
            "the journal never reached {n} lines"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

impl Env {
    /// Run execute (with `--resume` when asked) under the journal fault hook:
    /// the process aborts, like `kill -9`, right after journal record `records`.
    pub fn execute_until(&self, resume: bool, records: u64) -> Output {
        let mut args = self.execute_args();
        if resume {
            args.push("--resume".into());
        }
        self.command()
            .args(&args)
            .env("DECOM_TEST_ABORT_AFTER_RECORDS", records.to_string())
            .output()
            .unwrap()
    }
}

/// A directory on a second device (tmpfs at /dev/shm), for runs that span
/// two devices. Panics, rather than skipping, when there is none.
pub fn second_device(env: &Env) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::MetadataExt;
    let shm = Path::new("/dev/shm");
    assert!(
        shm.is_dir(),
        "tests that span two devices need a tmpfs at /dev/shm"
    );
    let tmp = tempfile::tempdir_in(shm).unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    assert_ne!(
        std::fs::metadata(&dir).unwrap().dev(),
        std::fs::metadata(&env.root).unwrap().dev(),
        "/dev/shm is on the same device as the test's temp dir"
    );
    (tmp, dir)
}

/// The project's virtualenv of pinned test tools (`DECOM_VENV`, default
/// ~/.cache/decom-venv).
pub fn venv() -> PathBuf {
    std::env::var_os("DECOM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/decom-venv")
        })
}

/// Run one of the Python helpers in `tests/tools/` with the project's
/// virtualenv (scripts/test.sh installs the pinned libraries there). Fails,
/// never skips, when the virtualenv or its libraries are missing.
pub fn python_tool(args: &[&str]) -> String {
    python_tool_env(args, &[])
}

/// [`python_tool`] with extra environment variables.
pub fn python_tool_env(args: &[&str], env: &[(&str, String)]) -> String {
    let venv = venv();
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which installs the pinned test tools",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(args[0]);
    let out = Command::new(&python)
        .arg(script)
        .args(&args[1..])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `decom demo` run to the end: what it printed, its folder, its
/// certificate and the kinds of artifact the certificate lists.
pub struct Demo {
    pub out: Output,
    pub dir: PathBuf,
    pub cert: serde_json::Value,
    pub kinds: Vec<String>,
    _tmp: tempfile::TempDir,
}

/// Run `decom demo --weights-mib 2 FLAGS` in a new folder, with `env` set
/// on the command; it must succeed and its certificate be complete.
pub fn run_demo(flags: &[&str], env: impl FnOnce(&mut Command)) -> Demo {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut c = Command::new(bin());
    env(&mut c);
    let out = c
        .args(["demo", "--weights-mib", "2"])
        .args(flags)
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("certificate.json")).unwrap()).unwrap();
    assert_eq!(cert["status"], "complete");
    let kinds = cert["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    Demo {
        out,
        dir,
        cert,
        kinds,
        _tmp: tmp,
    }
}
