//! S3 against a real S3-protocol server: moto in server mode on loopback,
//! started by `scripts/s3-server.sh` (scripts/test.sh starts it and exports
//! DECOM_TEST_S3_ENDPOINT; without it the harness starts it itself). These
//! tests never skip: no server means they fail.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, VersioningConfiguration,
};
use std::process::Command;
use std::sync::OnceLock;

pub fn endpoint() -> String {
    static EP: OnceLock<String> = OnceLock::new();
    EP.get_or_init(|| {
        if let Ok(e) = std::env::var("DECOM_TEST_S3_ENDPOINT") {
            return e;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/s3-server.sh");
        let out = Command::new(script)
            .arg("start")
            .output()
            .expect("run scripts/s3-server.sh");
        let text = String::from_utf8_lossy(&out.stdout);
        let ep = text
            .lines()
            .find_map(|l| l.strip_prefix("export DECOM_TEST_S3_ENDPOINT="))
            .map(str::to_string);
        match ep {
            Some(e) if out.status.success() => e,
            _ => panic!(
                "the S3 test server (moto) could not be started: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    })
    .clone()
}

/// The values a test server's script exports: from the environment when
/// scripts/test.sh started it, else from `scripts/<script> start` run here.
/// A server that cannot start fails the test, naming why.
pub fn started<const N: usize>(script: &str, what: &str, vars: [&str; N]) -> [String; N] {
    if let Some(v) = vars
        .iter()
        .map(|k| std::env::var(k).ok())
        .collect::<Option<Vec<String>>>()
    {
        return v.try_into().expect("N values");
    }
    let path = format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&path).arg("start").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    vars.map(|k| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {k}=")))
            .map(str::to_string)
            .unwrap_or_else(|| {
                panic!(
                    "{what} could not be started ({path} start): {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    })
}

pub struct S3Env {
    pub env: Env,
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    pub bucket: String,
    pub store: Store,
}

/// A real S3-protocol server on loopback and how to sign for it.
#[derive(Clone)]
pub struct Store {
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    pub region: String,
}

impl Store {
    /// moto (versioning, object lock, KMS): any credentials.
    pub fn moto() -> Store {
        Store {
            endpoint: endpoint(),
            key_id: "testing".into(),
            secret: "testing".into(),
            region: "us-east-1".into(),
        }
    }

    /// The credentials and region of this store for a decom process.
    pub fn env(&self, c: &mut Command) {
        aws_env(c);
        c.env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_REGION", &self.region);
    }
}

pub fn aws_env(c: &mut Command) {
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
}

impl S3Env {
    pub fn new() -> S3Env {
        Self::on(Store::moto())
    }

    pub fn on(store: Store) -> S3Env {
        let env = Env::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let creds =
            aws_sdk_s3::config::Credentials::new(&store.key_id, &store.secret, None, None, "tests");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(store.region.clone()))
            .endpoint_url(&store.endpoint)
            .force_path_style(true)
            .credentials_provider(creds)
            .build();
        let bucket = format!("t-{}", &hex::encode(random_bytes(6)));
        S3Env {
            env,
            rt,
            client: Client::from_conf(conf),
            bucket,
            store,
        }
    }

    pub fn create_bucket(&self, versioned: bool, object_lock: bool) {
        let c = &self.client;
        self.rt
            .block_on(
                c.create_bucket()
                    .bucket(&self.bucket)
                    .object_lock_enabled_for_bucket(object_lock)
                    .send(),
            )
            .unwrap();
        if versioned {
            self.set_versioning(BucketVersioningStatus::Enabled);
        }
    }

    pub fn set_versioning(&self, s: BucketVersioningStatus) {
        self.rt
            .block_on(
                self.client
                    .put_bucket_versioning()
                    .bucket(&self.bucket)
                    .versioning_configuration(VersioningConfiguration::builder().status(s).build())
                    .send(),
            )
            .unwrap();
    }

    pub fn put(&self, key: &str, body: &[u8]) -> String {
        let r = self
            .rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(ByteStream::from(body.to_vec()))
                    .send(),
            )
            .unwrap();
        r.version_id().unwrap_or("null").to_string()
    }

    /// Put a legal hold on one version.
    pub fn legal_hold(&self, key: &str, version: &str) {
        self.rt
            .block_on(
                self.client
                    .put_object_legal_hold()
                    .bucket(&self.bucket)
                    .key(key)
                    .version_id(version)
                    .legal_hold(
                        ObjectLockLegalHold::builder()
                            .status(ObjectLockLegalHoldStatus::On)
                            .build(),
                    )
                    .send(),
            )
            .unwrap();
    }

    /// `decom verify certificate.json --recheck` against this store.
    pub fn recheck(&self) -> Run {
        let ep = self.store.endpoint.clone();
        self.recheck_via(&ep)
    }

    pub fn recheck_via(&self, endpoint: &str) -> Run {
        let mut args = RECHECK.to_vec();
        args.extend(["--endpoint-url", endpoint]);
        self.run(&args)
    }

    pub fn delete(&self, key: &str) {
        self.rt
            .block_on(
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send(),
            )
            .unwrap();
    }

    /// Start a multipart upload with one part and leave it unfinished.
    pub fn unfinished_upload(&self, key: &str) -> String {
        let c = &self.client;
        let up = self
            .rt
            .block_on(
                c.create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .send(),
            )
            .unwrap();
        let id = up.upload_id().unwrap().to_string();
        self.rt
            .block_on(
                c.upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(1)
                    .body(ByteStream::from(random_bytes(6 << 20)))
                    .send(),
            )
            .unwrap();
        let _ = CompletedMultipartUpload::builder();
        id
    }

    /// (key, version id, is delete marker) under a prefix.
    pub fn versions(&self, prefix: &str) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
        loop {
            let p = self
                .rt
                .block_on(
                    self.client
                        .list_object_versions()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_key_marker(km.clone())
                        .set_version_id_marker(vm.clone())
                        .send(),
                )
                .unwrap();
            out.extend(p.versions().iter().map(|v| {
                (
                    v.key().unwrap().to_string(),
                    v.version_id().unwrap_or("null").to_string(),
                    false,
                )
            }));
            out.extend(p.delete_markers().iter().map(|v| {
                (
                    v.key().unwrap().to_string(),
                    v.version_id().unwrap_or("null").to_string(),
                    true,
                )
            }));
            if !p.is_truncated().unwrap_or(false) {
                return out;
            }
            km = p.next_key_marker().map(str::to_string);
            vm = p.next_version_id_marker().map(str::to_string);
        }
    }

    pub fn uploads(&self, prefix: &str) -> usize {
        self.rt
            .block_on(
                self.client
                    .list_multipart_uploads()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .send(),
            )
            .unwrap()
            .uploads()
            .len()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut c = self.env.command();
        self.store.env(&mut c);
        Run::from(c.args(args).output().unwrap())
    }

    pub fn manifest(&self, prefix: &str, extra: &str) {
        self.env.manifest(
            "nist-clear",
            &format!(
                "[[locations]]\nuri = \"s3://{}/{prefix}\"\n{extra}",
                self.bucket
            ),
        );
    }

    pub fn trace(&self) -> Run {
        let ep = self.store.endpoint.clone();
        self.trace_via(&ep)
    }

    pub fn trace_via(&self, endpoint: &str) -> Run {
        self.run(&[
            "trace",
            "decom.toml",
            "-o",
            "plan.json",
            "--force",
            "--endpoint-url",
            endpoint,
        ])
    }

    pub fn approve(&self) -> Run {
        self.env.approve()
    }

    pub fn execute(&self) -> Run {
        self.execute_with(&[])
    }

    pub fn resume(&self) -> Run {
        self.execute_with(&["--resume"])
    }

    pub fn execute_with(&self, extra: &[&str]) -> Run {
        let mut a: Vec<&str> = Vec::new();
        let args = self.env.execute_args();
        a.extend(args.iter().map(String::as_str));
        a.extend(extra);
        self.run(&a)
    }
}

#[test]
fn versioned_bucket_every_version_marker_and_upload_is_purged() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for key in ["model/a.safetensors", "model/b.json", "model/sub/c.bin"] {
        for _ in 0..3 {
            s.put(key, &random_bytes(2000));
        }
    }
    s.delete("model/b.json"); // a delete marker
    s.unfinished_upload("model/big.safetensors");
    s.put("other/x.bin", b"outside 1");
    s.put("other/x.bin", b"outside 2");
    s.put("model-old/y.bin", b"outside, shares the text prefix");
    s.manifest("model/", "");
    s.trace().ok();
    let t = &s.env.plan_json()["totals"];
    assert_eq!(t["s3_versions"], 9);
    assert_eq!(t["s3_delete_markers"], 1);
    assert_eq!(t["s3_uploads"], 1);
    s.approve().ok();
    s.execute().ok();
    assert!(
        s.versions("model/").is_empty(),
        "{:?}",
        s.versions("model/")
    );
    assert_eq!(s.uploads("model/"), 0);
    assert_eq!(
        s.versions("other/").len(),
        2,
        "keys outside the prefix untouched"
    );
    assert_eq!(s.versions("model-old/").len(), 1);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete");
    for a in c["artifacts"].as_array().unwrap() {
        assert_eq!(a["outcome"], "disposed");
        assert_eq!(a["sanitization"]["category"], "logical");
    }
    s.env.cosign().ok();
    s.env.verify().ok();
}

#[test]
fn unversioned_bucket_null_versions_are_purged() {
    let s = S3Env::new();
    s.create_bucket(false, false);
    for i in 0..5 {
        s.put(&format!("m/{i}.bin"), &random_bytes(100));
    }
    s.manifest("m/", "");
    s.trace().ok();
    let plan = s.env.plan_json();
    assert_eq!(plan["locations"][0]["facts"]["versioning"], "Never enabled");
    assert!(
        plan["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["version_id"] == "null")
    );
    s.approve().ok();
    s.execute().ok();
    assert!(s.versions("m/").is_empty());
}

#[test]
fn versioning_suspended_bucket_null_and_real_versions_are_purged() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("m/a.bin", b"v1");
    s.put("m/a.bin", b"v2");
    s.set_versioning(BucketVersioningStatus::Suspended);
    s.put("m/a.bin", b"null version");
    s.manifest("m/", "");
    s.trace().ok();
    let plan = s.env.plan_json();
    // Real S3 keeps v1 and v2 beside the null version; moto 5.1 drops them
    // on the suspended write. Either way the plan holds exactly what is listed.
    let listed = s.versions("m/");
    assert_eq!(plan["totals"]["s3_versions"], listed.len() as u64);
    assert!(listed.iter().any(|(_, v, _)| v == "null"));
    assert!(
        plan["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["version_id"] == "null")
    );
    let risks: Vec<_> = plan["residual_risks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        risks.contains(&"s3-versioning-suspended".to_string()),
        "{risks:?}"
    );
    s.approve().ok();
    s.execute().ok();
    assert!(s.versions("m/").is_empty());
}

#[test]
fn object_replaced_after_approval_is_skipped_and_stays() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("m/a.bin", b"one");
    s.put("m/b.bin", b"two");
    s.manifest("m/", "");
    s.trace().ok();
    s.approve().ok();
    let new = s.put("m/a.bin", b"replaced after approval");
    s.execute().code(1);
    let left = s.versions("m/a.bin");
    assert_eq!(
        left.len(),
        2,
        "the replaced key keeps every version: {left:?}"
    );
    assert!(left.iter().any(|(_, v, _)| *v == new));
    assert!(s.versions("m/b.bin").is_empty());
    let c = s.env.cert_json();
    assert_eq!(c["status"], "incomplete");
    let a = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().contains("m/a.bin"))
        .unwrap()
        .clone();
    assert_eq!(a["outcome"], "skipped-changed");
}

#[test]
fn object_under_legal_hold_is_retained_not_disposed() {
    let s = S3Env::new();
    s.create_bucket(true, true);
    let held = s.put("m/held.bin", b"evidence");
    s.put("m/free.bin", b"free");
    s.legal_hold("m/held.bin", &held);
    s.manifest("m/", "");
    s.trace().ok();
    let plan = s.env.plan_json();
    let h = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "m/held.bin")
        .unwrap()
        .clone();
    assert_eq!(h["legal_hold"], true);
    s.approve().ok();
    s.execute().code(1);
    let c = s.env.cert_json();
    let a = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().contains("held.bin"))
        .unwrap()
        .clone();
    assert_eq!(a["outcome"], "retained");
    assert_eq!(c["status"], "incomplete");
    assert_eq!(s.versions("m/held.bin").len(), 1, "the held version stays");
    assert!(s.versions("m/free.bin").is_empty());
}

#[test]
fn pagination_and_batching_over_many_versions() {
    let n: usize = std::env::var("DECOM_TEST_S3_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2600);
    let s = S3Env::new();
    s.create_bucket(true, false);
    let keys: Vec<String> = (0..n / 2).map(|i| format!("m/shard-{i:05}.bin")).collect();
    s.rt.block_on(async {
        use futures_util::StreamExt;
        // Keys in parallel, the two versions of a key one after the other:
        // moto can lose one of two concurrent PUTs to the same key.
        futures_util::stream::iter(keys.iter().cloned())
            .map(|k| {
                let c = s.client.clone();
                let b = s.bucket.clone();
                async move {
                    for _ in 0..2 {
                        c.put_object()
                            .bucket(&b)
                            .key(&k)
                            .body(ByteStream::from_static(b"x"))
                            .send()
                            .await
                            .unwrap();
                    }
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
    });
    assert_eq!(s.versions("m/").len(), n / 2 * 2);
    s.manifest("m/", "");
    s.trace().ok();
    assert_eq!(
        s.env.plan_json()["totals"]["s3_versions"],
        (n / 2 * 2) as u64
    );
    s.approve().ok();
    s.execute().ok();
    assert!(s.versions("m/").is_empty());
}

#[test]
fn bad_uri_missing_bucket_and_missing_credentials_are_input_errors() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("m/a.bin", b"keep me");
    s.env.manifest(
        "nist-clear",
        "[[locations]]\nuri = \"s3://Bad_Bucket/m/\"\n",
    );
    s.trace().code(2).one_line_error("not a valid bucket name");
    s.env.manifest(
        "nist-clear",
        "[[locations]]\nuri = \"s3://no-such-bucket-here/m/\"\n",
    );
    s.trace().code(2).one_line_error("does not exist");
    s.manifest("m/", "");
    let mut c = s.env.command();
    aws_env(&mut c);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent");
    let o = c
        .args([
            "trace",
            "decom.toml",
            "-o",
            "plan.json",
            "--force",
            "--endpoint-url",
            &endpoint(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert!(err.to_lowercase().contains("credential"), "{err}");
    assert_eq!(s.versions("m/").len(), 1, "nothing deleted");
}

/// Run the demo against `endpoint` with the store's credentials (`env`);
/// it must succeed and its certificate be complete.
pub fn demo_against(endpoint: &str, env: impl FnOnce(&mut Command)) -> Demo {
    run_demo(&["--s3-endpoint", endpoint], env)
}

#[test]
fn demo_with_an_s3_endpoint_purges_its_bucket_and_verifies() {
    let d = demo_against(&endpoint(), aws_env);
    for k in [
        "s3-version",
        "s3-delete-marker",
        "s3-upload",
        "file",
        "symlink",
    ] {
        assert!(
            d.kinds.iter().any(|x| x == k),
            "{k} missing from {:?}",
            d.kinds
        );
    }
    assert!(
        String::from_utf8_lossy(&d.out.stderr).contains("verified: complete")
            || String::from_utf8_lossy(&d.out.stdout).contains("verified: complete")
    );
}

#[test]
fn hash_match_on_s3_streams_unchecksummed_versions_with_hash_remote() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    let weights = random_bytes(300_000);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&weights));
    s.put("data/copy-of-weights.bin", &weights);
    s.put("data/other.bin", &random_bytes(300_000));
    // A second component known only by SHA-512 cannot be matched in S3
    // (checksums and streamed hashes are SHA-256): the plan says so.
    let comps = format!(
        "match = \"hash\"\n[[components]]\nname = \"weights\"\nsha256 = \"{sha}\"\n[[components]]\nname = \"tokenizer\"\nsha512 = \"{}\"\n",
        "a".repeat(128)
    );
    s.manifest("data/", &comps);
    // Without hash_remote the versions carry no checksum: nothing matches, and the plan says why.
    s.trace().ok();
    let not_in_s3 = s.env.risks("components-not-searched");
    assert_eq!(not_in_s3.len(), 1, "{not_in_s3:?}");
    assert!(not_in_s3[0].1.ends_with(": tokenizer"), "{not_in_s3:?}");
    let plan = s.env.plan_json();
    assert_eq!(plan["totals"]["s3_versions"], 0);
    assert!(
        plan["residual_risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "s3-unhashed")
    );
    // With --hash-remote they are streamed and hashed: only the copy is planned.
    let r = s.run(&[
        "trace",
        "decom.toml",
        "-o",
        "plan.json",
        "--force",
        "--endpoint-url",
        &endpoint(),
        "--hash-remote",
    ]);
    r.ok();
    let plan = s.env.plan_json();
    let arts = plan["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 1, "{arts:?}");
    assert_eq!(arts[0]["key"], "data/copy-of-weights.bin");
    assert_eq!(arts[0]["sha256"], sha.as_str());
    assert_eq!(arts[0]["sha256_source"], "streamed");
    assert_eq!(arts[0]["matched"]["component"], "weights");
    s.approve().ok();
    s.execute().ok();
    assert!(s.versions("data/copy-of-weights.bin").is_empty());
    assert_eq!(s.versions("data/other.bin").len(), 1);
}
