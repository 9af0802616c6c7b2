//! The command line as a newcomer meets it: keygen's advice, shell
//! completions and the man page.

use crate::common::*;

/// keygen suggests allowed_signers lines with the principal the user gave
/// in --comment (it used to print example.org names), one per role.
#[test]
fn keygen_suggests_signers_lines_for_the_given_principal() {
    let env = Env::new();
    let r = env.run(&[
        "keygen",
        "--no-passphrase",
        "--comment",
        "carl@bank.example",
        "--out",
        "carl",
    ]);
    r.ok();
    let public = std::fs::read_to_string(env.path("carl.pub")).unwrap();
    for ns in ["decom-custodian", "decom-operator"] {
        let want = format!("carl@bank.example namespaces=\"{ns}\" {}", public.trim());
        assert!(
            r.stderr.contains(&want),
            "missing {want:?} in:\n{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("example.org"), "{}", r.stderr);
    // The suggested line works as is: ssh-keygen accepts a signature under it.
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("decom-custodian"))
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(env.path("signers"), format!("{line}\n")).unwrap();
    std::fs::write(env.path("msg"), b"hello").unwrap();
    let sign = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "decom-custodian", "-f"])
        .arg(env.path("carl"))
        .arg(env.path("msg"))
        .output()
        .unwrap();
    assert!(sign.status.success(), "{sign:?}");
    let check = std::process::Command::new("sh")
        .arg("-c")
        .arg("ssh-keygen -Y verify -f signers -I carl@bank.example -n decom-custodian -s msg.sig < msg")
        .current_dir(&env.root)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    // Without a comment, a placeholder that cannot be mistaken for a name.
    let r = env.run(&["keygen", "--no-passphrase", "--out", "anon"]);
    r.ok();
    assert!(r.stderr.contains("PRINCIPAL namespaces="), "{}", r.stderr);
}

#[test]
fn completions_and_man_page_cover_every_command() {
    let env = Env::new();
    let commands = [
        "keygen", "trace", "show", "approve", "execute", "cosign", "verify", "render", "archive",
        "demo", "hash", "plan", "collect",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let r = env.run(&["completions", shell]);
        r.ok();
        for c in commands {
            assert!(r.stdout.contains(c), "{shell} completion lacks {c}");
        }
    }
    // bash can load what it printed.
    let bash = env.run(&["completions", "bash"]);
    std::fs::write(env.path("decom.bash"), &bash.stdout).unwrap();
    let st = std::process::Command::new("bash")
        .args(["-c", "source ./decom.bash && complete -p decom"])
        .current_dir(&env.root)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let man = env.run(&["man"]);
    man.ok();
    assert!(man.stdout.starts_with(".ie"), "roff expected");
    assert!(man.stdout.contains(".TH decom 1"), "{}", &man.stdout[..200]);
    for c in commands {
        assert!(
            man.stdout.contains(&format!(".TH decom-{c} 1")),
            "man page lacks decom-{c}"
        );
    }
    env.run(&["completions", "tcsh"]).code(2);
}

/// `--json` writes one object per line, `type` first among equals: the
/// record of each command names its type and exactly these fields (the
/// record types are typed structs in src/cli/records.rs; this pins what
/// scripts that read them rely on).
#[test]
fn json_records_name_their_type_and_fields() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(1000));
    env.manifest_all("nist-clear", "models/m");
    let record = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut a = vec!["--json"];
        a.extend(args);
        let r = env.run(&a);
        assert!(r.code == 0 || r.code == 1, "{a:?}: {}", r.stderr);
        r.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let expect = |v: &serde_json::Value, ty: &str, fields: &[&str]| {
        assert_eq!(v["type"], ty, "{v}");
        let mut want: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        want.push("type".into());
        want.sort();
        assert_eq!(keys(v), want, "{v}");
        // Keys come out in alphabetical order.
        let text = v.to_string();
        let at: Vec<usize> = want
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    };
    let t = record(&["trace", "decom.toml", "-o", "plan.json", "--force"]);
    expect(
        &t[0],
        "plan",
        &[
            "path",
            "sha256",
            "artifacts",
            "bytes",
            "residual_risks",
            "components_not_searched",
            "hashes_ignored",
        ],
    );
    let s = record(&["show", "plan.json"]);
    expect(
        &s[0],
        "plan",
        &[
            "path",
            "model",
            "profile",
            "residual_risks",
            "totals",
            "locations",
        ],
    );
    let a = record(&signed(&["approve", "plan.json"], APPROVING));
    expect(
        &a[0],
        "approval",
        &[
            "plan",
            "plan_sha256",
            "signature",
            "principal",
            "key_fingerprint",
        ],
    );
    let mut ex = vec!["--json"];
    let args = env.execute_args();
    ex.extend(args.iter().map(String::as_str));
    let e: serde_json::Value =
        serde_json::from_str(env.run(&ex).stdout.lines().last().unwrap()).unwrap();
    expect(
        &e,
        "certificate",
        &["path", "signature", "journal", "status", "totals"],
    );
    let c = record(&signed(&["cosign", "certificate.json"], AS_CUSTODIAN));
    expect(
        &c[0],
        "cosignature",
        &["certificate", "signature", "principal", "key_fingerprint"],
    );
    let v = record(&[
        "verify",
        "certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
    ]);
    let (checks, verdict) = v.split_at(v.len() - 1);
    assert!(!checks.is_empty());
    for c in checks {
        assert_eq!(c["type"], "check", "{c}");
    }
    expect(&verdict[0], "verdict", &["ok", "certificate", "ssh_keygen"]);
    let sc = record(&["show", "certificate.json"]);
    expect(&sc[0], "certificate", &["id", "status", "totals", "model"]);
    env.file("x.bin", b"x");
    let h = record(&["hash", "x.bin"]);
    expect(&h[0], "hash", &["path", "sha256"]);
    let k = record(&[
        "keygen",
        "--out",
        "keys/third",
        "--comment",
        "third@example.org",
        "--no-passphrase",
    ]);
    expect(
        &k[0],
        "key",
        &["private", "public", "fingerprint", "encrypted"],
    );
}
