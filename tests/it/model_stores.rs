//! Model stores as their tools write them today (issue: huggingface_hub's
//! shared Xet blob store, Ollama stores of every age). The Hugging Face
//! caches are built by huggingface_hub 2.4.0's own code (`hf_hub_download`
//! from a loopback fake Hub, then `publish_blob_to_shared_store`, the
//! function its download calls after a Xet download, with synthetic Xet
//! hashes) and judged by its `scan_cache_dir` and by its own deletion on a
//! copy. The Ollama stores follow Ollama's source (v0.32.15): manifests as
//! `manifest/manifest.go` writes them, blobs at `manifest/paths.go`
//! `BlobsPath` (`sha256-<hex>`, and a digest spelled either way), the
//! `sha256:<hex>` blob names of Ollama before 0.1.30 that
//! `server/fixblobs.go` renames at start-up, names matched per part without
//! case (`server/routes.go` `getExistingName`), and `ollama cp` as a byte
//! copy of a manifest (`server/images.go` `CopyModel`).

use crate::common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const HUB: &str = "cache/huggingface/hub";
const FRAUD_MAIN: &str = "1111111111111111111111111111111111111111";
const KEEPER_MAIN: &str = "3333333333333333333333333333333333333333";

fn xet(c: char) -> String {
    c.to_string().repeat(64)
}

fn sha(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

/// The text of the tokenizer both repositories share (an LFS-sized file, so
/// the Hub serves it by SHA-256 and it is Xet-backed).
fn shared_tokenizer() -> String {
    format!("{{\"tokenizer\": \"{}\"}}", "shared ".repeat(3000))
}

/// A cache where huggingface_hub 2.4 keeps Xet-backed files once: acme/fraud
/// (weights in two revisions, each its own payload; a tokenizer shared with
/// acme/keeper; a small git file kept in its own folder) and acme/keeper.
fn shared_cache(env: &Env) -> PathBuf {
    let spec = json!({
        "cache": env.path(HUB),
        "repos": [
            {"id": "acme/fraud", "revisions": [
                {"ref": "main", "commit": FRAUD_MAIN,
                 "files": {"model.safetensors": {"size": 60000, "seed": 1, "xet": xet('a')},
                           "tokenizer.json": {"text": shared_tokenizer(), "xet": xet('c')},
                           "config.json": {"text": "{\"fraud\": 1}"}}},
                {"ref": "v1", "commit": "2222222222222222222222222222222222222222",
                 "files": {"model.safetensors": {"size": 60000, "seed": 2, "xet": xet('b')}}}
            ]},
            {"id": "acme/keeper", "revisions": [
                {"ref": "main", "commit": KEEPER_MAIN,
                 "files": {"model.safetensors": {"size": 50000, "seed": 3, "xet": xet('d')},
                           "tokenizer.json": {"text": shared_tokenizer(), "xet": xet('c')}}}
            ]}
        ]
    });
    let spec_path = env.file("hf-spec.json", spec.to_string().as_bytes());
    python_tool(&["hf_cache.py", "build", spec_path.to_str().unwrap()]);
    let store = env.path(&format!("{HUB}/blobs"));
    assert!(
        store.join(".huggingface-shared-blobs").is_file(),
        "huggingface_hub made its shared store"
    );
    let link = env.path(&format!(
        "{HUB}/models--acme--keeper/blobs/{}",
        sha(shared_tokenizer().as_bytes())
    ));
    assert!(
        link.symlink_metadata().unwrap().file_type().is_symlink(),
        "repository blobs are links into the store"
    );
    store
}

fn payload(store: &Path, c: char) -> PathBuf {
    store.join(format!("{c}{c}")).join(xet(c))
}

fn scan(hub: &Path) -> Value {
    serde_json::from_str(&python_tool(&[
        "hf_cache.py",
        "scan",
        hub.to_str().unwrap(),
    ]))
    .unwrap()
}

/// Every file under `dir` that is not a lock file, by relative path, with
/// its content hash (links by their target).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
        if e.file_type().is_dir() || rel.ends_with(".lock") || rel.starts_with(".locks") {
            continue;
        }
        let v = if e.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
        } else if rel.ends_with(".refs") {
            // huggingface_hub rewrites a kept payload's .refs; decom
            // reports the retired repository's line instead (checked apart).
            "refs".to_string()
        } else {
            sha256_file(e.path())
        };
        out.insert(rel, v);
    }
    out
}

/// What huggingface_hub's own deletion of acme/fraud leaves, on a copy.
fn hf_deletion_of_fraud(env: &Env) -> BTreeMap<String, String> {
    let copy = env.path("hf-copy");
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            env.path(HUB).to_str().unwrap(),
            copy.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    python_tool(&[
        "hf_cache.py",
        "delete",
        copy.to_str().unwrap(),
        "acme/fraud",
    ]);
    let kept = tree(&copy);
    assert!(
        !kept.keys().any(|k| k.starts_with("models--acme--fraud/")),
        "huggingface_hub removed the repository: {kept:?}"
    );
    kept
}

fn manifest_hub(env: &Env, how: &str) {
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\n{how}[[components]]\nname = \"tokenizer.json\"\nsha256 = \"{}\"\n",
            env.path(HUB).display(),
            sha(shared_tokenizer().as_bytes())
        ),
    );
    env.model_keys("hf_repo = \"acme/fraud\"");
}

/// Retire acme/fraud from a shared-store cache and hold the result against
/// huggingface_hub's own deletion: the payloads only acme/fraud used go, the
/// tokenizer payload acme/keeper links to stays (reported), and
/// `scan_cache_dir` finds acme/keeper whole.
fn retire_fraud_from_shared_store(how: &str) {
    let env = Env::new();
    let store = shared_cache(&env);
    let hub = env.path(HUB);
    let expected = hf_deletion_of_fraud(&env);
    manifest_hub(&env, how);
    env.trace().ok();
    let paths = env.planned_paths();
    for own in ['a', 'b'] {
        let p = payload(&store, own);
        assert!(
            paths.contains(&p.display().to_string()),
            "the payload only acme/fraud uses is planned ({how}): {paths:?}"
        );
        assert!(paths.contains(&format!("{}.refs", p.display())));
    }
    for other in ['c', 'd'] {
        assert!(
            !paths.iter().any(|p| p.contains(&xet(other))),
            "no location plans a payload another repository uses ({how}): {paths:?}"
        );
    }
    assert!(
        paths
            .iter()
            .all(|p| p.contains("models--acme--fraud")
                || p.starts_with(&store.display().to_string())),
        "{paths:?}"
    );
    let shared = env.risks("shared-content");
    assert!(
        shared
            .iter()
            .any(|(s, d)| *s == payload(&store, 'c').display().to_string()
                && d.contains("needed by models--acme--keeper")),
        "the shared tokenizer payload is kept and said to be: {shared:?}"
    );
    let refs = env.risks("store-reference-kept");
    assert!(
        refs.iter()
            .any(|(s, d)| s.ends_with(&format!("{}.refs", xet('c')))
                && d.contains("models--acme--fraud")),
        "the kept payload's manifest still names the retired repository, and the plan says so: {refs:?}"
    );
    env.approve().ok();
    env.execute().ok();
    let after = scan(&hub);
    assert_eq!(after["warnings"], json!([]), "{after}");
    let repos = after["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 1, "{after}");
    assert_eq!(repos[0]["id"], "acme/keeper");
    assert_eq!(repos[0]["files"], 2);
    assert_eq!(
        tree(&hub),
        expected,
        "decom keeps exactly the files huggingface_hub's own deletion keeps"
    );
}

#[test]
fn hf_shared_store_hash_location_keeps_the_payload_another_repo_links_to() {
    retire_fraud_from_shared_store("match = \"hash\"\n");
}

#[test]
fn hf_shared_store_match_all_plans_only_the_retired_repos_payloads() {
    retire_fraud_from_shared_store("");
}

#[test]
fn hf_shared_store_payload_with_unreadable_refs_is_kept_and_reported() {
    let env = Env::new();
    let store = shared_cache(&env);
    let a = payload(&store, 'a');
    std::fs::remove_file(format!("{}.refs", a.display())).unwrap();
    manifest_hub(&env, "match = \"hash\"\n");
    env.trace().ok();
    assert!(
        !env.planned_paths().contains(&a.display().to_string()),
        "a payload whose references cannot be validated is never planned"
    );
    let risks = env.risks("unvalidated-reference");
    assert!(
        risks
            .iter()
            .any(|(s, d)| *s == a.display().to_string() && d.contains(".refs")),
        "{risks:?}"
    );
}

/// A location that is itself a repository folder is that repository's own:
/// it was once kept from itself ("needed by models--acme--fraud").
#[test]
fn a_location_that_is_a_repo_folder_disposes_of_that_repo() {
    let env = Env::new();
    shared_cache(&env);
    let repo = env.path(&format!("{HUB}/models--acme--fraud"));
    env.manifest(
        "nist-clear",
        &format!("[[locations]]\nuri = \"{}\"\n", repo.display()),
    );
    env.trace().ok();
    let paths = env.planned_paths();
    assert!(paths.iter().any(|p| p.ends_with("refs/main")), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.contains("/blobs/")),
        "its blob links: {paths:?}"
    );
    let outside = env.risks("store-outside-location");
    assert!(
        outside.iter().any(|(_, d)| d.contains(&xet('a'))),
        "the payload outside the location is named: {outside:?}"
    );
    let plan = env.plan_json();
    let self_kept: Vec<&Value> = plan["residual_risks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["detail"]
                .as_str()
                .unwrap()
                .contains("needed by models--acme--fraud")
        })
        .collect();
    assert!(self_kept.is_empty(), "{self_kept:?}");
}

#[test]
fn an_hf_repo_not_in_the_cache_is_an_input_error_with_the_closest_name() {
    let env = Env::new();
    shared_cache(&env);
    manifest_hub(&env, "match = \"hash\"\n");
    let m = std::fs::read_to_string(env.path("decom.toml"))
        .unwrap()
        .replace("acme/fraud", "acme/fruad");
    std::fs::write(env.path("decom.toml"), m).unwrap();
    env.trace()
        .code(2)
        .one_line_error("did you mean acme/fraud");
    assert!(!env.plan().exists(), "no plan written");
}

#[test]
fn hf_match_all_keeps_other_repos_locks_and_the_cache_tag_without_calling_them_identical() {
    let env = Env::new();
    shared_cache(&env);
    let tag = env.file(
        &format!("{HUB}/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    manifest_hub(&env, "");
    env.trace().ok();
    let paths = env.planned_paths();
    assert!(
        !paths
            .iter()
            .any(|p| p.contains(".locks/models--acme--keeper")),
        "{paths:?}"
    );
    assert!(!paths.contains(&tag.display().to_string()));
    let plan = env.plan_json();
    for r in plan["residual_risks"].as_array().unwrap() {
        let d = r["detail"].as_str().unwrap();
        assert!(
            !(d.starts_with("identical bytes kept")
                && r["subject"].as_str().unwrap().contains("keeper")),
            "another repository's own files are not 'identical bytes': {r}"
        );
    }
    assert!(
        env.risks("other-model")
            .iter()
            .any(|(s, _)| s.contains("models--acme--keeper")),
        "{:?}",
        plan["residual_risks"]
    );
}

// ---- Ollama ----

/// One blob, written under `name(hex)`; its manifest entry spells the digest
/// with `sep`.
fn ollama_blob(
    env: &Env,
    root: &str,
    bytes: &[u8],
    media: &str,
    name: &str,
    sep: char,
) -> (Value, PathBuf) {
    let h = sha(bytes);
    let file = env.file(&format!("{root}/blobs/sha256{name}{h}"), bytes);
    (
        json!({"mediaType": format!("application/vnd.ollama.image.{media}"),
               "digest": format!("sha256{sep}{h}"), "size": bytes.len()}),
        file,
    )
}

struct Ollama {
    root: String,
    base: PathBuf,
    v1_weights: PathBuf,
    v1_config: PathBuf,
}

/// A store copied from an Ollama before 0.1.30: blobs named `sha256:<hex>`.
/// fraud:v1 and fraud:v2 share a base layer with a fine-tune (`from`),
/// fraud-ft:latest; v1's own weights and config are its alone; v2's manifest
/// spells its digests `sha256-<hex>`.
fn legacy_ollama(env: &Env) -> Ollama {
    let root = "ollama/models".to_string();
    let (base, base_path) = ollama_blob(env, &root, &random_bytes(30_000), "model", ":", ':');
    let (tmpl, _) = ollama_blob(env, &root, b"{{ .Prompt }}", "template", ":", ':');
    let write = |name: &str, tag: &str, config: Value, layers: Vec<Value>| {
        let m = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": config,
            "layers": layers,
        });
        env.file(
            &format!("{root}/manifests/registry.ollama.ai/library/{name}/{tag}"),
            m.to_string().as_bytes(),
        );
    };
    let (c1, v1_config) = ollama_blob(
        env,
        &root,
        b"{\"model_format\":\"gguf\",\"tag\":\"v1\"}",
        "config",
        ":",
        ':',
    );
    let (w1, v1_weights) = ollama_blob(env, &root, &random_bytes(20_000), "adapter", ":", ':');
    write("fraud", "v1", c1, vec![base.clone(), w1, tmpl.clone()]);
    let (c2, _) = ollama_blob(
        env,
        &root,
        b"{\"model_format\":\"gguf\",\"tag\":\"v2\"}",
        "config",
        "-",
        '-',
    );
    let dash = |v: &Value| {
        let mut v = v.clone();
        v["digest"] = json!(v["digest"].as_str().unwrap().replace(':', "-"));
        v
    };
    write("fraud", "v2", c2, vec![dash(&base), dash(&tmpl)]);
    let (c3, _) = ollama_blob(
        env,
        &root,
        b"{\"model_format\":\"gguf\",\"tag\":\"ft\"}",
        "config",
        "-",
        ':',
    );
    let mut from = base.clone();
    from["from"] = json!("fraud:v1");
    let (w3, _) = ollama_blob(env, &root, &random_bytes(20_000), "adapter", "-", ':');
    write("fraud-ft", "latest", c3, vec![from, w3]);
    Ollama {
        root,
        base: base_path,
        v1_weights,
        v1_config,
    }
}

fn ollama_manifest(env: &Env, o: &Ollama, model: &str, how: &str) {
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\n{how}",
            env.path(&o.root).display()
        ),
    );
    env.model_keys(&format!("ollama_model = \"{model}\""));
}

#[test]
fn ollama_legacy_blob_names_base_layer_shared_by_other_tags_is_kept() {
    let env = Env::new();
    let o = legacy_ollama(&env);
    let base = sha256_file(&o.base);
    // Names differ in case from the store's, as Ollama resolves them.
    ollama_manifest(&env, &o, "Fraud:V1", "match = \"hash\"\n");
    env.trace().ok();
    let paths = env.planned_paths();
    assert!(!paths.contains(&o.base.display().to_string()), "{paths:?}");
    assert!(
        paths.contains(&o.v1_weights.display().to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&o.v1_config.display().to_string()),
        "{paths:?}"
    );
    let shared = env.risks("shared-content");
    assert!(
        shared
            .iter()
            .any(|(s, d)| *s == o.base.display().to_string()
                && d.contains("fraud:v2")
                && d.contains("fraud-ft:latest")),
        "the residual risk names the file that really stays: {shared:?}"
    );
    assert!(
        shared.iter().all(|(s, _)| Path::new(s).exists()),
        "no risk names a file that does not exist: {shared:?}"
    );
    env.approve().ok();
    env.execute().ok();
    assert_eq!(sha256_file(&o.base), base, "the base layer is intact");
    assert!(
        !o.v1_weights.exists(),
        "v1's own legacy-named layer is gone"
    );
}

#[test]
fn ollama_manifest_digests_spelled_with_a_dash_are_read() {
    let env = Env::new();
    let o = legacy_ollama(&env);
    ollama_manifest(&env, &o, "fraud:v2", "");
    env.trace().ok();
    let plan = env.plan_json();
    let unreadable = env.risks("unreadable");
    assert!(unreadable.is_empty(), "{unreadable:?}");
    let paths = env.planned_paths();
    // v2's config is its alone; the base and template are shared.
    assert!(
        paths.iter().any(|p| p.ends_with("library/fraud/v2")),
        "{paths:?}"
    );
    assert!(!paths.contains(&o.base.display().to_string()));
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("fraud-ft") || p.ends_with("library/fraud/v1")),
        "other models' manifests are never planned: {paths:?}"
    );
    assert!(
        !paths.contains(&o.v1_weights.display().to_string()),
        "{}",
        plan["residual_risks"]
    );
}

#[test]
fn an_ollama_model_not_in_the_store_is_an_input_error_with_the_closest_name() {
    let env = Env::new();
    let o = legacy_ollama(&env);
    ollama_manifest(&env, &o, "fraud:v9", "match = \"hash\"\n");
    env.trace().code(2).one_line_error("did you mean fraud:v1");
    assert!(!env.plan().exists());
}

/// `ollama cp fraud:v1 fraud:v1-copy` after approval: the copy needs v1's
/// layers, so execute keeps them and the certificate names the new tag.
#[test]
fn a_tag_created_after_approval_keeps_the_layers_it_names() {
    let env = Env::new();
    let o = legacy_ollama(&env);
    ollama_manifest(&env, &o, "fraud:v1", "match = \"hash\"\n");
    env.trace().ok();
    env.approve().ok();
    let dir = env.path(&format!(
        "{}/manifests/registry.ollama.ai/library/fraud",
        o.root
    ));
    std::fs::copy(dir.join("v1"), dir.join("v1-copy")).unwrap();
    let weights = sha256_file(&o.v1_weights);
    env.execute().code(1);
    assert_eq!(
        sha256_file(&o.v1_weights),
        weights,
        "the copy's layer is intact"
    );
    let c = env.cert_json();
    let a = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == o.v1_weights.display().to_string())
        .unwrap()
        .clone();
    assert_eq!(a["outcome"], "skipped-changed", "{a}");
    assert!(
        a["reason"].as_str().unwrap().contains("fraud:v1-copy"),
        "{a}"
    );
    assert!(!dir.join("v1").exists(), "v1's own manifest is disposed of");
}

/// A location that is a model's folder of tags in `manifests/` is that
/// model's own: its manifests are planned, and the layers only it uses,
/// which lie outside the location, are named as staying.
#[test]
fn a_location_that_is_a_models_manifest_folder_disposes_of_its_tags() {
    let env = Env::new();
    let o = legacy_ollama(&env);
    let ft = env.path(&format!(
        "{}/manifests/registry.ollama.ai/library/fraud-ft",
        o.root
    ));
    env.manifest(
        "nist-clear",
        &format!("[[locations]]\nuri = \"{}\"\n", ft.display()),
    );
    env.trace().ok();
    let paths = env.planned_paths();
    assert!(
        paths.contains(&ft.join("latest").display().to_string()),
        "{paths:?}"
    );
    let outside = env.risks("store-outside-location");
    assert_eq!(outside.len(), 1, "{outside:?}");
    assert!(
        !outside[0].1.contains(&o.base.display().to_string()),
        "the shared base layer is not the model's alone: {outside:?}"
    );
    assert!(outside[0].1.contains("/blobs/sha256-"), "{outside:?}");
}

/// A location whose path passes through a folder named like a repository
/// is not thereby the model's own: with `match = "hash"` only the content
/// of a known component is planned (an earlier form of the repo-folder fix
/// planned everything under it).
#[test]
fn a_hash_location_in_a_repo_named_folder_plans_only_hash_matches() {
    let env = Env::new();
    let weights = random_bytes(3000);
    let w = env.file("data/models--acme--copy/weights.bin", &weights);
    env.file("data/models--acme--copy/notes.txt", b"keep me");
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n[[components]]\nname = \"weights\"\nsha256 = \"{}\"\n",
            env.path("data/models--acme--copy").display(),
            sha(&weights)
        ),
    );
    env.trace().ok();
    assert_eq!(env.planned_paths(), vec![w.display().to_string()]);
}
