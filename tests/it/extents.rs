//! Shared extents on real copy-on-write filesystems: btrfs and xfs images
//! made by their own mkfs, loop-mounted. A reflinked copy shares the
//! planned file's blocks; overwriting the file cannot reach them, so the
//! plan and the certificate must say so (as `filefrag -v` shows it).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A filesystem image loop-mounted for one test; unmounted on drop.
struct Mounted {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Mounted {
    fn new(fs: &str, size_mib: u64) -> Mounted {
        let mkfs = format!("mkfs.{fs}");
        let have = Command::new("sh")
            .args(["-c", &format!("command -v {mkfs}")])
            .output()
            .unwrap();
        assert!(
            have.status.success(),
            "{mkfs} is missing: scripts/test.sh installs btrfs-progs and xfsprogs"
        );
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("fs.img");
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(size_mib << 20)
            .unwrap();
        let run = |c: &mut Command| {
            let o = c.output().unwrap();
            assert!(
                o.status.success(),
                "{c:?}: {} (these tests need root and loop devices)",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(Command::new(&mkfs).arg("-q").arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&dir));
        Mounted { _tmp: tmp, dir }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn filefrag_says_shared(p: &Path) -> bool {
    let o = Command::new("filefrag").arg("-v").arg(p).output().unwrap();
    assert!(o.status.success(), "filefrag -v {}", p.display());
    String::from_utf8_lossy(&o.stdout).contains("shared")
}

fn reflinked_copy_is_a_residual_risk(fs: &str, size_mib: u64) {
    let m = Mounted::new(fs, size_mib);
    let env = Env::new();
    let models = m.dir.join("models/m");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::create_dir_all(m.dir.join("backup")).unwrap();
    let weights = models.join("weights.bin");
    let original = random_bytes(300_000);
    std::fs::write(&weights, &original).unwrap();
    std::fs::write(models.join("plain.bin"), random_bytes(300_000)).unwrap();
    let copy = m.dir.join("backup/weights.bin");
    let cp = Command::new("cp")
        .arg("--reflink=always")
        .arg(&weights)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success(), "{fs} makes reflinks");
    assert!(
        filefrag_says_shared(&weights),
        "{fs}: filefrag sees the sharing"
    );
    assert!(!filefrag_says_shared(&models.join("plain.bin")));

    env.manifest(
        "nist-clear",
        &format!("[[locations]]\nuri = \"{}\"\n", models.display()),
    );
    env.trace().ok();
    let risks = env.risks("shared-extents");
    assert_eq!(risks.len(), 1, "{fs}: {risks:?}");
    assert_eq!(risks[0].0, weights.to_str().unwrap());
    assert!(
        risks[0]
            .1
            .starts_with(&format!("{0} of its {0} share their blocks", "293.0 KiB")),
        "{fs}: the whole file is shared: {risks:?}"
    );
    let plan = env.plan_json();
    assert!(
        plan["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "file")
            .all(|a| a["sanitization"]["category"] == "logical"),
        "{fs}: copy-on-write storage is logical sanitization"
    );
    env.approve().ok();
    env.execute().ok();
    assert!(!weights.exists());
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        original,
        "{fs}: the reflinked copy still holds the bytes, as the risk says"
    );
    assert!(
        env.cert_json()["residual_risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "shared-extents"),
        "{fs}: the certificate carries it"
    );
}

#[test]
fn btrfs_reflink_is_reported_as_shared_extents() {
    reflinked_copy_is_a_residual_risk("btrfs", 128);
}

#[test]
fn xfs_reflink_is_reported_as_shared_extents() {
    reflinked_copy_is_a_residual_risk("xfs", 320);
}
