//! The command line as a newcomer meets it: keygen's advice, shell
//! completions and the man page.

use crate::common::Env;

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
