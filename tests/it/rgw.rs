//! The disposal against Ceph's RADOS Gateway (RGW), a real versioned S3
//! store whose Object Lock is enforced and whose lifecycle engine runs
//! (started by `scripts/rgw.sh`, which scripts/test.sh runs; without it the
//! harness starts it itself). A lifecycle "day" there lasts
//! DECOM_TEST_RGW_LC_DAY_SECONDS (10 s). These tests never skip: no RGW
//! means they fail.

use crate::common::*;
use crate::s3::{S3Env, Store};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn rgw() -> Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let [ep, id, secret] = crate::s3::started(
                "rgw.sh",
                "Ceph RGW",
                [
                    "DECOM_TEST_RGW_ENDPOINT",
                    "DECOM_TEST_RGW_ACCESS_KEY",
                    "DECOM_TEST_RGW_SECRET_KEY",
                ],
            );
            Store {
                endpoint: ep,
                key_id: id,
                secret,
                region: "us-east-1".into(),
            }
        })
        .clone()
}

fn on_rgw(versioned: bool, object_lock: bool) -> S3Env {
    let s = S3Env::on(rgw());
    s.create_bucket(versioned, object_lock);
    s
}

impl S3Env {
    /// Put one object locked until `until` in `mode`; its version id.
    fn put_locked(&self, key: &str, mode: ObjectLockMode, until: Duration) -> String {
        let until = std::time::SystemTime::now() + until;
        let r = self
            .rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(ByteStream::from(random_bytes(300)))
                    .object_lock_mode(mode)
                    .object_lock_retain_until_date(DateTime::from(until))
                    .send(),
            )
            .unwrap();
        r.version_id().unwrap().to_string()
    }
}

fn outcome_of<'a>(c: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().contains(key))
        .unwrap_or_else(|| panic!("no artifact {key} in {c}"))
}

/// Every version, delete marker and unfinished multipart upload of a
/// versioned folder on RGW is purged, proven absent by a complete listing
/// and sampled HEADs, and a reappearance fails the recheck; the sibling
/// folders that share the text prefix stay.
#[test]
fn rgw_versioned_folder_purged_with_markers_and_uploads_and_proven_absent() {
    let s = on_rgw(true, false);
    for key in ["model/a.safetensors", "model/b.json", "model/sub/c.bin"] {
        for _ in 0..3 {
            s.put(key, &random_bytes(2000));
        }
    }
    s.delete("model/b.json");
    s.unfinished_upload("model/big.safetensors");
    s.put("model-old/y.bin", b"a sibling that shares the text prefix");
    s.put("other/x.bin", b"outside");
    s.manifest("model", "");
    s.trace().ok();
    let plan = s.env.plan_json();
    let t = &plan["totals"];
    assert_eq!(t["s3_versions"], 9, "{t}");
    assert_eq!(t["s3_delete_markers"], 1, "{t}");
    assert_eq!(t["s3_uploads"], 1, "{t}");
    assert_eq!(plan["locations"][0]["facts"]["versioning"], "Enabled");
    s.approve().ok();
    s.execute().ok();
    assert!(
        s.versions("model/").is_empty(),
        "{:?}",
        s.versions("model/")
    );
    assert_eq!(s.uploads("model/"), 0);
    assert_eq!(s.versions("model-old/").len(), 1);
    assert_eq!(s.versions("other/").len(), 1);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete", "{c}");
    let proof = &c["locations"][0]["absence_proof"];
    assert_eq!(proof["versions"], 10, "9 versions and a marker: {proof}");
    assert_eq!(proof["contradicted"], 0, "{proof}");
    assert_eq!(proof["heads"], 9, "every purged version HEADed: {proof}");
    assert_eq!(proof["uploads"], 1, "{proof}");
    s.env.cosign().ok();
    s.env.verify().ok();
    s.recheck().ok();
    s.put("model/a.safetensors", b"back again");
    let r = s.recheck();
    r.code(1);
    assert!(r.stdout.contains("holds an object again"), "{}", r.stdout);
}

/// RGW enforces Object Lock: versions under COMPLIANCE or GOVERNANCE
/// retention, or a legal hold, are reported retained and never attempted
/// (decom never asks to bypass GOVERNANCE); the free versions go.
#[test]
fn rgw_locked_versions_are_retained_and_governance_is_never_bypassed() {
    let s = on_rgw(true, true);
    let day = Duration::from_secs(86_400);
    s.put_locked("m/compliance.bin", ObjectLockMode::Compliance, day);
    s.put_locked("m/governance.bin", ObjectLockMode::Governance, day);
    let held = s.put("m/held.bin", b"evidence");
    s.legal_hold("m/held.bin", &held);
    s.put("m/free.bin", b"free");
    s.manifest("m/", "");
    s.trace().ok();
    let plan = s.env.plan_json();
    assert_eq!(plan["locations"][0]["facts"]["object_lock"], true, "{plan}");
    s.approve().ok();
    s.execute().code(1);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "incomplete");
    for (key, why) in [
        ("compliance.bin", "retention until"),
        ("governance.bin", "retention until"),
        ("held.bin", "legal hold"),
    ] {
        let a = outcome_of(&c, key);
        assert_eq!(a["outcome"], "retained", "{a}");
        assert!(a["reason"].as_str().unwrap().contains(why), "{a}");
        assert_eq!(s.versions(&format!("m/{key}")).len(), 1, "{key} stays");
    }
    assert_eq!(outcome_of(&c, "free.bin")["outcome"], "disposed");
    assert!(s.versions("m/free.bin").is_empty());
}

/// The lifecycle method end to end with a real engine: execute installs
/// decom's rules beside the bucket's own rule and is pending; RGW's
/// lifecycle thread itself expires every version, delete marker and
/// upload of the folder; `execute --resume` then finds it empty, removes
/// decom's rules (the bucket's own rule stays as it was) and completes.
#[test]
fn rgw_lifecycle_engine_itself_empties_the_delegated_folder() {
    let s = on_rgw(true, false);
    // The bucket's own rule (expiring logs/ after 30 days) stays as it is.
    let before = crate::s3_lifecycle::big_folder_delegated(&s, 4, 500);
    s.trace().ok();
    let a = &s.env.plan_json()["artifacts"][0];
    assert_eq!(a["kind"], "s3-lifecycle");
    assert_eq!(a["versions"], 8);
    assert_eq!(a["delete_markers"], 1);
    assert_eq!(a["uploads"], 1);
    s.approve().ok();
    let r = s.execute();
    r.code(1);
    assert!(r.stderr.contains("PENDING"), "{}", r.stderr);
    assert_eq!(s.lifecycle().len(), 3, "{:?}", s.lifecycle());

    // Nothing but RGW's own lifecycle thread deletes from here on.
    let start = Instant::now();
    let deadline = Duration::from_secs(240);
    let mut last = String::new();
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let r = s.resume();
        if r.code == 0 {
            break;
        }
        last = format!("{}{}", r.stdout, r.stderr);
        assert!(
            start.elapsed() < deadline,
            "RGW's lifecycle engine did not empty the folder in {deadline:?}: {:?} left, {} uploads; last run: {last}",
            s.versions("big/"),
            s.uploads("big/")
        );
    }
    let _ = last;
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete", "{c}");
    assert_eq!(outcome_of(&c, "S3 Lifecycle")["outcome"], "disposed");
    assert!(s.versions("big/").is_empty());
    assert_eq!(s.uploads("big/"), 0);
    assert_eq!(
        format!("{:?}", s.lifecycle()),
        before,
        "only keep-logs is left"
    );
    assert_eq!(s.versions("big-old/").len(), 1);
    assert_eq!(s.versions("logs/").len(), 1);
    s.env.cosign().ok();
    s.env.verify().ok();
    s.recheck().ok();
}

/// RGW keeps no checksums (none listed, none on HEAD): `match = "hash"`
/// says the versions were not examined (`s3-unhashed`) instead of calling
/// the folder clean, and `hash_remote` streams them and finds the copy.
#[test]
fn rgw_without_checksums_hash_match_says_so_and_hash_remote_finds_the_copy() {
    let s = on_rgw(true, false);
    let weights = random_bytes(4096);
    s.put("m/copy.bin", &weights);
    s.put("m/other.bin", b"something else");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&weights));
    let manifest = |extra: &str| {
        s.env.manifest(
            "nist-clear",
            &format!(
                "[[components]]\nname = \"w\"\nsha256 = \"{sha}\"\n[[locations]]\nuri = \"s3://{}/m\"\nmatch = \"hash\"\n{extra}",
                s.bucket
            ),
        )
    };
    manifest("");
    s.trace().ok();
    let plan = s.env.plan_json();
    assert_eq!(plan["artifacts"].as_array().unwrap().len(), 0);
    let risks = plan["residual_risks"].to_string();
    assert!(risks.contains("s3-unhashed"), "{risks}");
    assert!(risks.contains("2 version(s) carry no SHA-256"), "{risks}");
    manifest("[s3]\nhash_remote = true\n");
    s.trace().ok();
    let plan = s.env.plan_json();
    let arts = plan["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 1, "{plan}");
    assert_eq!(arts[0]["key"], "m/copy.bin");
    assert_eq!(arts[0]["matched"]["component"], "w");
    assert!(!plan["residual_risks"].to_string().contains("s3-unhashed"));
}

/// RGW's SSE-KMS keys live in a backend no client reaches, and its endpoint
/// answers every KMS request 405: a `crypto_erase` location is refused at
/// trace with one line that says so (exit 2, no plan), never a crash.
#[test]
fn rgw_crypto_erase_without_a_kms_api_is_refused_in_one_line() {
    let s = on_rgw(true, false);
    s.rt.block_on(
        s.client
            .put_object()
            .bucket(&s.bucket)
            .key("m/enc.bin")
            .body(ByteStream::from(random_bytes(100)))
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .ssekms_key_id("testkey-1")
            .send(),
    )
    .unwrap();
    s.manifest("m", "crypto_erase = true\n");
    s.trace()
        .code(2)
        .one_line_error("the endpoint has no KMS API (HTTP 405)");
    assert!(!s.env.path("plan.json").exists());
}
