//! Delegating the largest folders to S3 Lifecycle. moto stores lifecycle
//! configurations but never runs them, so these tests **play the engine**:
//! between two `execute --resume` runs they delete what the rules would
//! have expired, with the SDK, and say so in their names.

use crate::common::*;
use crate::s3::S3Env;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};

impl S3Env {
    pub fn lifecycle(&self) -> Vec<LifecycleRule> {
        match self.rt.block_on(
            self.client
                .get_bucket_lifecycle_configuration()
                .bucket(&self.bucket)
                .send(),
        ) {
            Ok(o) => o.rules().to_vec(),
            Err(_) => Vec::new(),
        }
    }

    pub fn put_lifecycle(&self, rules: Vec<LifecycleRule>) {
        self.rt
            .block_on(
                self.client
                    .put_bucket_lifecycle_configuration()
                    .bucket(&self.bucket)
                    .lifecycle_configuration(
                        BucketLifecycleConfiguration::builder()
                            .set_rules(Some(rules))
                            .build()
                            .unwrap(),
                    )
                    .send(),
            )
            .unwrap();
    }

    /// Play the S3 Lifecycle engine: delete these versions by id.
    fn expire(&self, versions: &[(String, String, bool)]) {
        for (k, v, _) in versions {
            self.rt
                .block_on(
                    self.client
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(k)
                        .version_id(v)
                        .send(),
                )
                .unwrap();
        }
    }

    fn abort_uploads(&self, prefix: &str) {
        let ups = self
            .rt
            .block_on(
                self.client
                    .list_multipart_uploads()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .send(),
            )
            .unwrap();
        for u in ups.uploads() {
            self.rt
                .block_on(
                    self.client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(u.key().unwrap())
                        .upload_id(u.upload_id().unwrap())
                        .send(),
                )
                .unwrap();
        }
    }
}

pub fn keep_logs() -> LifecycleRule {
    LifecycleRule::builder()
        .id("keep-logs")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
        .expiration(LifecycleExpiration::builder().days(30).build())
        .build()
        .unwrap()
}

/// `big/` with `shards` objects of two versions each (one of them deleted:
/// a delete marker) and an unfinished upload; beside it `big-old/` and
/// `logs/`, which the bucket's own rule (`keep-logs`) covers. The manifest
/// delegates `big/` to lifecycle. Returns the bucket's rules as they were.
pub fn big_folder_delegated(s: &S3Env, shards: usize, size: usize) -> String {
    for i in 0..shards {
        s.put(&format!("big/shard-{i}.bin"), &random_bytes(size));
        s.put(&format!("big/shard-{i}.bin"), &random_bytes(size));
    }
    s.delete("big/shard-0.bin");
    s.unfinished_upload("big/huge.bin");
    s.put("big-old/x.bin", b"a sibling");
    s.put("logs/run.log", b"kept by the bucket's own rule");
    s.put_lifecycle(vec![keep_logs()]);
    s.env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"s3://{}/big/\"\nmethod = \"lifecycle\"\n",
            s.bucket
        ),
    );
    format!("{:?}", s.lifecycle())
}

fn lifecycle_artifact(s: &S3Env) -> serde_json::Value {
    s.env.cert_json()["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "s3-lifecycle")
        .unwrap()
        .clone()
}

#[test]
fn lifecycle_rule_merged_pending_then_complete_across_resumes_playing_the_engine() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    let before = big_folder_delegated(&s, 6, 100);
    s.trace().ok();
    let plan = s.env.plan_json();
    let arts = plan["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 1, "one delegated folder, not 14 versions");
    let a = &arts[0];
    assert_eq!(a["kind"], "s3-lifecycle");
    assert_eq!(a["versions"], 12);
    assert_eq!(a["delete_markers"], 1);
    assert_eq!(a["uploads"], 1);
    assert_eq!(a["existing_rules"], serde_json::json!(["keep-logs"]));
    assert_eq!(a["rules"].as_array().unwrap().len(), 2);
    let show = s.env.run(&["show", "plan.json"]);
    assert!(
        show.stdout.contains("delegated to S3 Lifecycle"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains("keeps the bucket's rules unchanged: keep-logs")
    );
    assert!(
        show.stdout
            .contains("1 S3 folder(s) delegated to S3 Lifecycle"),
        "{}",
        show.stdout
    );
    s.approve().ok();

    // Execute installs the rules and issues a pending certificate.
    let r = s.execute();
    r.code(1);
    assert!(r.stderr.contains("PENDING"), "{}", r.stderr);
    let rules = s.lifecycle();
    assert_eq!(rules.len(), 3);
    let keep: Vec<LifecycleRule> = rules
        .iter()
        .filter(|r| r.id() == Some("keep-logs"))
        .cloned()
        .collect();
    assert_eq!(
        format!("{keep:?}"),
        before,
        "the existing rule is untouched"
    );
    let id = a["rules"][0]["id"].as_str().unwrap();
    let ours = rules.iter().find(|r| r.id() == Some(id)).unwrap();
    assert_eq!(ours.filter().unwrap().prefix(), Some("big/"));
    assert_eq!(
        ours.noncurrent_version_expiration()
            .unwrap()
            .noncurrent_days(),
        Some(1)
    );
    assert_eq!(
        ours.abort_incomplete_multipart_upload()
            .unwrap()
            .days_after_initiation(),
        Some(1)
    );
    let l = lifecycle_artifact(&s);
    assert_eq!(l["outcome"], "pending");
    assert_eq!(
        s.env.cert_json()["status"],
        "pending",
        "nothing failed: pending, not incomplete"
    );
    assert_eq!(s.versions("big/").len(), 13, "decom deleted nothing itself");

    // The engine has expired part of it: still pending, with what is left.
    let all = s.versions("big/");
    s.expire(&all[..5]);
    s.resume().code(1);
    let l = lifecycle_artifact(&s);
    assert_eq!(l["outcome"], "pending");
    assert!(l["reason"].as_str().unwrap().contains("remain"), "{l}");
    // A pending certificate does not verify as complete: verify says pending.
    s.env.cosign().ok();
    let v = s.env.verify();
    v.code(1);
    assert!(v.stdout.contains("FAIL status: pending"), "{}", v.stdout);
    assert_eq!(s.lifecycle().len(), 3);

    // Everything expired: the rules go, the certificate completes.
    s.expire(&s.versions("big/"));
    s.abort_uploads("big/");
    s.resume().ok();
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete");
    assert_eq!(lifecycle_artifact(&s)["outcome"], "disposed");
    assert_eq!(c["locations"][0]["absence_proof"]["uploads"], 1);
    assert_eq!(
        format!("{:?}", s.lifecycle()),
        before,
        "only the bucket's own rule is left"
    );
    assert_eq!(s.versions("big-old/").len(), 1);
    assert_eq!(s.versions("logs/").len(), 1);
    s.env.cosign().ok();
    s.env.verify().ok();
}

#[test]
fn a_different_rule_under_decoms_id_is_refused_before_anything() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("big/a.bin", b"x");
    s.env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"s3://{}/big/\"\nmethod = \"lifecycle\"\n",
            s.bucket
        ),
    );
    s.trace().ok();
    s.approve().ok();
    let id = s.env.plan_json()["artifacts"][0]["rules"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let squatter = LifecycleRule::builder()
        .id(&id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .unwrap();
    s.put_lifecycle(vec![squatter]);
    let before = format!("{:?}", s.lifecycle());
    s.execute()
        .code(2)
        .one_line_error("differs from the approved one");
    assert_eq!(format!("{:?}", s.lifecycle()), before);
    assert!(!s.env.path("journal.jsonl").exists());
}

#[test]
fn versions_under_legal_hold_in_a_delegated_folder_are_reported_retained() {
    let s = S3Env::new();
    s.create_bucket(true, true);
    let v = s.put("big/held.bin", b"evidence");
    s.legal_hold("big/held.bin", &v);
    s.env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"s3://{}/big/\"\nmethod = \"lifecycle\"\n",
            s.bucket
        ),
    );
    s.trace().ok();
    s.approve().ok();
    s.execute().code(1);
    let l = lifecycle_artifact(&s);
    assert_eq!(l["outcome"], "retained", "{l}");
    assert!(l["reason"].as_str().unwrap().contains("legal hold"), "{l}");
    assert_eq!(s.versions("big/").len(), 1);
}

/// A bucket with MFA delete never gets decom's lifecycle rules (expiring
/// versions would bypass the MFA a delete needs): exit 2, nothing touched.
/// moto does not keep MfaDelete, so a proxy adds it to GetBucketVersioning.
#[test]
fn a_bucket_with_mfa_delete_is_refused_before_anything() {
    use crate::faults::{FaultProxy, rewrite_body};
    use std::sync::Arc;
    let proxy = FaultProxy::start_with_hook(
        &crate::s3::endpoint(),
        0,
        Arc::new(|line: &str, resp: Vec<u8>| {
            if line.starts_with("GET ") && line.contains("?versioning") {
                rewrite_body(resp, |b| {
                    b.replace(
                        "</VersioningConfiguration>",
                        "<MfaDelete>Enabled</MfaDelete></VersioningConfiguration>",
                    )
                })
            } else {
                resp
            }
        }),
    );
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("big/a.bin", b"x");
    s.env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"s3://{}/big/\"\nmethod = \"lifecycle\"\n",
            s.bucket
        ),
    );
    s.trace_via(&proxy.url).ok();
    s.approve().ok();
    s.execute().code(2).one_line_error("MFA delete is enabled");
    assert!(s.lifecycle().is_empty(), "no rule installed");
    assert!(!s.env.path("journal.jsonl").exists());
    assert_eq!(s.versions("big/").len(), 1);
}
