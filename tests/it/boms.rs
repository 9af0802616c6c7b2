//! CycloneDX BOMs as published, written by the official library
//! (cyclonedx-python-lib, schema-validated) in JSON 1.5, 1.6 and 1.7.

use crate::common::*;
use serde_json::{Value, json};

const VERSIONS: [&str; 3] = ["1.5", "1.6", "1.7"];

fn write_bom(env: &Env, spec: Value) {
    let spec_path = env.file("bom-spec.json", spec.to_string().as_bytes());
    python_tool(&[
        "bom.py",
        spec_path.to_str().unwrap(),
        env.path("bom.json").to_str().unwrap(),
    ]);
}

fn digest<D: sha2::Digest>(b: &[u8]) -> String {
    hex::encode(D::digest(b))
}

#[test]
fn a_bom_without_usable_hashes_is_reported_never_an_empty_complete_plan() {
    for v in VERSIONS {
        let env = Env::new();
        env.file("models/m/weights.bin", &random_bytes(4000));
        // As published ML-BOM examples are: no SHA-256 on the model or data.
        write_bom(
            &env,
            json!({"spec": v,
            "metadata": {"name": "fraud-detector", "version": "3.2", "type": "machine-learning-model"},
            "components": [
                {"name": "fraud-detector", "version": "3.2", "type": "machine-learning-model"},
                {"name": "training-set", "type": "data", "hashes": [["SHA-1", "a".repeat(40)]]},
                {"name": "tokenizer.json", "type": "file", "hashes": [["MD5", "b".repeat(32)], ["SHA3-256", "c".repeat(64)]]},
                {"name": "torch", "type": "library", "hashes": [["SHA-256", "d".repeat(64)]]}
            ]}),
        );
        env.manifest(
            "nist-clear",
            &format!(
                "bom = \"bom.json\"\n[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n",
                env.path("models").display()
            ),
        );
        env.trace()
            .code(2)
            .one_line_error("none of the 5 known component(s) has a SHA-256, SHA-384 or SHA-512");
        assert!(!env.plan().exists(), "{v}: nothing written");

        env.manifest(
            "nist-clear",
            &format!(
                "bom = \"bom.json\"\n[[locations]]\nuri = \"{}\"\n",
                env.path("models/m").display()
            ),
        );
        let t = env.trace();
        t.ok();
        assert!(
            t.stderr
                .contains("5 known component(s) cannot be searched for by content"),
            "{v}: {}",
            t.stderr
        );
        let verbose = env.run(&["-v", "trace", "decom.toml", "-o", "plan.json", "--force"]);
        verbose.ok();
        for line in [
            "training-set",
            "only SHA-1",
            "tokenizer.json",
            "only MD5, SHA3-256",
            "fraud-detector@3.2",
            "no hash",
            // A library's SHA-256 is said, not dropped without a word.
            "torch",
            "type \"library\"",
        ] {
            assert!(
                verbose.stderr.contains(line),
                "{v}: {line}: {}",
                verbose.stderr
            );
        }
        let plan = env.plan_json();
        assert_eq!(plan["components_not_searched"].as_array().unwrap().len(), 5);
        assert_eq!(env.risks("components-not-searched").len(), 1);
    }
}

#[test]
fn two_versions_of_one_model_nested_data_and_sha384_512_all_match() {
    for v in VERSIONS {
        let env = Env::new();
        let v1 = random_bytes(3000);
        let v2 = random_bytes(3000);
        let shard = random_bytes(2000);
        let p1 = env.file("models/m/v1/model.safetensors", &v1);
        let p2 = env.file("models/m/v2/model.safetensors", &v2);
        let ps = env.file("models/m/data/shard-0.parquet", &shard);
        let unrelated = env.file("models/m/notes.txt", &random_bytes(3000));
        write_bom(
            &env,
            json!({"spec": v, "components": [
                {"name": "fraud-detector", "version": "1.0", "type": "machine-learning-model",
                 "hashes": [["SHA-256", digest::<sha2::Sha256>(&v1)]]},
                {"name": "fraud-detector", "version": "2.0", "type": "machine-learning-model",
                 "hashes": [["SHA-512", digest::<sha2::Sha512>(&v2)]]},
                {"name": "training-set", "type": "data", "components": [
                    {"name": "shard-0", "type": "file",
                     "hashes": [["SHA-384", digest::<sha2::Sha384>(&shard)], ["SHA-1", "e".repeat(40)]]}
                ]}
            ]}),
        );
        env.manifest(
            "nist-clear",
            &format!(
                "bom = \"bom.json\"\n[[locations]]\nuri = \"{}\"\nmatch = \"hash\"\n",
                env.path("models").display()
            ),
        );
        let t = env.trace();
        t.ok();
        assert!(
            t.stderr
                .contains("1 hash(es) of algorithms decom does not match were ignored"),
            "{v}: {}",
            t.stderr
        );
        let plan = env.plan_json();
        let by_path = |p: &std::path::Path| {
            plan["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["path"] == p.to_str().unwrap())
                .map(|a| a["matched"]["component"].as_str().unwrap().to_string())
        };
        assert_eq!(by_path(&p1).as_deref(), Some("fraud-detector@1.0"), "{v}");
        assert_eq!(by_path(&p2).as_deref(), Some("fraud-detector@2.0"), "{v}");
        assert_eq!(by_path(&ps).as_deref(), Some("shard-0"), "{v}");
        assert_eq!(by_path(&unrelated), None, "{v}");
        assert_eq!(plan["components"].as_array().unwrap().len(), 3, "{v}");
    }
}
