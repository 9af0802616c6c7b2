//! Signatures: interop with the real ssh-keygen both ways, roles, the
//! two-person rule, passphrase keys and ssh-agent keys.

use crate::common::*;
use std::process::Command;

fn ssh_keygen(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new("ssh-keygen")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    c.wait_with_output().unwrap()
}

fn approved_plan(env: &Env) {
    env.file("models/m/a.bin", &random_bytes(5000));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    env.approve().ok();
}

#[test]
fn decom_signatures_pass_ssh_keygen_verify() {
    let env = Env::new();
    approved_plan(&env);
    let plan = std::fs::read(env.plan()).unwrap();
    let sig = format!("{}.custodian.sig", env.plan().display());
    let signers = env.signers();
    let out = ssh_keygen(
        &[
            "-Y",
            "verify",
            "-f",
            signers.to_str().unwrap(),
            "-I",
            CUSTODIAN,
            "-n",
            "decom-custodian",
            "-s",
            &sig,
        ],
        &plan,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The wrong namespace fails in ssh-keygen too.
    let out = ssh_keygen(
        &[
            "-Y",
            "verify",
            "-f",
            signers.to_str().unwrap(),
            "-I",
            CUSTODIAN,
            "-n",
            "decom-operator",
            "-s",
            &sig,
        ],
        &plan,
    );
    assert!(!out.status.success());
}

#[test]
fn ssh_keygen_signatures_pass_decom_verify() {
    let env = Env::new();
    env.file("models/m/a.bin", &random_bytes(5000));
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    // The custodian approves with stock ssh-keygen instead of decom.
    let plan = std::fs::read(env.plan()).unwrap();
    let out = ssh_keygen(
        &[
            "-Y",
            "sign",
            "-f",
            env.key("custodian").to_str().unwrap(),
            "-n",
            "decom-custodian",
        ],
        &plan,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        format!("{}.custodian.sig", env.plan().display()),
        &out.stdout,
    )
    .unwrap();
    env.execute().ok();
    // And co-signs the certificate with ssh-keygen too.
    let cert = std::fs::read(env.cert()).unwrap();
    let out = ssh_keygen(
        &[
            "-Y",
            "sign",
            "-f",
            env.key("custodian").to_str().unwrap(),
            "-n",
            "decom-custodian",
        ],
        &cert,
    );
    std::fs::write(
        format!("{}.custodian.sig", env.cert().display()),
        &out.stdout,
    )
    .unwrap();
    env.verify().ok();
}

#[test]
fn every_byte_flip_of_file_or_signature_fails_verification() {
    use decom::sign::{self, AllowedSigners, Role, SigningKey};
    let env = Env::new();
    let key = SigningKey::load(&env.key("custodian"), &|_| Ok(None)).unwrap();
    let signers = AllowedSigners::load(&env.signers()).unwrap();
    let msg = b"{\"schema\": \"decom.plan/1\", \"small\": true}\n".to_vec();
    let sig = key.sign(sign::CUSTODIAN, &msg).unwrap().into_bytes();
    let now = sign::now_unix();
    assert!(sign::verify_bytes(&msg, &sig, &signers, Role::Custodian, None, now).is_ok());
    for i in 0..msg.len() {
        for bit in [0x01u8, 0x80] {
            let mut m = msg.clone();
            m[i] ^= bit;
            assert!(
                sign::verify_bytes(&m, &sig, &signers, Role::Custodian, None, now).is_err(),
                "flip {bit:#x} at file byte {i} verified"
            );
        }
    }
    // Every position of the armored signature: a flip must never verify.
    for i in 0..sig.len() {
        let mut s = sig.clone();
        s[i] ^= 0x01;
        assert!(
            sign::verify_bytes(&msg, &s, &signers, Role::Custodian, None, now).is_err(),
            "flip at signature byte {i} ({:?}) verified",
            sig[i] as char
        );
    }
}

#[test]
fn wrong_namespace_principal_key_window_and_same_person_each_rejected_clearly() {
    let env = Env::new();
    approved_plan(&env);
    let cu = env.public("custodian");
    let op = env.public("operator");
    // Key not in the signers file.
    env.write_signers(&format!("{OPERATOR} namespaces=\"decom-operator\" {op}\n"));
    env.execute()
        .code(2)
        .one_line_error("is not in the trusted signers file");
    // Custodian's key allowed only as operator: wrong role / namespace.
    env.write_signers(&format!("{CUSTODIAN} namespaces=\"decom-operator\" {cu}\n{OPERATOR} namespaces=\"decom-operator\" {op}\n"));
    env.execute()
        .code(2)
        .one_line_error("may not sign namespace \"decom-custodian\"");
    // Wrong principal for the operator key.
    env.write_signers(&format!("{CUSTODIAN} namespaces=\"decom-custodian\" {cu}\nsomeone-else namespaces=\"decom-operator\" {op}\n"));
    env.execute()
        .code(2)
        .one_line_error("is not allowed for principal");
    // Custodian key outside its validity window.
    env.write_signers(&format!("{CUSTODIAN} namespaces=\"decom-custodian\",valid-before=\"20200101\" {cu}\n{OPERATOR} namespaces=\"decom-operator\" {op}\n"));
    env.execute()
        .code(2)
        .one_line_error("outside its validity window");
    env.write_signers(&format!("{CUSTODIAN} namespaces=\"decom-custodian\",valid-after=\"29990101Z\" {cu}\n{OPERATOR} namespaces=\"decom-operator\" {op}\n"));
    env.execute()
        .code(2)
        .one_line_error("outside its validity window");
    // Operator == custodian (one key allowed both roles).
    env.write_signers(&format!(
        "{CUSTODIAN} namespaces=\"decom-custodian,decom-operator\" {cu}\n"
    ));
    let r = env.run(&signed(&["execute", "plan.json"], AS_CUSTODIAN));
    r.code(2).one_line_error("two-person rule");
    // Same person, different principal on the same key.
    env.write_signers(&format!("{CUSTODIAN} namespaces=\"decom-custodian\" {cu}\nalias namespaces=\"decom-operator\" {cu}\n"));
    let r = env.run(&[
        "execute",
        "plan.json",
        "--key",
        "keys/custodian",
        "--principal",
        "alias",
        "--allowed-signers",
        "keys/allowed_signers",
        "--yes",
    ]);
    r.code(2).one_line_error("two-person rule");
    assert!(
        env.path("models/m/a.bin").exists(),
        "nothing touched by any refused run"
    );
    assert!(!env.path("journal.jsonl").exists());
}

#[test]
fn verify_fails_on_a_tampered_or_uncosigned_certificate() {
    let env = Env::new();
    approved_plan(&env);
    env.execute().ok();
    env.verify().code(1); // not co-signed yet
    env.cosign().ok();
    env.verify().ok();
    let mut c = std::fs::read_to_string(env.cert()).unwrap();
    c = c.replacen("\"disposed\"", "\"disposed\" ", 1);
    std::fs::write(env.cert(), c).unwrap();
    let r = env.verify();
    r.code(1);
    assert!(r.stdout.contains("FAIL operator signature"), "{}", r.stdout);
}

#[test]
fn custodian_cannot_cosign_as_the_operator() {
    let env = Env::new();
    approved_plan(&env);
    env.execute().ok();
    let op = env.public("operator");
    let cu = env.public("custodian");
    env.write_signers(&format!("{CUSTODIAN} namespaces=\"decom-custodian\" {cu}\n{OPERATOR} namespaces=\"decom-operator,decom-custodian\" {op}\n"));
    let r = env.run(&signed(&["cosign", "certificate.json"], AS_OPERATOR));
    r.code(2).one_line_error("two-person rule");
}

#[test]
fn passphrase_protected_key_works_from_the_environment() {
    let env = Env::new();
    let key = env.key("locked");
    env.command()
        .args(["keygen", "--out"])
        .arg(&key)
        .env("DECOM_KEY_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains("BEGIN OPENSSH PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // ssh-keygen agrees it is encrypted: it cannot read it with an empty passphrase.
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", "correct horse", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    env.write_signers(&format!(
        "{CUSTODIAN} namespaces=\"decom-custodian\" {}\n",
        env.public("locked")
    ));
    env.file("models/m/a.bin", b"x");
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let approve = |pass: Option<&str>| {
        let mut c = env.command();
        c.args([
            "approve",
            "plan.json",
            "--key",
            "keys/locked",
            "--principal",
            CUSTODIAN,
            "--yes",
        ]);
        if let Some(p) = pass {
            c.env("DECOM_KEY_PASSPHRASE", p);
        }
        let o = c.output().unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = approve(None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("passphrase-protected"), "{err}");
    let (code, err) = approve(Some("wrong"));
    assert_eq!(code, 2);
    assert!(err.contains("wrong passphrase"), "{err}");
    let (code, err) = approve(Some("correct horse"));
    assert_eq!(code, 0, "{err}");
    // Refuses to overwrite an existing key, and needs a passphrase without a terminal.
    let r = env
        .command()
        .args(["keygen", "--out"])
        .arg(&key)
        .env("DECOM_KEY_PASSPHRASE", "x")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let r = env.run(&["keygen", "--out", "keys/other"]);
    r.code(2).one_line_error("--no-passphrase");
}

#[test]
fn key_held_by_a_real_ssh_agent_signs() {
    let env = Env::new();
    let sock = env.path("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let add = Command::new("ssh-add")
        .arg(env.key("custodian"))
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    env.file("models/m/a.bin", b"x");
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    // Only the public key is given; the agent holds the private half.
    let o = env
        .command()
        .args([
            "approve",
            "plan.json",
            "--key",
            "keys/custodian.pub",
            "--principal",
            CUSTODIAN,
            "--yes",
        ])
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.execute().ok();
    // Without an agent, a .pub key is a clear error.
    env.run(&[
        "approve",
        "plan.json",
        "--key",
        "keys/custodian.pub",
        "--principal",
        CUSTODIAN,
        "--yes",
    ])
    .code(2)
    .one_line_error("SSH_AUTH_SOCK");
}

#[test]
fn allowed_signers_parser_agrees_with_ssh_keygen() {
    // Lines ssh-keygen accepts for the custodian namespace, and lines it rejects.
    let env = Env::new();
    approved_plan(&env);
    let cu = env.public("custodian");
    let plan = std::fs::read(env.plan()).unwrap();
    let sig = format!("{}.custodian.sig", env.plan().display());
    for (line, principal, ok) in [
        (format!("{CUSTODIAN} {cu}"), CUSTODIAN, true),
        (
            format!("a@x,{CUSTODIAN} namespaces=\"decom-*\" {cu} comment here"),
            CUSTODIAN,
            true,
        ),
        (
            format!("\"*@example.org\" namespaces=\"decom-custodian\" {cu}"),
            CUSTODIAN,
            true,
        ),
        (
            format!("{CUSTODIAN} namespaces=\"decom-operator\" {cu}"),
            CUSTODIAN,
            false,
        ),
        (format!("*@example.org,!{CUSTODIAN} {cu}"), CUSTODIAN, false),
        (
            format!("{CUSTODIAN} valid-before=\"20000101\" {cu}"),
            CUSTODIAN,
            false,
        ),
        (format!("other {cu}"), CUSTODIAN, false),
    ] {
        env.write_signers(&format!("# signers\n{line}\n"));
        let out = ssh_keygen(
            &[
                "-Y",
                "verify",
                "-f",
                env.signers().to_str().unwrap(),
                "-I",
                principal,
                "-n",
                "decom-custodian",
                "-s",
                &sig,
            ],
            &plan,
        );
        assert_eq!(out.status.success(), ok, "ssh-keygen on {line}");
        let signers = decom::sign::AllowedSigners::load(&env.signers()).unwrap();
        let r = decom::sign::verify_file(
            &env.plan(),
            &plan,
            &signers,
            decom::sign::Role::Custodian,
            Some(principal),
            decom::sign::now_unix(),
        );
        assert_eq!(r.is_ok(), ok, "decom on {line}: {r:?}");
    }
}
