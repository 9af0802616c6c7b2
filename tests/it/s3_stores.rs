//! Stores that implement less than AWS: a proxy in front of moto answers
//! like Garage does (501 NotImplemented for ListObjectVersions, object lock
//! and replication), and errors reach the user as one line with the
//! store's code and message, never the SDK's Debug dump.

use crate::common::*;
use crate::faults::{FaultProxy, error_answer};
use crate::s3::{S3Env, endpoint};
use std::sync::Arc;

/// Answers what Garage 2.x does not implement with 501 NotImplemented.
fn garage_like() -> FaultProxy {
    FaultProxy::start_with_hook(
        &endpoint(),
        0,
        Arc::new(|line: &str, resp: Vec<u8>| {
            let q = line.split(' ').nth(1).unwrap_or_default();
            let unimplemented = ["?versions", "?object-lock", "?replication", "?encryption"]
                .iter()
                .any(|p| q.contains(p));
            if line.starts_with("GET ") && unimplemented {
                let action = q.split('?').nth(1).unwrap_or_default();
                error_answer(
                    501,
                    "Not Implemented",
                    "NotImplemented",
                    &format!("Unimplemented action: {action}"),
                )
            } else {
                resp
            }
        }),
    )
}

/// The whole lifecycle on a store without versioning: trace falls back to
/// ListObjectsV2 (each object its only null version) and records what the
/// store lacks; execute deletes and proves absence; recheck works the same.
#[test]
fn a_store_without_versioning_is_traced_purged_proven_and_rechecked() {
    let proxy = garage_like();
    let s = S3Env::new();
    s.create_bucket(false, false);
    for i in 0..5 {
        s.put(&format!("m/{i}.bin"), &random_bytes(64));
    }
    s.put("m-old/keep.bin", b"a sibling");
    s.manifest("m", "");
    s.trace_via(&proxy.url).ok();
    let plan = s.env.plan_json();
    assert_eq!(plan["totals"]["s3_versions"], 5);
    let facts = &plan["locations"][0]["facts"];
    assert_eq!(
        facts["unsupported"],
        serde_json::json!(["object lock", "replication", "versioning"])
    );
    assert!(
        plan["residual_risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "s3-store-capabilities"),
        "{}",
        plan["residual_risks"]
    );
    s.approve().ok();
    s.execute().ok();
    assert!(s.versions("m/").is_empty());
    assert_eq!(s.versions("m-old/").len(), 1);
    s.env.cosign().ok();
    s.env.verify().ok();
    s.recheck_via(&proxy.url).ok();
    s.put("m/3.bin", b"back again");
    let r = s.recheck_via(&proxy.url);
    r.code(1);
    assert!(r.stdout.contains("m/3.bin"), "{}", r.stdout);
}

/// Every S3 failure the user sees is one line: location, operation, the
/// store's code and message, never `ServiceError(`/`Unhandled(` dumps. A
/// refused fact (AccessDenied) is an error, never guessed as "no lock".
#[test]
fn s3_errors_are_one_line_with_the_stores_code_and_nothing_is_guessed() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("m/a.bin", b"x");
    s.manifest("m/", "");
    let cases: [(&str, u16, &str, &str); 3] = [
        (
            "?object-lock",
            403,
            "AccessDenied",
            "GetObjectLockConfiguration: AccessDenied",
        ),
        (
            "?versions",
            503,
            "ServiceUnavailable",
            "ListObjectVersions: ServiceUnavailable",
        ),
        ("?replication", 501, "NotImplemented", ""),
    ];
    for (query, status, code, says) in cases {
        let proxy = FaultProxy::start_with_hook(
            &endpoint(),
            0,
            Arc::new(move |line: &str, resp: Vec<u8>| {
                if line.starts_with("GET ") && line.contains(query) {
                    error_answer(status, "Refused", code, "refused by the test proxy")
                } else {
                    resp
                }
            }),
        );
        let r = s.trace_via(&proxy.url);
        for dump in ["ServiceError(", "Unhandled(", "ErrorMetadata", "{ code"] {
            assert!(!r.stderr.contains(dump), "{query}: {}", r.stderr);
        }
        if says.is_empty() {
            // NotImplemented for a feature: recorded, not an error.
            r.ok();
            assert_eq!(
                s.env.plan_json()["locations"][0]["facts"]["unsupported"],
                serde_json::json!(["replication"])
            );
        } else {
            r.code(2).one_line_error(says);
            assert!(
                r.stderr.contains("refused by the test proxy"),
                "{}",
                r.stderr
            );
        }
    }
    // Unreachable endpoint: one line too.
    let r = s.trace_via("http://127.0.0.1:9");
    r.code(2).one_line_error("s3://");
    assert!(!r.stderr.contains("DispatchFailure("), "{}", r.stderr);
}

/// A store without the DeleteObjects batch call (501): decom deletes each
/// object with DeleteObject and proves absence as usual. (The proxy answers
/// 501 after moto has seen the batch, so the DeleteObject calls are counted
/// to show the fallback ran.)
#[test]
fn a_store_without_delete_objects_gets_one_delete_per_object() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let singles = Arc::new(AtomicU64::new(0));
    let seen = singles.clone();
    let proxy = FaultProxy::start_with_hook(
        &endpoint(),
        0,
        Arc::new(move |line: &str, resp: Vec<u8>| {
            if line.starts_with("DELETE ") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            if line.starts_with("POST ") && line.contains("?delete") {
                error_answer(
                    501,
                    "Not Implemented",
                    "NotImplemented",
                    "Unimplemented action: DeleteObjects",
                )
            } else {
                resp
            }
        }),
    );
    let s = S3Env::new();
    s.create_bucket(false, false);
    for i in 0..7 {
        s.put(&format!("m/{i}.bin"), b"x");
    }
    s.manifest("m/", "");
    s.trace_via(&proxy.url).ok();
    s.approve().ok();
    s.execute().ok();
    assert!(s.versions("m/").is_empty());
    assert_eq!(s.env.cert_json()["status"], "complete");
    assert_eq!(
        singles.load(Ordering::SeqCst),
        7,
        "one DeleteObject per object"
    );
}
