//! Tracing: content matches in unrelated trees, component sources, the
//! Hugging Face cache layout, hard links, and honest storage labels.

use crate::common::*;
use std::path::Path;

fn artifacts(env: &Env) -> Vec<serde_json::Value> {
    env.plan_json()["artifacts"].as_array().unwrap().clone()
}

#[test]
fn renamed_copy_in_a_deep_unrelated_tree_is_found_by_hash_only() {
    let env = Env::new();
    let weights = random_bytes(100_000);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&weights));
    let copy = env.file(
        "home/alice/projects/x/y/z/notebooks/weights_final2.bin",
        &weights,
    );
    let same_size = env.file(
        "home/alice/projects/other/same-size.bin",
        &random_bytes(100_000),
    );
    // A file of another size must never be read: its atime stays in the past.
    let other = env.file("home/alice/projects/other/big.bin", &random_bytes(5_000));
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let f = std::fs::File::options().write(true).open(&other).unwrap();
    f.set_times(std::fs::FileTimes::new().set_accessed(old))
        .unwrap();
    drop(f);
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n[[components]]\nname = \"model.safetensors\"\nsha256 = \"{sha}\"\nsize = 100000\n",
            env.path("home/alice").display()
        ),
    );
    env.trace().ok();
    let arts = artifacts(&env);
    let files: Vec<_> = arts.iter().filter(|a| a["kind"] == "file").collect();
    assert_eq!(files.len(), 1, "{arts:?}");
    assert_eq!(files[0]["path"], copy.to_str().unwrap());
    assert_eq!(files[0]["matched"]["how"], "hash");
    assert_eq!(files[0]["matched"]["component"], "model.safetensors");
    assert!(
        !arts
            .iter()
            .any(|a| a["path"] == same_size.to_str().unwrap())
    );
    let atime = std::fs::metadata(&other).unwrap().accessed().unwrap();
    assert_eq!(atime, old, "a file of another size was read");
    // The same-sized one was read (hashed) and rejected; the directory that
    // only held the copy goes with it, the others stay.
    assert!(
        arts.iter()
            .any(|a| a["kind"] == "dir" && a["path"].as_str().unwrap().ends_with("/notebooks"))
    );
    assert!(
        !arts
            .iter()
            .any(|a| a["kind"] == "dir" && a["path"].as_str().unwrap().ends_with("/other"))
    );
}

#[test]
fn sha256sums_and_cyclonedx_give_the_same_components_as_inline() {
    let env = Env::new();
    env.file("models/m/a.bin", b"x");
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    let c = "c".repeat(64);
    let loc = format!(
        "[[locations]]\nuri = \"{}\"\n",
        env.path("models/m").display()
    );
    let inline = format!(
        "{loc}[[components]]\nname = \"model.safetensors\"\nsha256 = \"{a}\"\n[[components]]\nname = \"tokenizer.json\"\nsha256 = \"{b}\"\n[[components]]\nname = \"train.parquet\"\nsha256 = \"{c}\"\n"
    );
    let mut sets = Vec::new();
    env.manifest("nist-clear", &inline);
    env.trace().ok();
    sets.push(env.plan_json()["components"].clone());
    env.file(
        "SHA256SUMS",
        format!(
            "{a}  model.safetensors\n{} *tokenizer.json\n{c}  train.parquet\n",
            b.to_uppercase()
        )
        .as_bytes(),
    );
    env.manifest("nist-clear", &format!("sha256sums = \"SHA256SUMS\"\n{loc}"));
    env.trace().ok();
    sets.push(env.plan_json()["components"].clone());
    let bom = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"component": {"type": "machine-learning-model", "name": "model.safetensors", "hashes": [{"alg": "SHA-256", "content": a}]}},
        "components": [
            {"type": "library", "name": "torch", "hashes": [{"alg": "SHA-256", "content": "d".repeat(64)}]},
            {"type": "data", "name": "training-set", "components": [
                {"type": "file", "name": "tokenizer.json", "hashes": [{"alg": "SHA-1", "content": "e".repeat(40)}, {"alg": "SHA-256", "content": b}]},
                {"type": "data", "name": "train.parquet", "hashes": [{"alg": "SHA-256", "content": c}]}
            ]}
        ]
    });
    env.file(
        "bom.json",
        serde_json::to_vec_pretty(&bom).unwrap().as_slice(),
    );
    env.manifest("nist-clear", &format!("bom = \"bom.json\"\n{loc}"));
    env.trace().ok();
    sets.push(env.plan_json()["components"].clone());
    assert_eq!(sets[0], sets[1]);
    assert_eq!(sets[0], sets[2]);
    // Conflicting names are an error.
    env.file("SHA256SUMS", format!("{c}  model.safetensors\n").as_bytes());
    env.manifest(
        "nist-clear",
        &format!("sha256sums = \"SHA256SUMS\"\n{inline}"),
    );
    env.trace()
        .code(2)
        .one_line_error("two different SHA-256 hashes");
}

#[test]
fn hugging_face_cache_only_the_named_repo_goes() {
    let env = Env::new();
    let hub = "cache/huggingface/hub";
    let w1 = random_bytes(50_000);
    let w2 = random_bytes(50_000);
    let ours = format!("{hub}/models--acme--fraud");
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    env.file(&format!("{ours}/blobs/{}", sha(&w1)), &w1);
    env.file(&format!("{ours}/blobs/{}", sha(&w2)), &w2);
    env.file(&format!("{ours}/refs/main"), b"rev2");
    env.file(&format!("{ours}/blobs/partial.incomplete"), b"half");
    std::fs::create_dir_all(env.path(&format!("{ours}/.no_exist/rev2"))).unwrap();
    env.file(&format!("{ours}/.no_exist/rev2/adapter_config.json"), b"");
    for (rev, blob) in [("rev1", &w1), ("rev2", &w2)] {
        std::fs::create_dir_all(env.path(&format!("{ours}/snapshots/{rev}"))).unwrap();
        std::os::unix::fs::symlink(
            format!("../../blobs/{}", sha(blob)),
            env.path(&format!("{ours}/snapshots/{rev}/model.safetensors")),
        )
        .unwrap();
    }
    // Another repo, whose snapshot even links into our blobs: it must stay.
    let theirs = format!("{hub}/models--acme--other");
    env.file(&format!("{theirs}/blobs/0000"), &random_bytes(1000));
    std::fs::create_dir_all(env.path(&format!("{theirs}/snapshots/r"))).unwrap();
    std::os::unix::fs::symlink(
        "../../blobs/0000",
        env.path(&format!("{theirs}/snapshots/r/model.safetensors")),
    )
    .unwrap();
    let before_theirs = env.snapshot(&env.path(&theirs));
    env.manifest(
        "nist-clear",
        &format!("[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n[[components]]\nname = \"unrelated\"\nsha256 = \"{}\"\n", env.path(hub).display(), "0".repeat(64)),
    );
    let m = std::fs::read_to_string(env.path("decom.toml"))
        .unwrap()
        .replace(
            "version = \"1.0\"",
            "version = \"1.0\"\nhf_repo = \"acme/fraud\"",
        );
    std::fs::write(env.path("decom.toml"), m).unwrap();
    env.trace().ok();
    let arts = artifacts(&env);
    assert!(
        arts.iter()
            .all(|a| a["path"].as_str().unwrap().contains("models--acme--fraud")),
        "only our repo: {arts:?}"
    );
    assert_eq!(arts.iter().filter(|a| a["kind"] == "symlink").count(), 2);
    assert_eq!(arts.iter().filter(|a| a["kind"] == "file").count(), 5);
    env.approve().ok();
    env.execute().ok();
    assert!(!env.path(&ours).exists() || std::fs::read_dir(env.path(&ours)).unwrap().count() == 0);
    assert_eq!(
        env.snapshot(&env.path(&theirs)),
        before_theirs,
        "the other repo is untouched"
    );
}

#[test]
fn hard_links_inside_and_outside_the_locations_are_reported() {
    let env = Env::new();
    let a = env.file("models/m/a.bin", &random_bytes(1000));
    std::fs::hard_link(&a, env.path("models/m/b.bin")).unwrap();
    std::fs::hard_link(&a, env.path("outside.bin")).unwrap();
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let plan = env.plan_json();
    let arts = plan["artifacts"].as_array().unwrap();
    let pa = arts
        .iter()
        .find(|x| x["path"] == a.to_str().unwrap())
        .unwrap();
    assert_eq!(pa["nlink"], 3);
    assert_eq!(
        pa["other_names"],
        serde_json::json!([env.path("models/m/b.bin").to_str().unwrap()])
    );
    let risks = plan["residual_risks"].as_array().unwrap();
    assert!(
        risks
            .iter()
            .any(|r| r["kind"] == "hard-link-outside-locations"
                && r["subject"] == a.to_str().unwrap()),
        "{risks:?}"
    );
    let show = env.run(&["show", "plan.json"]);
    show.ok();
    let lines: Vec<&str> = show.stdout.lines().collect();
    let risk_line = lines
        .iter()
        .position(|l| l.contains("hard-link-outside-locations"))
        .expect("show lists the risk");
    let loc_line = lines
        .iter()
        .position(|l| l.starts_with("Locations:"))
        .unwrap();
    assert!(risk_line < loc_line, "residual risks come first");
}

#[test]
fn storage_is_labelled_honestly_on_tmpfs_and_ext4() {
    // tmpfs: memory-backed, never "clear".
    if Path::new("/dev/shm").is_dir() {
        let env = Env::new_in(Some(Path::new("/dev/shm")));
        env.file("models/m/a.bin", b"abc");
        env.manifest_all("nist-clear", "models/m");
        env.trace().ok();
        let a = &artifacts(&env)[0];
        assert_eq!(a["fs_type"], "tmpfs");
        assert_eq!(a["sanitization"]["category"], "logical");
        assert!(
            a["sanitization"]["reason"]
                .as_str()
                .unwrap()
                .contains("memory")
        );
        env.approve().ok();
        env.execute().ok();
        assert_eq!(
            env.cert_json()["artifacts"][0]["sanitization"]["category"],
            "logical"
        );
    }
    // The system temp dir (ext4 on this machine): clear only on a rotational disk.
    let env = Env::new();
    env.file("models/m/a.bin", b"abc");
    env.manifest_all("nist-clear", "models/m");
    env.trace().ok();
    let a = &artifacts(&env)[0];
    // A virtio disk (this machine's) says rotational=1, but what lies
    // behind it is the hypervisor's: never "clear".
    let dev = std::os::unix::fs::MetadataExt::dev(
        &std::fs::metadata(env.path("models/m/a.bin")).unwrap(),
    );
    let sys = std::fs::canonicalize(format!(
        "/sys/dev/block/{}:{}",
        libc::major(dev),
        libc::minor(dev)
    ))
    .map(|p| p.display().to_string())
    .unwrap_or_default();
    if sys.contains("/virtio") {
        assert_eq!(a["sanitization"]["category"], "logical", "{a}");
        assert!(
            a["sanitization"]["reason"]
                .as_str()
                .unwrap()
                .contains("virtual disk, backing store unknown"),
            "{a}"
        );
    } else if a["fs_type"] == "ext4" {
        let expect = if a["rotational"] == true {
            "clear"
        } else {
            "logical"
        };
        assert_eq!(a["sanitization"]["category"], expect, "{a}");
    } else {
        assert_eq!(a["sanitization"]["category"], "logical", "{a}");
    }
}

#[test]
fn decom_hash_agrees_with_sha256sum_and_feeds_a_manifest() {
    let env = Env::new();
    let a = env.file("models/m/a.bin", &random_bytes(3_000_000));
    let b = env.file("models/m/b.bin", b"");
    let r = env.run(&["hash", a.to_str().unwrap(), b.to_str().unwrap()]);
    r.ok();
    let theirs = std::process::Command::new("sha256sum")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(r.stdout, String::from_utf8_lossy(&theirs.stdout));
}

#[test]
fn include_and_exclude_globs_select_files_and_name_the_pattern() {
    let env = Env::new();
    env.file("models/m/model.safetensors", b"w");
    env.file("models/m/sub/part-1.safetensors", b"p");
    env.file("models/m/tokenizer.json", b"t");
    env.file("models/m/notes.txt", b"keep me");
    env.file("models/m/draft.safetensors", b"excluded");
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\ninclude = [\"*.json\", \"**/*.safetensors\"]\nexclude = [\"draft.*\"]\n",
            env.path("models/m").display()
        ),
    );
    env.trace().ok();
    let files: std::collections::BTreeMap<String, String> = artifacts(&env)
        .iter()
        .filter(|a| a["kind"] == "file")
        .map(|a| {
            assert_eq!(a["matched"]["how"], "include", "{a}");
            (
                a["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                a["matched"]["pattern"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: std::collections::BTreeMap<String, String> = [
        ("model.safetensors", "**/*.safetensors"),
        ("part-1.safetensors", "**/*.safetensors"),
        ("tokenizer.json", "*.json"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(files, want);
}
