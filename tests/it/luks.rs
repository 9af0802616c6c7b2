//! Cryptographic erase of a whole LUKS2 volume (`luks:///dev/…`), on real
//! loop devices formatted by the real `cryptsetup` (this machine has no
//! device-mapper, so volumes are never opened: the passphrase is tried with
//! `cryptsetup open --test-passphrase`, which needs none).

use crate::common::Env;
use std::path::PathBuf;
use std::process::Command;

/// A LUKS2 volume on a loop device over a file in the test's tree.
pub struct Volume {
    pub device: String,
    pub key: PathBuf,
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Volume {
    pub fn new(env: &Env, luks: bool) -> Volume {
        let img = env.path(&format!(
            "vol-{}.img",
            hex::encode(crate::common::random_bytes(3))
        ));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        // losetup -f can race with another test taking the same device.
        let mut device = String::new();
        for _ in 0..20 {
            let out = Command::new("losetup")
                .args(["-f", "--show"])
                .arg(&img)
                .output()
                .unwrap();
            if out.status.success() {
                device = String::from_utf8(out.stdout).unwrap().trim().to_string();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(!device.is_empty(), "no free loop device");
        let key = env.file(
            &format!("{}.key", img.display()),
            b"correct horse battery staple",
        );
        let v = Volume { device, key };
        if luks {
            v.format();
        }
        v
    }

    /// A new LUKS2 volume on the device (fast key derivation for tests).
    pub fn format(&self) {
        let key = self.key.to_str().unwrap();
        run(
            "cryptsetup",
            &[
                "luksFormat",
                "--batch-mode",
                "--type",
                "luks2",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
                key,
                &self.device,
            ],
        );
    }

    pub fn keyslots(&self) -> Vec<String> {
        let out = run(
            "cryptsetup",
            &["luksDump", "--dump-json-metadata", &self.device],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["keyslots"].as_object().unwrap().keys().cloned().collect()
    }

    /// Whether the passphrase still opens the volume.
    pub fn opens(&self) -> bool {
        Command::new("cryptsetup")
            .args(["open", "--test-passphrase", "--key-file"])
            .arg(&self.key)
            .arg(&self.device)
            .output()
            .unwrap()
            .status
            .success()
    }

    pub fn manifest(&self, env: &Env) {
        env.manifest(
            "nist-clear",
            &format!("[[locations]]\nuri = \"luks://{}\"\n", self.device),
        );
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).output();
    }
}

#[test]
fn a_luks_volume_is_erased_whole_and_its_passphrase_no_longer_opens_it() {
    let env = Env::new();
    let v = Volume::new(&env, true);
    assert!(v.opens());
    v.manifest(&env);
    env.trace().ok();
    let plan = env.plan_json();
    let a = &plan["artifacts"][0];
    assert_eq!(a["kind"], "luks-volume", "{plan}");
    assert_eq!(a["keyslots"], serde_json::json!(["0"]));
    assert_eq!(a["size"], 32 << 20);
    assert_eq!(env.risks("luks-header-backup").len(), 1);
    env.approve().ok();
    env.execute().ok();
    assert!(v.keyslots().is_empty());
    assert!(!v.opens(), "the passphrase still opens the erased volume");
    let c = env.cert_json();
    assert_eq!(c["status"], "complete");
    assert_eq!(
        c["nist_sp_800_88"]["method_type"],
        "Purge (cryptographic erase)"
    );
    assert_eq!(
        c["artifacts"][0]["sanitization"]["category"],
        "crypto-erase"
    );
    env.cosign().ok();
    env.verify().ok();
    env.recheck().ok();
}

#[test]
fn a_volume_in_use_or_swapped_after_approval_is_refused_and_untouched() {
    let env = Env::new();
    let v = Volume::new(&env, true);
    v.manifest(&env);
    env.trace().ok();
    env.approve().ok();
    // Another program holds the device exclusively (as a mount or an open
    // mapping would).
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import os,sys,time; fd=os.open(sys.argv[1], os.O_RDONLY|os.O_EXCL); print('held', flush=True); time.sleep(60)",
            &v.device,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    env.execute().code(2).one_line_error("is in use");
    holder.kill().unwrap();
    let _ = holder.wait();
    assert_eq!(v.keyslots(), vec!["0".to_string()]);
    assert!(v.opens());
    assert!(!env.path("journal.jsonl").exists());

    // Another LUKS volume formatted on the device since approval.
    v.format();
    env.execute().code(2).one_line_error("not the approved");
    assert!(v.opens());
}

#[test]
fn bad_luks_locations_are_input_errors() {
    let env = Env::new();
    let plain = Volume::new(&env, false);
    let link = env.path("disk-link");
    std::os::unix::fs::symlink(&plain.device, &link).unwrap();
    let cases = [
        ("luks:///dev/null".to_string(), "is not a block device"),
        (
            "luks://dev/loop0".to_string(),
            "luks:// URIs name a block device",
        ),
        (format!("luks://{}", plain.device), "holds no LUKS volume"),
        (
            format!("luks://{}", link.display()),
            "luks:// URIs name a block device",
        ),
    ];
    for (uri, want) in cases {
        env.manifest("nist-clear", &format!("[[locations]]\nuri = \"{uri}\"\n"));
        env.trace().code(2).one_line_error(want);
        assert!(!env.path("plan.json").exists(), "{uri}");
    }
    // A mounted device: the kernel says it is in use.
    let mounted = Volume::new(&env, false);
    run("mkfs.ext4", &["-q", &mounted.device]);
    let at = env.path("mnt");
    std::fs::create_dir_all(&at).unwrap();
    run("mount", &[&mounted.device, at.to_str().unwrap()]);
    env.manifest(
        "nist-clear",
        &format!("[[locations]]\nuri = \"luks://{}\"\n", mounted.device),
    );
    let r = env.trace();
    run("umount", &[at.to_str().unwrap()]);
    r.code(2).one_line_error("is in use (mounted");
}
