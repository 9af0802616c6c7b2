//! Model stores as their own tools write them: a Hugging Face cache built
//! by huggingface_hub and judged by its `scan_cache_dir`, an Ollama store
//! with tags sharing layers, the PyTorch hub cache, and `[[keep]]` folders.
//! Content another model needs is kept and reported, never silently taken.

use crate::common::*;
use serde_json::{Value, json};
use std::path::Path;

const HUB: &str = "cache/huggingface/hub";
const SHARED_TOKENIZER: &str = "{\"tokenizer\": \"shared by fine-tunes\"}";
const KEEPER_COMMIT: &str = "3333333333333333333333333333333333333333";

/// A cache with two repos that share a tokenizer byte for byte, written by
/// huggingface_hub's own `hf_hub_download` from a local fake Hub.
fn hf_cache(env: &Env) {
    let spec = json!({
        "cache": env.path(HUB),
        "repos": [
            {"id": "acme/fraud", "revisions": [
                {"ref": "main", "commit": "1111111111111111111111111111111111111111",
                 "files": {"model.safetensors": {"size": 60000, "seed": 1},
                           "tokenizer.json": {"text": SHARED_TOKENIZER},
                           "sub/dir/config.json": {"text": "{\"fraud\": 1}"}},
                 "missing": ["adapter_config.json"]},
                {"ref": "v1", "commit": "2222222222222222222222222222222222222222",
                 "files": {"model.safetensors": {"size": 60000, "seed": 2}}}
            ]},
            {"id": "acme/keeper", "revisions": [
                {"ref": "main", "commit": KEEPER_COMMIT,
                 "files": {"model.safetensors": {"size": 50000, "seed": 3},
                           "tokenizer.json": {"text": SHARED_TOKENIZER}}}
            ]}
        ]
    });
    let spec_path = env.file("hf-spec.json", spec.to_string().as_bytes());
    python_tool(&["hf_cache.py", "build", spec_path.to_str().unwrap()]);
    // What an interrupted download leaves behind.
    env.file(
        &format!(
            "{HUB}/models--acme--fraud/blobs/{}.incomplete",
            "e".repeat(64)
        ),
        b"half a download",
    );
}

fn scan(env: &Env) -> Value {
    serde_json::from_str(&python_tool(&[
        "hf_cache.py",
        "scan",
        env.path(HUB).to_str().unwrap(),
    ]))
    .unwrap()
}

fn sha(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

fn keeper_tokenizer_blob(env: &Env) -> std::path::PathBuf {
    let link = env.path(&format!(
        "{HUB}/models--acme--keeper/snapshots/{KEEPER_COMMIT}/tokenizer.json"
    ));
    let target = std::fs::read_link(&link).unwrap();
    std::fs::canonicalize(link.parent().unwrap().join(target)).unwrap()
}

fn hash_location(env: &Env, extra: &str) {
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n{extra}[[components]]\nname = \"tokenizer.json\"\nsha256 = \"{}\"\n",
            env.path(HUB).display(),
            sha(SHARED_TOKENIZER.as_bytes())
        ),
    );
    env.model_keys("hf_repo = \"acme/fraud\"");
}

#[test]
fn a_blob_another_hf_repo_needs_is_kept_and_reported() {
    let env = Env::new();
    hf_cache(&env);
    let before = scan(&env);
    assert_eq!(before["warnings"], json!([]), "{before}");
    assert_eq!(before["repos"].as_array().unwrap().len(), 2);
    let keeper_dir = env.path(&format!("{HUB}/models--acme--keeper"));
    let keeper_before = env.snapshot(&keeper_dir);
    let keeper_blob = keeper_tokenizer_blob(&env);

    hash_location(&env, "");
    env.trace().ok();
    let paths = env.planned_paths();
    assert!(
        paths.iter().all(|p| p.contains("models--acme--fraud")),
        "only the retired repo (its folder and its .locks): {paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/.locks/models--acme--fraud/"))
    );
    assert!(paths.iter().any(|p| p.contains("/.no_exist/")));
    assert!(paths.iter().any(|p| p.ends_with(".incomplete")));
    assert!(paths.iter().any(|p| p.ends_with("sub/dir/config.json")));
    let shared = env.risks("shared-content");
    assert!(
        shared
            .iter()
            .any(|(s, d)| *s == keeper_blob.to_str().unwrap()
                && d.contains("needed by models--acme--keeper")
                && d.contains("matches component tokenizer.json")),
        "the keeper's blob is kept and said to be: {shared:?}"
    );
    assert!(
        shared
            .iter()
            .any(|(s, d)| s.contains("models--acme--fraud/blobs/")
                && d.starts_with("identical bytes kept: needed by models--acme--keeper")),
        "the retired repo's own copy names the copy that stays: {shared:?}"
    );

    env.approve().ok();
    env.execute().ok();
    let after = scan(&env);
    assert_eq!(after["warnings"], json!([]), "{after}");
    let repos = after["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 1, "{after}");
    assert_eq!(repos[0]["id"], "acme/keeper");
    assert_eq!(repos[0]["files"], 2);
    assert_eq!(repos[0]["refs"], json!(["main"]));
    assert_eq!(env.snapshot(&keeper_dir), keeper_before);
    assert!(!env.path(&format!("{HUB}/models--acme--fraud")).exists());
    // Years later the recheck finds nothing of the retired repo, and does
    // not mistake the keeper's kept tokenizer for a reappearance.
    env.cosign().ok();
    env.recheck().ok();
    let cert = env.cert_json();
    assert!(
        cert["residual_risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "shared-content"),
        "the certificate carries the shared content"
    );
}

#[test]
fn shared_dispose_takes_it_and_names_the_links_that_will_dangle() {
    let env = Env::new();
    hf_cache(&env);
    let keeper_blob = keeper_tokenizer_blob(&env);
    let keeper_link = env.path(&format!(
        "{HUB}/models--acme--keeper/snapshots/{KEEPER_COMMIT}/tokenizer.json"
    ));
    hash_location(&env, "shared = \"dispose\"\n");
    env.trace().ok();
    assert!(
        env.planned_paths()
            .contains(&keeper_blob.to_str().unwrap().to_string())
    );
    let disposed = env.risks("shared-content-disposed");
    assert_eq!(disposed.len(), 1, "{disposed:?}");
    assert_eq!(disposed[0].0, keeper_blob.to_str().unwrap());
    assert!(
        disposed[0].1.contains("needed by models--acme--keeper")
            && disposed[0].1.contains(keeper_link.to_str().unwrap()),
        "{disposed:?}"
    );
    env.approve().ok();
    env.execute().ok();
    assert!(keeper_link.symlink_metadata().is_ok() && keeper_link.metadata().is_err());
}

/// An Ollama store as `ollama pull` leaves it: manifests per tag naming
/// `sha256-<hex>` blobs, one layer shared by two tags of the model.
fn ollama_store(env: &Env) -> (String, String) {
    let root = "ollama/models";
    let blob = |bytes: &[u8]| {
        let h = sha(bytes);
        env.file(&format!("{root}/blobs/sha256-{h}"), bytes);
        json!({"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{h}"), "size": bytes.len()})
    };
    let template = blob(b"{{ .System }} {{ .Prompt }}");
    for (tag, weights) in [("v1", random_bytes(40_000)), ("v2", random_bytes(40_000))] {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": blob(format!("{{\"model_format\":\"gguf\",\"tag\":\"{tag}\"}}").as_bytes()),
            "layers": [blob(&weights), template.clone()],
        });
        env.file(
            &format!("{root}/manifests/registry.ollama.ai/library/fraud/{tag}"),
            manifest.to_string().as_bytes(),
        );
    }
    (
        root.to_string(),
        template["digest"].as_str().unwrap().replace(':', "-"),
    )
}

#[test]
fn ollama_tag_goes_with_its_own_layers_and_the_other_tag_stays_whole() {
    let env = Env::new();
    let (root, template) = ollama_store(&env);
    let v2 = env.path(&format!(
        "{root}/manifests/registry.ollama.ai/library/fraud/v2"
    ));
    let v2_manifest: Value = serde_json::from_slice(&std::fs::read(&v2).unwrap()).unwrap();
    let mut v2_files = vec![v2.clone()];
    for d in
        std::iter::once(&v2_manifest["config"]).chain(v2_manifest["layers"].as_array().unwrap())
    {
        v2_files.push(env.path(&format!(
            "{root}/blobs/{}",
            d["digest"].as_str().unwrap().replace(':', "-")
        )));
    }
    let sums: Vec<String> = v2_files.iter().map(|p| sha256_file(p)).collect();
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n",
            env.path(&root).display()
        ),
    );
    env.model_keys("ollama_model = \"fraud:v1\"");
    env.trace().ok();
    let plan = env.plan_json();
    let files: Vec<&Value> = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "file")
        .collect();
    assert_eq!(
        files.len(),
        3,
        "v1's manifest, config and weights: {files:?}"
    );
    assert!(files.iter().all(|a| a["matched"]["how"] == "ollama"));
    let shared = env.risks("shared-content");
    assert!(
        shared
            .iter()
            .any(|(s, d)| s.ends_with(&template) && d.contains("needed by fraud:v2")),
        "{shared:?}"
    );
    env.approve().ok();
    env.execute().ok();
    for (p, s) in v2_files.iter().zip(&sums) {
        assert_eq!(&sha256_file(p), s, "{} intact", p.display());
    }
    assert!(
        !env.path(&format!(
            "{root}/manifests/registry.ollama.ai/library/fraud/v1"
        ))
        .exists()
    );
    let left = std::fs::read_dir(env.path(&format!("{root}/blobs")))
        .unwrap()
        .count();
    assert_eq!(
        left, 3,
        "only v2's config, weights and the shared template remain"
    );
}

#[test]
fn torch_hub_checkpoints_go_by_name_and_others_stay() {
    let env = Env::new();
    let mine = env.file(
        "torch/hub/checkpoints/resnet50-0676ba61.pth",
        &random_bytes(3000),
    );
    let other = env.file(
        "torch/hub/checkpoints/vit_b_16-c867db91.pth",
        &random_bytes(3000),
    );
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n",
            env.path("torch/hub").display()
        ),
    );
    env.model_keys("torch_checkpoints = [\"resnet50-0676ba61.pth\"]");
    env.trace().ok();
    let plan = env.plan_json();
    let arts = plan["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 1, "{arts:?}");
    assert_eq!(arts[0]["path"], mine.to_str().unwrap());
    assert_eq!(arts[0]["matched"]["how"], "torch-hub");
    env.approve().ok();
    env.execute().ok();
    assert!(!mine.exists() && other.exists());
}

#[test]
fn keep_folders_are_never_entered_and_identical_bytes_there_are_reported() {
    let env = Env::new();
    let tokenizer = random_bytes(2000);
    env.file("models/fraud/weights.bin", &random_bytes(5000));
    let ours = env.file("models/fraud/tokenizer.json", &tokenizer);
    env.file("models/keeper/tokenizer.json", &tokenizer);
    env.file("models/keeper/weights.bin", &random_bytes(5000));
    let keeper = env.path("models/keeper");
    let before = env.snapshot(&keeper);
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\n[[keep]]\nuri = \"{}\"\nmodel = \"keeper-v2\"\n",
            env.path("models").display(),
            keeper.display()
        ),
    );
    env.trace().ok();
    let paths = env.planned_paths();
    assert!(paths.iter().all(|p| !p.contains("/keeper")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("fraud/weights.bin")));
    let shared = env.risks("shared-content");
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0].0, ours.to_str().unwrap());
    assert!(shared[0].1.contains("needed by keeper-v2"), "{shared:?}");
    env.approve().ok();
    env.execute().ok();
    assert_eq!(env.snapshot(&keeper), before);
    assert!(!Path::new(&ours).exists());
}
