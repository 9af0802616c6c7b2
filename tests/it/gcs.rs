//! Google Cloud Storage: fake-gcs-server with scripts/gcs_shim.py in front
//! (the JSON API's documented answers the emulator lacks: deletes by
//! generation, preconditions, holds, soft delete, bucket lifecycle), both
//! started by `scripts/gcs.sh`; fixtures made with Google's Python client
//! (tests/tools/gcs.py). One test runs against the bare emulator. These
//! tests never skip: no server means they fail.

use crate::common::*;
use serde_json::{Value, json};
use std::sync::OnceLock;

/// The shim's and the bare emulator's endpoints.
fn servers() -> (String, String) {
    static S: OnceLock<(String, String)> = OnceLock::new();
    S.get_or_init(|| {
        let [shim, emulator] = crate::s3::started(
            "gcs.sh",
            "fake-gcs-server",
            ["DECOM_TEST_GCS_ENDPOINT", "DECOM_TEST_GCS_EMULATOR"],
        );
        (shim, emulator)
    })
    .clone()
}

struct Gcs {
    env: Env,
    endpoint: String,
    bucket: String,
}

impl Gcs {
    /// A fresh bucket through the shim, with the bucket fields in `extra`.
    fn new(extra: Value) -> Gcs {
        Self::at(servers().0, extra)
    }

    fn at(endpoint: String, extra: Value) -> Gcs {
        let bucket = format!("decom-{:016x}", rand::random::<u64>());
        let g = Gcs {
            env: Env::new(),
            endpoint,
            bucket,
        };
        let mut op = json!({"op": "bucket", "name": g.bucket, "versioning": true});
        for (k, v) in extra.as_object().unwrap() {
            op[k] = v.clone();
        }
        g.ops(json!([op]));
        g
    }

    /// Run fixture operations with Google's Python client; their answers.
    fn ops(&self, ops: Value) -> Vec<Value> {
        let mut ops = ops;
        for op in ops.as_array_mut().unwrap() {
            if op.get("bucket").is_none() && op["op"] != "bucket" {
                op["bucket"] = json!(self.bucket);
            }
        }
        let out = python_tool(&["gcs.py", &self.endpoint, &ops.to_string()]);
        serde_json::from_str(&out).unwrap()
    }

    /// Upload objects (name, text) in order; their generations.
    fn put(&self, objects: &[(&str, &str)]) -> Vec<String> {
        let ops: Vec<Value> = objects
            .iter()
            .map(|(n, d)| json!({"op": "put", "name": n, "data": d}))
            .collect();
        self.ops(json!(ops))
            .into_iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect()
    }

    /// Every generation left: (name, generation, live), sorted.
    fn left(&self) -> Vec<(String, String, bool)> {
        let v = self.ops(json!([{"op": "list"}])).remove(0);
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e[0].as_str().unwrap().to_string(),
                    e[1].as_str().unwrap().to_string(),
                    e[2].as_bool().unwrap(),
                )
            })
            .collect()
    }

    fn names_left(&self) -> Vec<String> {
        self.left().into_iter().map(|(n, _, _)| n).collect()
    }

    /// The manifest: one location under the bucket, `[gcs]` settings.
    fn manifest(&self, folder: &str, location_extra: &str, gcs_extra: &str) {
        self.env.manifest(
            "nist-clear",
            &format!(
                "[gcs]\nendpoint_url = \"{}\"\n{gcs_extra}\n[[locations]]\nuri = \"gs://{}/{folder}\"\n{location_extra}\n",
                self.endpoint, self.bucket
            ),
        );
    }

    /// Outcome and reason of each certificate artifact, by path.
    fn outcomes(&self) -> Vec<(String, String, String)> {
        self.env.outcomes("path")
    }

    /// The plan's artifacts as `gs://bucket/name#generation`.
    fn planned(&self) -> Vec<String> {
        self.env.plan_json()["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let (n, gn) = (
                    a["name"].as_str().unwrap(),
                    a["generation"].as_str().unwrap(),
                );
                self.uri(n, gn)
            })
            .collect()
    }

    fn uri(&self, name: &str, generation: &str) -> String {
        format!("gs://{}/{name}#{generation}", self.bucket)
    }
}

/// `ssh-keygen -Y verify` of one signature over the certificate.
fn ssh_verifies(env: &Env, who: &str, role: &str) {
    let out = std::process::Command::new("ssh-keygen")
        .current_dir(env.path(""))
        .args([
            "-Y",
            "verify",
            "-f",
            "keys/allowed_signers",
            "-I",
            who,
            "-n",
        ])
        .arg(format!("decom-{role}"))
        .arg("-s")
        .arg(format!("certificate.json.{role}.sig"))
        .stdin(std::fs::File::open(env.cert()).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_folder_is_traced_every_generation_purged_proven_and_certified() {
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    let gens = g.put(&[
        ("fd", "the object named like the folder"),
        ("fd/a.bin", "one"),
        ("fd/a.bin", "two"),
        ("fd/a.bin", "three"),
        ("fd/sub/c.bin", "c"),
        ("fd-old/x.bin", "a sibling that shares the letters"),
        ("fdx/y.bin", "another"),
    ]);
    g.manifest("fd", "", "");
    g.env.trace().ok();
    let mut planned = g.planned();
    planned.sort();
    let mut want = vec![
        g.uri("fd", &gens[0]),
        g.uri("fd/a.bin", &gens[1]),
        g.uri("fd/a.bin", &gens[2]),
        g.uri("fd/a.bin", &gens[3]),
        g.uri("fd/sub/c.bin", &gens[4]),
    ];
    want.sort();
    assert_eq!(
        planned, want,
        "folder semantics: fd and fd/…, never fd-old or fdx"
    );
    let plan = g.env.plan_json();
    let loc = &plan["locations"][0];
    assert_eq!(loc["store"], "gcs");
    assert_eq!(loc["facts"]["versioning"], true);
    assert_eq!(loc["facts"]["soft_delete_seconds"], 0);
    let live: Vec<bool> = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "fd/a.bin")
        .map(|a| a["live"].as_bool().unwrap())
        .collect();
    assert_eq!(
        live.iter().filter(|l| **l).count(),
        1,
        "one live, two noncurrent"
    );
    assert!(
        g.env.risks("gcs-soft-delete").is_empty(),
        "soft delete is off"
    );
    g.env.approve().ok();
    // Two failures on the way are retried, not reported.
    g.ops(json!([{"op": "faults", "fail_next": {"count": 2, "status": 503}}]));
    g.env.execute().ok();
    assert_eq!(g.names_left(), vec!["fd-old/x.bin", "fdx/y.bin"]);
    let cert = g.env.cert_json();
    assert_eq!(cert["status"], "complete");
    let proof = cert["locations"][0]["absence_proof"]["method"]
        .as_str()
        .unwrap();
    assert!(
        proof.contains("shows none of the 5 purged generation(s)")
            && proof.contains("GET by generation")
            && proof.contains("all 404"),
        "{proof}"
    );
    g.env.cosign().ok();
    g.env.verify().ok();
    ssh_verifies(&g.env, OPERATOR, "operator");
    ssh_verifies(&g.env, CUSTODIAN, "custodian");
    g.env.recheck().ok();
    // The name written again is found by recheck.
    g.put(&[("fd/a.bin", "back again")]);
    let r = g.env.recheck();
    assert_ne!(r.code, 0);
    assert!(
        r.stdout.contains("the name holds an object again"),
        "{}",
        r.stdout
    );
}

#[test]
fn what_changed_after_approval_is_skipped_and_stays() {
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    let gens = g.put(&[
        ("fd/rewritten.bin", "v1"),
        ("fd/raced.bin", "v1"),
        ("fd/held.bin", "v1"),
        ("fd/plain.bin", "v1"),
    ]);
    g.manifest("fd", "", "");
    g.env.trace().ok();
    g.env.approve().ok();
    // Written again before execute lists it: the listing shows it.
    let newer = g.put(&[("fd/rewritten.bin", "v2")]);
    // A hold placed after approval moves the metageneration.
    g.ops(json!([{"op": "hold", "name": "fd/held.bin"}]));
    // Written again between execute's listing and its delete: the store's
    // own precondition (ifGenerationMatch) refuses the delete.
    g.ops(json!([{"op": "faults", "rewrite_before_delete": ["fd/raced.bin"]}]));
    g.env.execute().code(1);
    let out = g.outcomes();
    let of = |n: &str, gn: &str| {
        out.iter()
            .find(|(p, _, _)| *p == g.uri(n, gn))
            .cloned()
            .unwrap_or_else(|| panic!("{n} not in {out:?}"))
    };
    let (_, o, why) = of("fd/rewritten.bin", &gens[0]);
    assert_eq!(o, "skipped-changed");
    assert!(why.contains(&newer[0]), "{why}");
    let (_, o, why) = of("fd/raced.bin", &gens[1]);
    assert_eq!(o, "skipped-changed");
    assert!(why.contains("precondition"), "{why}");
    let (_, o, why) = of("fd/held.bin", &gens[2]);
    assert_eq!(o, "skipped-changed");
    assert!(why.contains("metageneration"), "{why}");
    assert_eq!(of("fd/plain.bin", &gens[3]).1, "disposed");
    let left = g.left();
    let has = |n: &str, gn: &str| left.iter().any(|(a, b, _)| a == n && b == gn);
    assert!(has("fd/rewritten.bin", &gens[0]) && has("fd/rewritten.bin", &newer[0]));
    assert!(
        has("fd/raced.bin", &gens[1]),
        "the refused generation stays"
    );
    assert_eq!(
        left.iter().filter(|(n, _, _)| n == "fd/raced.bin").count(),
        2,
        "the generation written during execute stays too"
    );
    assert!(has("fd/held.bin", &gens[2]));
    assert!(!left.iter().any(|(n, _, _)| n == "fd/plain.bin"));
    assert_eq!(g.env.cert_json()["status"], "incomplete");
}

#[test]
fn held_generations_are_planned_as_risks_and_reported_retained() {
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    let gens = g.put(&[("fd/held.bin", "kept"), ("fd/free.bin", "gone")]);
    g.ops(json!([{"op": "hold", "name": "fd/held.bin"}]));
    g.manifest("fd", "", "");
    g.env.trace().ok();
    let risks = g.env.risks("gcs-retained");
    assert!(
        risks
            .iter()
            .any(|(s, d)| *s == g.uri("fd/held.bin", &gens[0]) && d.contains("temporary hold")),
        "{risks:?}"
    );
    g.env.approve().ok();
    g.env.execute().code(1);
    let out = g.outcomes();
    assert!(
        out.iter()
            .any(|(p, o, _)| *p == g.uri("fd/held.bin", &gens[0]) && o == "retained"),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|(p, o, _)| *p == g.uri("fd/free.bin", &gens[1]) && o == "disposed")
    );
    assert_eq!(g.names_left(), vec!["fd/held.bin"]);
}

#[test]
fn the_proof_catches_a_store_that_keeps_what_it_says_it_deleted() {
    // A store that answers the delete and still lists the generation.
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    let gens = g.put(&[("fd/kept.bin", "k"), ("fd/b.bin", "b")]);
    g.manifest("fd", "", "");
    g.env.trace().ok();
    g.env.approve().ok();
    g.ops(json!([{"op": "faults", "keep_on_delete": ["fd/kept.bin"]}]));
    g.env.execute().code(1);
    let out = g.outcomes();
    let kept = out
        .iter()
        .find(|(p, _, _)| *p == g.uri("fd/kept.bin", &gens[0]))
        .unwrap();
    assert_eq!(
        (kept.1.as_str(), kept.2.as_str()),
        ("failed", "still listed after its delete")
    );
    assert_eq!(g.env.cert_json()["status"], "incomplete");

    // One whose listing forgets the generation once deleted while a GET
    // still serves it: the GET by generation finds it, and the listing is
    // not trusted for anything.
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    let gens = g.put(&[("fd/hidden.bin", "h"), ("fd/b.bin", "b")]);
    g.manifest("fd", "", "verify = \"each\"");
    g.env.trace().ok();
    g.env.approve().ok();
    g.ops(json!([{"op": "faults", "hide_after_delete": ["fd/hidden.bin"]}]));
    g.env.execute().code(1);
    let out = g.outcomes();
    assert!(
        out.iter()
            .all(|(_, o, why)| o == "failed" && why.contains("absence not proven")),
        "{out:?}"
    );
    assert!(
        out[0].2.contains(&g.uri("fd/hidden.bin", &gens[0])),
        "{out:?}"
    );
    let proof = g.env.cert_json()["locations"][0]["absence_proof"]["method"].clone();
    assert!(
        proof
            .as_str()
            .unwrap()
            .contains("found a generation the listing called gone"),
        "{proof}"
    );
}

#[test]
fn soft_deleted_generations_stay_pending_until_their_hard_delete_time() {
    let g = Gcs::new(json!({"soft_delete_seconds": 4}));
    let gens = g.put(&[
        ("fd/a.bin", "one"),
        ("fd/a.bin", "two"),
        ("fd/early.bin", "x"),
    ]);
    // Deleted before trace: soft-deleted, restorable, and not plannable.
    g.ops(json!([{"op": "delete_generation", "name": "fd/early.bin", "generation": gens[2]}]));
    g.manifest("fd", "", "");
    g.env.trace().ok();
    let risks = g.env.risks("gcs-soft-delete");
    assert!(
        risks
            .iter()
            .any(|(_, d)| d.contains("soft delete is on (4 s)")),
        "{risks:?}"
    );
    assert!(
        risks
            .iter()
            .any(|(_, d)| d.contains("1 generation(s) deleted before trace are soft-deleted")),
        "{risks:?}"
    );
    g.env.approve().ok();
    g.env.execute().code(1);
    assert_eq!(g.env.cert_json()["status"], "pending");
    for (_, o, why) in g.outcomes() {
        assert_eq!(o, "pending");
        assert!(why.contains("restorable until"), "{why}");
    }
    let soft = g
        .ops(json!([{"op": "soft_deleted", "prefix": "fd/a.bin"}]))
        .remove(0);
    assert_eq!(
        soft.as_array().unwrap().len(),
        2,
        "the store keeps both, restorable"
    );
    assert!(g.left().is_empty());
    // After the hard-delete time a resume finds them gone and completes.
    std::fs::remove_file(g.env.cert()).unwrap();
    std::fs::remove_file(g.env.path("certificate.json.operator.sig")).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(5));
    g.env.resume().ok();
    assert_eq!(g.env.cert_json()["status"], "complete");
    let soft = g
        .ops(json!([{"op": "soft_deleted", "prefix": "fd/"}]))
        .remove(0);
    assert!(soft.as_array().unwrap().is_empty());
}

#[test]
fn a_store_that_reports_no_soft_delete_policy_is_unknown_not_absent() {
    let g = Gcs::new(json!({}));
    g.put(&[("fd/a.bin", "one")]);
    g.manifest("fd", "", "");
    g.env.trace().ok();
    let risks = g.env.risks("gcs-soft-delete");
    assert!(
        risks.iter().any(|(_, d)| d.contains("unknown")),
        "{risks:?}"
    );
    assert_eq!(
        g.env.plan_json()["locations"][0]["facts"]["soft_delete_seconds"],
        Value::Null
    );
    g.env.approve().ok();
    g.env.execute().ok();
    let (_, o, why) = g.outcomes().remove(0);
    assert_eq!(o, "disposed");
    assert!(why.contains("unknown"), "{why}");
    let proof = g.env.cert_json()["locations"][0]["absence_proof"]["method"].clone();
    assert!(
        proof.as_str().unwrap().contains("soft delete: unknown"),
        "{proof}"
    );
}

#[test]
fn the_bare_emulator_cannot_delete_a_noncurrent_generation_and_the_proof_says_so() {
    // fake-gcs-server 1.54.0 answers a delete by generation by archiving
    // the live object instead: nothing noncurrent ever goes.
    let g = Gcs::at(servers().1, json!({}));
    let gens = g.put(&[("fd/a.bin", "one"), ("fd/a.bin", "two")]);
    g.manifest("fd", "", "");
    g.env.trace().ok();
    g.env.approve().ok();
    g.env.execute().code(1);
    let out = g.outcomes();
    let old = out
        .iter()
        .find(|(p, _, _)| *p == g.uri("fd/a.bin", &gens[0]))
        .unwrap();
    assert_eq!(old.1, "failed", "{out:?}");
    assert_ne!(g.env.cert_json()["status"], "complete");
    assert!(
        g.left().iter().any(|(_, gn, _)| *gn == gens[0]),
        "it is still there"
    );
}

#[test]
fn match_hash_streams_generations_only_when_asked() {
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    g.put(&[
        ("fd/weights.bin", "the model"),
        ("fd/other.bin", "not the model"),
    ]);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"the model"))
    };
    let component = format!("[[components]]\nname = \"weights\"\nsha256 = \"{sha}\"\n");
    g.manifest("fd", &format!("match = \"hash\"\n{component}"), "");
    g.env.trace().ok();
    assert!(g.planned().is_empty());
    let risks = g.env.risks("gcs-unhashed");
    assert!(
        risks
            .iter()
            .any(|(_, d)| d.contains("2 generation(s) not examined")),
        "{risks:?}"
    );
    g.manifest(
        "fd",
        &format!("match = \"hash\"\n{component}"),
        "hash_remote = true",
    );
    g.env.trace().ok();
    let planned = g.planned();
    assert_eq!(planned.len(), 1);
    assert!(planned[0].contains("fd/weights.bin#"), "{planned:?}");
    assert_eq!(g.env.plan_json()["artifacts"][0]["sha256"], sha);
}

/// The bucket's lifecycle rules exactly as the store wrote them.
fn raw_rules(g: &Gcs) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct B {
        #[serde(default)]
        lifecycle: Option<L>,
    }
    #[derive(serde::Deserialize)]
    struct L {
        rule: Vec<Box<serde_json::value::RawValue>>,
    }
    let text = g.ops(json!([{"op": "bucket_json"}])).remove(0);
    let b: B = serde_json::from_str(text.as_str().unwrap()).unwrap();
    b.lifecycle
        .map(|l| l.rule.iter().map(|r| r.get().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_folder_handed_to_lifecycle_rules_keeps_every_other_rule_byte_for_byte() {
    // A rule written with its own key order.
    let other =
        json!({"condition": {"matchesPrefix": ["logs/"], "age": 30}, "action": {"type": "Delete"}});
    let g = Gcs::new(json!({"soft_delete_seconds": 0, "lifecycle": [other]}));
    g.put(&[
        ("fd/a.bin", "one"),
        ("fd/a.bin", "two"),
        ("keep/b.bin", "b"),
    ]);
    let before = raw_rules(&g);
    assert_eq!(before.len(), 1);
    g.manifest("fd/", "method = \"lifecycle\"", "");
    g.env.trace().ok();
    assert_eq!(g.env.plan_json()["artifacts"][0]["generations"], 2);
    g.env.approve().ok();
    g.env.execute().code(1);
    assert_eq!(g.env.cert_json()["status"], "pending");
    let during = raw_rules(&g);
    assert_eq!(
        during.len(),
        3,
        "the other rule and decom's two: {during:?}"
    );
    assert_eq!(
        during[0], before[0],
        "the other rule comes back byte for byte"
    );
    assert!(
        during[1].contains("\"age\":0") && during[1].contains("fd/"),
        "{during:?}"
    );
    assert!(during[2].contains("\"isLive\":false"), "{during:?}");
    // The emulator has no lifecycle engine: delete what the rules would.
    let ops: Vec<Value> = g
        .left()
        .into_iter()
        .filter(|(n, _, _)| n.starts_with("fd/"))
        .map(|(n, gn, _)| json!({"op": "delete_generation", "name": n, "generation": gn}))
        .collect();
    g.ops(json!(ops));
    std::fs::remove_file(g.env.cert()).unwrap();
    std::fs::remove_file(g.env.path("certificate.json.operator.sig")).unwrap();
    g.env.resume().ok();
    assert_eq!(g.env.cert_json()["status"], "complete");
    assert_eq!(
        raw_rules(&g),
        before,
        "decom's rules are gone, the other is as it was"
    );
    assert_eq!(g.names_left(), vec!["keep/b.bin"]);
}

#[test]
fn bad_gcs_uris_and_settings_are_one_line_errors_and_touch_nothing() {
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    g.put(&[("fd/a.bin", "one")]);
    for (uri, needle) in [
        ("gs://Bad_Bucket/fd", "not a valid bucket name"),
        ("gs://ab/fd", "not a valid bucket name"),
        ("gs://goog-x/fd", "not a valid bucket name"),
    ] {
        g.env
            .manifest("nist-clear", &format!("[[locations]]\nuri = \"{uri}\"\n"));
        g.env.trace().code(2).one_line_error(needle);
    }
    for (settings, needle) in [
        ("concurrency = 0", "concurrency 0 is out of range"),
        ("verify_sample = 0", "verify_sample 0 is out of range"),
        (
            "endpoint_url = \"ftp://x\"",
            "not an http:// or https:// URL",
        ),
        ("no_such_key = 1", "no_such_key"),
    ] {
        g.env.manifest(
            "nist-clear",
            &format!(
                "[gcs]\n{settings}\n[[locations]]\nuri = \"gs://{}/fd\"\n",
                g.bucket
            ),
        );
        g.env.trace().code(2).one_line_error(needle);
    }
    // A bucket that does not exist, and a folder method that needs a folder.
    g.env.manifest(
        "nist-clear",
        &format!(
            "[gcs]\nendpoint_url = \"{}\"\n[[locations]]\nuri = \"gs://decom-no-such-bucket/fd\"\n",
            g.endpoint
        ),
    );
    g.env.trace().code(2).one_line_error("no such bucket");
    g.manifest("fd", "method = \"lifecycle\"", "");
    g.env.trace().code(2).one_line_error("needs a folder");
    // An https endpoint needs Application Default Credentials.
    g.env.manifest(
        "nist-clear",
        &format!(
            "[gcs]\nendpoint_url = \"https://127.0.0.1:9\"\n[[locations]]\nuri = \"gs://{}/fd\"\n",
            g.bucket
        ),
    );
    let r = Run::from(
        g.env
            .command()
            .args(["trace", "decom.toml", "-o", "plan.json"])
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                g.env.path("no-such-credentials.json"),
            )
            .output()
            .unwrap(),
    );
    r.code(2).one_line_error("no Google Cloud credentials");
    assert_eq!(g.names_left(), vec!["fd/a.bin"]);
    assert!(!g.env.plan().exists());
}

#[test]
fn the_demo_purges_its_gcs_bucket_too() {
    let d = run_demo(&["--gcs-endpoint", &servers().0], |_| {});
    let cert = &d.cert;
    let gcs: Vec<&Value> = cert["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "gcs-generation")
        .collect();
    assert_eq!(
        gcs.len(),
        4,
        "three generations of the weights and the config"
    );
    assert!(gcs.iter().all(|a| a["outcome"] == "disposed"));
}

#[test]
fn soft_delete_turned_on_after_approval_makes_the_generations_pending() {
    let g = Gcs::new(json!({"soft_delete_seconds": 0}));
    g.put(&[("fd/a.bin", "one")]);
    g.manifest("fd", "", "");
    g.env.trace().ok();
    g.env.approve().ok();
    g.ops(json!([{"op": "soft_delete_policy", "seconds": 3600}]));
    g.env.execute().code(1);
    assert_eq!(g.env.cert_json()["status"], "pending");
    let (_, o, why) = g.outcomes().remove(0);
    assert_eq!(o, "pending");
    assert!(why.contains("restorable until"), "{why}");
}
