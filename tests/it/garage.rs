//! The same disposal against Garage, a real S3-compatible store without
//! versioning or object lock (started by `scripts/garage.sh`, which
//! scripts/test.sh runs; without it the harness starts it itself). These
//! tests never skip: no Garage means they fail.

use crate::common::*;
use crate::faults::{FaultProxy, Hook};
use crate::s3::{S3Env, Store};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

fn garage() -> Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let [ep, id, secret] = crate::s3::started(
                "garage.sh",
                "Garage",
                [
                    "DECOM_TEST_GARAGE_ENDPOINT",
                    "DECOM_TEST_GARAGE_KEY_ID",
                    "DECOM_TEST_GARAGE_SECRET",
                ],
            );
            Store {
                endpoint: ep,
                key_id: id,
                secret,
                region: "garage".into(),
            }
        })
        .clone()
}

fn bucket_with(n: usize) -> S3Env {
    let s = S3Env::on(garage());
    s.create_bucket(false, false);
    for i in 0..n {
        s.put(&format!("m/{i:03}.bin"), &random_bytes(200));
    }
    s.put("m-old/keep.bin", b"a sibling");
    s.manifest("m", "");
    s
}

/// 2100 objects `m/0000.bin`…`m/2099.bin` (three listing pages, in
/// numeric order) and a sibling `m-old/keep.bin`; the location is `m`.
fn three_pages() -> S3Env {
    let s = S3Env::on(garage());
    s.create_bucket(false, false);
    for i in 0..2100 {
        s.put(&format!("m/{i:04}.bin"), b"x");
    }
    s.put("m-old/keep.bin", b"a sibling");
    s.manifest("m", "");
    s
}

fn objects(s: &S3Env, prefix: &str) -> Vec<String> {
    let out =
        s.rt.block_on(
            s.client
                .list_objects_v2()
                .bucket(&s.bucket)
                .prefix(prefix)
                .send(),
        )
        .unwrap();
    out.contents()
        .iter()
        .map(|o| o.key().unwrap().to_string())
        .collect()
}

#[test]
fn garage_trace_execute_prove_and_recheck() {
    let s = bucket_with(12);
    s.trace().ok();
    let plan = s.env.plan_json();
    assert_eq!(plan["totals"]["s3_versions"], 12);
    let unsupported = &plan["locations"][0]["facts"]["unsupported"];
    assert!(
        unsupported
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == "versioning"),
        "{unsupported}"
    );
    s.approve().ok();
    s.execute().ok();
    assert!(objects(&s, "m/").is_empty());
    assert_eq!(objects(&s, "m-old/"), ["m-old/keep.bin"]);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete");
    assert_eq!(c["locations"][0]["absence_proof"]["heads"], 12);
    s.env.cosign().ok();
    s.env.verify().ok();
    s.recheck().ok();
    s.put("m/005.bin", b"back");
    s.recheck().code(1);
}

/// Without versions each key is listed once, so execute decides a page's
/// last key as soon as the page arrives. Over three listing pages, the
/// object at the end of the first page, rewritten after approval, is still
/// judged by its own ETag and stays; every other object goes.
#[test]
fn a_store_without_versions_decides_each_listing_page_whole() {
    let s = three_pages();
    s.trace().ok();
    assert_eq!(s.env.plan_json()["totals"]["s3_versions"], 2100);
    s.approve().ok();
    // The 1000th key ends the first ListObjectsV2 page.
    s.put("m/0999.bin", b"rewritten after approval");
    s.execute().code(1);
    assert_eq!(objects(&s, "m/"), ["m/0999.bin"]);
    assert_eq!(objects(&s, "m-old/"), ["m-old/keep.bin"]);
    let c = s.env.cert_json();
    let arts = c["artifacts"].as_array().unwrap();
    let changed: Vec<_> = arts
        .iter()
        .filter(|a| a["outcome"] == "skipped-changed")
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0]["path"].as_str().unwrap().contains("m/0999.bin"));
    assert!(
        changed[0]["reason"].as_str().unwrap().contains("ETag"),
        "{}",
        changed[0]["reason"]
    );
    let disposed = arts.iter().filter(|a| a["outcome"] == "disposed").count();
    assert_eq!(disposed, 2099);
}

/// `--s3-concurrency` bounds every request in flight, the listing pages
/// that execute asks beside its deletes included: over three pages at a
/// bound of one, the store never sees two requests at once.
#[test]
fn the_request_bound_counts_the_listing_beside_the_deletes() {
    let proxy = FaultProxy::start(&garage().endpoint, 0);
    let in_flight = || proxy.stats.max_in_flight.load(Ordering::SeqCst);
    for n in [1, 3] {
        let s = bucket_with(2100);
        s.trace_via(&proxy.url).ok();
        s.approve().ok();
        proxy.set_fail_permille(0);
        s.execute_with(&["--s3-concurrency", &n.to_string()]).ok();
        let most = in_flight();
        assert!(
            (n.min(2)..=n).contains(&most),
            "--s3-concurrency {n}: {most} in flight: {}",
            proxy.stats.line()
        );
        assert!(objects(&s, "m/").is_empty());
        assert_eq!(s.env.cert_json()["status"], "complete");
    }
}

/// On a store without versions execute splits its listing at planned keys
/// (every 1000th) and asks for the pieces at once (the proxy holds each
/// ListObjectsV2 a moment and sees them waiting together). The pieces
/// still make one whole listing: keys written after approval inside the
/// first piece (so that its first page ends before the piece does) are
/// listed on and left alone, the next piece starts after a planned key
/// that is gone, and every planned key is decided once.
#[test]
fn a_listing_split_at_planned_keys_is_asked_at_once_and_stays_whole() {
    let (now, most, after) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (n, m, a) = (now.clone(), most.clone(), after.clone());
    let hook: Hook = Arc::new(move |line: &str, resp: Vec<u8>| {
        if line.starts_with("GET ") && line.contains("list-type=2") {
            a.fetch_add(u64::from(line.contains("start-after=")), Ordering::SeqCst);
            m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(200));
            n.fetch_sub(1, Ordering::SeqCst);
        }
        resp
    });
    let proxy = FaultProxy::start_with_hook(&garage().endpoint, 0, hook);
    let s = three_pages();
    s.trace_via(&proxy.url).ok();
    s.approve().ok();
    for i in 0..40 {
        s.put(&format!("m/0500-{i:02}.bin"), b"written after approval");
    }
    // The 2000th key: the second piece ends at it, the third starts after it.
    s.delete("m/1999.bin");
    most.store(0, Ordering::SeqCst);
    after.store(0, Ordering::SeqCst);
    s.execute_with(&["--s3-concurrency", "4"]).code(1);
    assert!(
        most.load(Ordering::SeqCst) >= 2,
        "the pieces were asked one after another"
    );
    assert_eq!(
        after.load(Ordering::SeqCst),
        2,
        "pieces starting after m/0999.bin and m/1999.bin"
    );
    let left = objects(&s, "m/");
    assert_eq!(left.len(), 40, "{left:?}");
    assert!(left.iter().all(|k| k.starts_with("m/0500-")), "{left:?}");
    assert_eq!(objects(&s, "m-old/"), ["m-old/keep.bin"]);
    let c = s.env.cert_json();
    let arts = c["artifacts"].as_array().unwrap();
    let outcome = |o: &str| arts.iter().filter(|a| a["outcome"] == o).count();
    assert_eq!(outcome("disposed"), 2099);
    assert_eq!(outcome("skipped-changed"), 1);
    let changed = arts
        .iter()
        .find(|a| a["outcome"] == "skipped-changed")
        .unwrap();
    assert!(
        changed["path"].as_str().unwrap().contains("m/1999.bin"),
        "{changed}"
    );
}

/// One request in five faulted (503, 500, a reset before or after the
/// store acted): the retries see the purge through, the listing's pieces
/// (three, over 2100 objects) included.
#[test]
fn garage_purge_through_faults_completes() {
    let s = bucket_with(2100);
    let proxy = FaultProxy::start(&s.store.endpoint, 0);
    s.trace_via(&proxy.url).ok();
    s.approve().ok();
    proxy.set_fail_permille(200);
    let r = s.execute();
    assert_eq!(r.code, 0, "{}\n{}", proxy.stats.line(), r.stderr);
    assert!(objects(&s, "m/").is_empty());
}

/// archive --to s3:// needs Object Lock; Garage has none: one line, exit 2,
/// nothing written.
#[test]
fn archive_to_a_store_without_object_lock_is_refused() {
    let s = bucket_with(2);
    s.trace().ok();
    s.approve().ok();
    s.execute().ok();
    s.env.cosign().ok();
    let before = objects(&s, "");
    let r = s.run(&[
        "archive",
        "certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
        "--to",
        &format!("s3://{}/evidence", s.bucket),
        "--endpoint-url",
        &s.store.endpoint,
    ]);
    r.code(2).one_line_error("lock");
    for dump in ["ServiceError(", "Unhandled("] {
        assert!(!r.stderr.contains(dump), "{}", r.stderr);
    }
    assert_eq!(objects(&s, ""), before, "nothing written");
}

/// The demo with --s3-endpoint on a store without versioning: its bucket
/// is unversioned, and the whole lifecycle still completes and verifies.
#[test]
fn demo_with_a_garage_endpoint_completes() {
    let store = garage();
    let d = crate::s3::demo_against(&store.endpoint, |c| store.env(c));
    for k in ["s3-version", "s3-upload", "file"] {
        assert!(
            d.kinds.iter().any(|x| x == k),
            "{k} missing from {:?}",
            d.kinds
        );
    }
    assert!(
        !d.kinds.iter().any(|x| x == "s3-delete-marker"),
        "no markers without versioning"
    );
}
