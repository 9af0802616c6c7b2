//! Cryptographic erase of KMS keys (SSE-KMS objects on moto's S3 and KMS).
//! moto does not run KMS's waiting period: a test that needs the key gone
//! deletes the CloudFormation stack that made it (moto then really deletes
//! the key), and says so in its name.

use crate::common::python_tool;
use crate::s3::{S3Env, endpoint};

fn kms(args: &[&str]) -> String {
    let ep = endpoint();
    let mut a = vec!["kms.py", ep.as_str()];
    a.extend_from_slice(args);
    python_tool(&a).trim().to_string()
}

/// A versioned bucket with two versions of m/a.bin and one of m/b.bin under
/// a fresh customer-managed key; returns the key's ARN.
fn bucket_under_key(s: &S3Env, stack: &str) -> String {
    s.create_bucket(true, false);
    let arn = kms(&["create-key", stack]);
    for k in ["m/a.bin", "m/a.bin", "m/b.bin"] {
        kms(&["put", &s.bucket, k, &arn]);
    }
    arn
}

fn stack() -> String {
    format!("st-{}", hex::encode(crate::common::random_bytes(4)))
}

fn artifacts_of_kind(c: &serde_json::Value, kind: &str) -> Vec<serde_json::Value> {
    c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn dedicated_key_pending_then_purged_once_the_test_deletes_its_stack() {
    let s = S3Env::new();
    let st = stack();
    let arn = bucket_under_key(&s, &st);
    s.manifest("m/", "crypto_erase = true\ncrypto_erase_days = 7\n");
    s.trace().ok();
    let plan = s.env.plan_json();
    let key = &plan["locations"][0]["kms_keys"][0];
    assert_eq!(key["key_arn"], arn.as_str(), "{plan}");
    assert_eq!(key["erase"], true, "{key}");
    assert_eq!(key["versions"], 3);
    assert_eq!(key["used_outside"], 0);
    let planned = artifacts_of_kind(&plan, "kms-key");
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0]["window_days"], 7);
    let show = s.run(&["show", "plan.json"]);
    show.ok();
    assert!(
        show.stdout.contains("CRYPTOGRAPHIC ERASE after the purge (ScheduleKeyDeletion, 7-day waiting period); dedicated"),
        "{}",
        show.stdout
    );
    s.approve().ok();

    // Purged, key scheduled for deletion: pending, exit 1.
    s.execute().code(1);
    assert!(s.versions("m/").is_empty());
    assert_eq!(kms(&["state", &arn]), "PendingDeletion");
    let c = s.env.cert_json();
    assert_eq!(c["status"], "pending");
    let k = &artifacts_of_kind(&c, "kms-key")[0];
    assert_eq!(k["outcome"], "pending", "{k}");
    assert!(
        k["reason"]
            .as_str()
            .unwrap()
            .contains("7-day waiting period"),
        "{k}"
    );
    for v in artifacts_of_kind(&c, "s3-version") {
        assert_eq!(v["outcome"], "disposed");
        assert_eq!(
            v["sanitization"]["category"], "logical",
            "not yet erased: {v}"
        );
    }
    // Nothing is called Purge before KMS has acted.
    assert!(
        !c["sanitization"].to_string().contains("Purge"),
        "{}",
        c["sanitization"]
    );
    // Still pending on a resume before KMS deletes it.
    s.resume().code(1);
    assert_eq!(s.env.cert_json()["status"], "pending");

    // KMS deletes the key (here: its stack goes), and the resume completes.
    kms(&["delete-stack", &st]);
    assert_eq!(kms(&["state", &arn]), "gone");
    s.resume().ok();
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete", "{c}");
    assert_eq!(
        c["nist_sp_800_88"]["method_type"],
        "Purge (cryptographic erase)"
    );
    let k = &artifacts_of_kind(&c, "kms-key")[0];
    assert_eq!(k["outcome"], "disposed");
    assert_eq!(k["sanitization"]["category"], "crypto-erase");
    assert!(
        k["sanitization"]["reason"]
            .as_str()
            .unwrap()
            .contains("the 3 purged version(s), their backups"),
        "{k}"
    );
    for v in artifacts_of_kind(&c, "s3-version") {
        assert_eq!(v["sanitization"]["category"], "crypto-erase", "{v}");
        assert!(v["sanitization"]["reason"].as_str().unwrap().contains(&arn));
    }
    // In Rev. 2 / IEEE 2883 terms: the key and the versions it encrypted
    // are Purge by cryptographic erase, validated by asking KMS again.
    let rows = c["sanitization"].as_array().unwrap();
    let key_row = rows
        .iter()
        .find(|r| {
            r["technique"]
                .as_str()
                .unwrap()
                .contains("externally managed key")
        })
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(key_row["method"], "Purge");
    assert_eq!(key_row["artifacts"], 1);
    assert!(
        key_row["validation"]
            .as_str()
            .unwrap()
            .contains("DescribeKey")
    );
    let versions = artifacts_of_kind(&c, "s3-version").len() as u64;
    let erased_row = rows
        .iter()
        .find(|r| {
            r["technique"]
                .as_str()
                .unwrap()
                .contains("KMS key destroyed")
        })
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(erased_row["method"], "Purge");
    assert_eq!(erased_row["artifacts"], versions);
    let journal = std::fs::read_to_string(s.env.path("journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"type\":\"kms-deletion-scheduled\""),
        "{journal}"
    );
    assert!(journal.contains("\"type\":\"kms-key-gone\""), "{journal}");
    s.env.cosign().ok();
    s.env.verify().ok();
    // Recheck asks KMS again: the key is still gone.
    s.recheck().ok();
}

#[test]
fn a_cancelled_deletion_fails_the_resume_and_says_so() {
    let s = S3Env::new();
    let arn = bucket_under_key(&s, &stack());
    s.manifest("m/", "crypto_erase = true\n");
    s.trace().ok();
    assert_eq!(
        artifacts_of_kind(&s.env.plan_json(), "kms-key")[0]["window_days"],
        30
    );
    s.approve().ok();
    s.execute().code(1);
    kms(&["cancel", &arn]);
    let r = s.resume();
    r.code(1);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "incomplete");
    let k = &artifacts_of_kind(&c, "kms-key")[0];
    assert_eq!(k["outcome"], "failed");
    assert!(
        k["reason"]
            .as_str()
            .unwrap()
            .contains("deletion was cancelled"),
        "{k}"
    );
}

/// Between approval and execute someone writes another object under the
/// key: the versions are purged, the key is not destroyed, and the run
/// says why (exit 1).
#[test]
fn a_key_used_for_another_object_after_approval_is_not_destroyed() {
    let s = S3Env::new();
    let arn = bucket_under_key(&s, &stack());
    s.manifest("m/", "crypto_erase = true\n");
    s.trace().ok();
    assert_eq!(artifacts_of_kind(&s.env.plan_json(), "kms-key").len(), 1);
    s.approve().ok();
    kms(&["put", &s.bucket, "other-model/w.bin", &arn]);
    s.execute().code(1);
    assert_eq!(kms(&["state", &arn]), "Enabled", "the key must survive");
    assert!(s.versions("m/").is_empty());
    let c = s.env.cert_json();
    assert_eq!(c["status"], "incomplete");
    let k = &artifacts_of_kind(&c, "kms-key")[0];
    assert_eq!(k["outcome"], "failed");
    assert!(
        k["reason"]
            .as_str()
            .unwrap()
            .contains("no longer dedicated: encrypts 1 object version(s)"),
        "{k}"
    );
}

/// A planned version under a legal hold is kept by the purge; destroying
/// its key would defeat the hold, so trace does not propose it.
#[test]
fn a_key_of_a_version_under_legal_hold_is_refused_at_trace() {
    let s = S3Env::new();
    s.create_bucket(true, true);
    let arn = kms(&["create-key", &stack()]);
    kms(&["put", &s.bucket, "m/a.bin", &arn]);
    kms(&["put-held", &s.bucket, "m/b.bin", &arn]);
    s.manifest("m/", "crypto_erase = true\n");
    s.trace().ok();
    let plan = s.env.plan_json();
    let key = &plan["locations"][0]["kms_keys"][0];
    assert_eq!(key["erase"], false, "{key}");
    assert!(
        key["reason"]
            .as_str()
            .unwrap()
            .contains("1 planned version(s) under retention or a legal hold"),
        "{key}"
    );
    assert!(artifacts_of_kind(&plan, "kms-key").is_empty());
}

#[test]
fn a_key_that_encrypts_objects_outside_the_plan_is_refused_at_trace() {
    let s = S3Env::new();
    let arn = bucket_under_key(&s, &stack());
    kms(&["put", &s.bucket, "other-model/w.bin", &arn]);
    s.manifest("m/", "crypto_erase = true\n");
    let r = s.trace();
    r.ok();
    let plan = s.env.plan_json();
    let key = &plan["locations"][0]["kms_keys"][0];
    assert_eq!(key["erase"], false);
    assert_eq!(key["used_outside"], 1);
    assert!(
        key["reason"]
            .as_str()
            .unwrap()
            .contains("encrypts 1 object version(s) in s3://"),
        "{key}"
    );
    assert!(artifacts_of_kind(&plan, "kms-key").is_empty());
    let risks = s.env.risks("crypto-erase-refused");
    assert_eq!(risks.len(), 1, "{risks:?}");
    assert!(risks[0].1.contains("outside the plan"), "{risks:?}");
    assert!(r.stderr.contains("crypto-erase-refused"), "{}", r.stderr);

    // A grant to another principal: refused too.
    let s = S3Env::new();
    let arn = bucket_under_key(&s, &stack());
    kms(&["grant", &arn]);
    s.manifest("m/", "crypto_erase = true\n");
    s.trace().ok();
    let key = &s.env.plan_json()["locations"][0]["kms_keys"][0];
    assert_eq!(key["erase"], false);
    assert!(
        key["reason"].as_str().unwrap().contains("1 grant(s)"),
        "{key}"
    );
}

#[test]
fn an_aws_managed_key_is_refused_at_trace() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    kms(&["put", &s.bucket, "m/a.bin", "alias/aws/s3"]);
    s.manifest("m/", "crypto_erase = true\n");
    s.trace().ok();
    let plan = s.env.plan_json();
    let key = &plan["locations"][0]["kms_keys"][0];
    assert_eq!(key["erase"], false);
    assert!(
        key["reason"]
            .as_str()
            .unwrap()
            .contains("AWS-managed key (alias/aws/s3)"),
        "{key}"
    );
    assert!(artifacts_of_kind(&plan, "kms-key").is_empty());
    // The purge still runs and is labelled logical.
    s.approve().ok();
    s.execute().ok();
    let c = s.env.cert_json();
    assert_eq!(
        c["nist_sp_800_88"]["method_type"],
        "Logical sanitization (file-level; not NIST Clear or Purge)"
    );
}

#[test]
fn bad_crypto_erase_settings_are_input_errors_and_trace_writes_nothing() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    let cases: [(&str, &str); 3] = [
        (
            "crypto_erase = true\ncrypto_erase_days = 3\n",
            "crypto_erase_days = 3: KMS waits 7 to 30 days",
        ),
        (
            "crypto_erase_days = 10\n",
            "crypto_erase_days without crypto_erase = true",
        ),
        (
            "crypto_erase = true\nmethod = \"lifecycle\"\n",
            "crypto_erase needs every version's key",
        ),
    ];
    for (extra, want) in cases {
        s.manifest("m/", extra);
        s.trace().code(2).one_line_error(want);
        assert!(!s.env.path("plan.json").exists(), "{want}");
    }
    s.env.file("models/m/a.bin", b"weights");
    s.env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{}\"\ncrypto_erase = true\n",
            s.env.path("models/m").display()
        ),
    );
    s.trace()
        .code(2)
        .one_line_error("it is for s3:// locations");
    assert!(s.env.path("models/m/a.bin").exists());
}
