//! What an S3 location covers and how its purge is proven: folder
//! semantics (`s3://b/fd` never reaches `fd-old` or `fd-v2/`), the absence
//! proof by a complete listing plus HEAD by version id (sampled, or each),
//! and a proof that fails when the store contradicts its own listing.

use crate::common::*;
use crate::faults::{FaultProxy, raw_put, rewrite_body};
use crate::s3::{S3Env, endpoint};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn keys_of(v: &[(String, String, bool)]) -> Vec<String> {
    let mut k: Vec<String> = v.iter().map(|x| x.0.clone()).collect();
    k.sort();
    k.dedup();
    k
}

/// Regression: a location was a raw string prefix, so retiring
/// `s3://models/fraud-detector` also purged `fraud-detector-v2/` and
/// `fraud-detector-old`. Siblings sharing letters, with versions, a delete
/// marker and an unfinished upload of their own, must stay untouched.
#[test]
fn a_location_is_a_folder_and_siblings_sharing_letters_stay() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for key in [
        "fraud-detector",
        "fraud-detector/model.bin",
        "fraud-detector/sub/x.json",
    ] {
        s.put(key, &random_bytes(300));
        s.put(key, &random_bytes(300));
    }
    let siblings = [
        "fraud-detector-v2/model.bin",
        "fraud-detector-v2",
        "fraud-detector-old",
        "fraud-detectorx/a.bin",
        "fraud-detecto",
    ];
    for key in siblings {
        s.put(key, &random_bytes(100));
        s.put(key, &random_bytes(100));
    }
    s.delete("fraud-detector-v2/model.bin");
    s.unfinished_upload("fraud-detector-v2/big.bin");
    s.unfinished_upload("fraud-detector/big.bin");
    let before = s.versions("fraud-detector-");
    s.manifest("fraud-detector", "");
    s.trace().ok();
    let plan = s.env.plan_json();
    let planned: std::collections::BTreeSet<&str> = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned.into_iter().collect::<Vec<_>>(),
        [
            "fraud-detector",
            "fraud-detector/big.bin",
            "fraud-detector/model.bin",
            "fraud-detector/sub/x.json"
        ]
    );
    assert_eq!(plan["totals"]["s3_versions"], 6);
    assert_eq!(plan["totals"]["s3_uploads"], 1);
    assert_eq!(
        plan["locations"][0]["covers"],
        "the key fraud-detector and every key under fraud-detector/ (never fraud-detector-… or fraud-detectorx… siblings)"
    );
    let show = s.env.run(&["show", "plan.json"]);
    show.ok();
    assert!(
        show.stdout
            .contains("covers the key fraud-detector and every key under fraud-detector/"),
        "{}",
        show.stdout
    );
    s.approve().ok();
    s.execute().ok();
    assert!(keys_of(&s.versions("fraud-detector/")).is_empty());
    assert!(!keys_of(&s.versions("fraud-detector")).contains(&"fraud-detector".to_string()));
    assert_eq!(s.versions("fraud-detector-"), before, "siblings untouched");
    assert_eq!(s.versions("fraud-detectorx/").len(), 2);
    let exact = |k: &str| s.versions(k).iter().filter(|v| v.0 == k).count();
    assert_eq!(exact("fraud-detecto"), 2, "a shorter key is no part of it");
    assert_eq!(exact("fraud-detector"), 0, "the key itself is part of it");
    assert_eq!(s.uploads("fraud-detector-v2/"), 1);
    assert_eq!(s.uploads("fraud-detector/"), 0);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete");
    let proof = &c["locations"][0]["absence_proof"];
    assert_eq!(proof["mode"], "sample");
    assert_eq!(proof["versions"], 6);
    assert_eq!(
        proof["heads"], 6,
        "fewer versions than the sample: all HEADed"
    );
    assert_eq!(proof["contradicted"], 0);
    assert_eq!(proof["uploads"], 1);
    // Two version listings (the key itself, the folder) and two upload listings.
    assert_eq!(proof["listing_pages"], 4);
    s.env.cosign().ok();
    s.env.verify().ok();
    // A new object in a sibling is not a reappearance; one in the folder is.
    s.put("fraud-detector-v2/new.bin", b"sibling");
    s.recheck().ok();
    s.put("fraud-detector/model.bin", b"back");
    s.recheck().code(1);
}

/// A plan signed by the custodian but listing a sibling's key under the
/// location is refused before anything is touched.
#[test]
fn a_plan_that_reaches_into_a_sibling_prefix_is_refused() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("fd/a.bin", b"mine");
    let victim = s.put("fd-old/a.bin", b"not mine");
    s.manifest("fd", "");
    s.trace().ok();
    let mut plan = s.env.plan_json();
    let a = &mut plan["artifacts"][0];
    a["key"] = "fd-old/a.bin".into();
    a["version_id"] = victim.clone().into();
    crate::attacks::custodian_signs(&s.env, &serde_json::to_vec_pretty(&plan).unwrap());
    let r = s.execute();
    r.code(2).one_line_error("not under its location");
    assert_eq!(s.versions("fd-old/").len(), 1);
    assert!(!s.env.path("journal.jsonl").exists());
}

/// `[s3] verify = "each"` HEADs every purged version by its id.
#[test]
fn each_mode_heads_every_purged_version() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..70 {
        s.put(&format!("m/{i:02}.bin"), b"x");
    }
    s.manifest("m/", "[s3]\nverify = \"each\"\n");
    s.trace().ok();
    s.approve().ok();
    let show = s.env.run(&["show", "plan.json"]);
    assert!(
        show.stdout
            .contains("HEAD by version id of every purged version"),
        "{}",
        show.stdout
    );
    s.execute().ok();
    let proof = &s.env.cert_json()["locations"][0]["absence_proof"];
    assert_eq!(proof["mode"], "each");
    assert_eq!(proof["heads"], 70);
    // The default sample is smaller than 70: sample mode HEADs 64.
    let t = S3Env::new();
    t.create_bucket(true, false);
    for i in 0..70 {
        t.put(&format!("m/{i:02}.bin"), b"x");
    }
    t.manifest("m/", "");
    t.trace().ok();
    t.approve().ok();
    t.execute().ok();
    let proof = &t.env.cert_json()["locations"][0]["absence_proof"];
    assert_eq!(proof["mode"], "sample");
    assert_eq!(proof["heads"], 64);
    let a = &t.env.cert_json()["artifacts"][0];
    assert!(
        a["verification"]["method"]
            .as_str()
            .unwrap()
            .contains("random sample"),
        "{a}"
    );
}

/// The proof must be able to fail, whatever the order of its requests:
/// right after decom's delete the test writes `m/1.bin` again, and hides it
/// from every later listing (a stale listing, as on a store whose listings
/// lag its writes). The HEAD by version id finds the object, the listing is
/// not trusted, the artifact is not disposed, the certificate says so, and
/// execute exits 1.
#[test]
fn sampled_head_catches_a_version_a_stale_listing_hides() {
    let s = S3Env::new();
    s.create_bucket(false, false); // null versions: a new PUT brings "null" back
    for i in 0..4 {
        s.put(&format!("m/{i}.bin"), &random_bytes(50));
    }
    s.manifest("m/", "");
    s.trace().ok();
    s.approve().ok();
    let deleted = Arc::new(AtomicBool::new(false));
    let hidden = Arc::new(AtomicBool::new(false));
    let (bucket, up) = (s.bucket.clone(), endpoint());
    let (d, h) = (deleted.clone(), hidden.clone());
    let proxy = FaultProxy::start_with_hook(
        &endpoint(),
        0,
        Arc::new(move |line: &str, resp: Vec<u8>| {
            if line.starts_with("POST ") && line.contains("?delete") {
                raw_put(&up, &bucket, "m/1.bin", b"written behind the listing");
                d.store(true, Ordering::SeqCst);
                resp
            } else if line.starts_with("GET ")
                && line.contains("versions")
                && d.load(Ordering::SeqCst)
            {
                rewrite_body(resp, |body| {
                    let mut kept = String::new();
                    let mut rest = body;
                    while let Some(i) = rest.find("<Version>") {
                        let j = i + rest[i..].find("</Version>").unwrap() + "</Version>".len();
                        kept.push_str(&rest[..i]);
                        if rest[i..j].contains("<Key>m/1.bin</Key>") {
                            h.store(true, Ordering::SeqCst);
                        } else {
                            kept.push_str(&rest[i..j]);
                        }
                        rest = &rest[j..];
                    }
                    kept + rest
                })
            } else {
                resp
            }
        }),
    );
    through(&s, &proxy);
    let r = s.execute();
    r.code(1);
    assert!(
        hidden.load(Ordering::SeqCst),
        "the listing never showed m/1.bin"
    );
    let c = s.env.cert_json();
    assert_eq!(c["status"], "incomplete");
    let a = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "m/1.bin" || a["path"].as_str().unwrap().contains("m/1.bin"))
        .unwrap();
    assert_eq!(a["outcome"], "failed", "{a}");
    assert!(
        a["reason"].as_str().unwrap().contains("HEAD still finds"),
        "{a}"
    );
    assert_eq!(c["locations"][0]["absence_proof"]["contradicted"], 1);
    // The other three were HEADed too (sample larger than the location).
    assert_eq!(c["totals"]["by_outcome"]["disposed"]["artifacts"], 3);
}

/// A sampled HEAD that gets no answer through all of the SDK's attempts
/// (here: HTTP 500 six times) says nothing about the listing yet: it is
/// asked once more, answers 404, and the purge completes with no
/// contradiction. Without that second ask the whole location would fail.
#[test]
fn a_sampled_head_without_an_answer_is_asked_once_more() {
    use std::sync::atomic::AtomicU32;
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..3 {
        s.put(&format!("m/{i}.bin"), &random_bytes(50));
    }
    s.manifest("m/", "");
    s.trace().ok();
    s.approve().ok();
    let heads = Arc::new(AtomicU32::new(0));
    let h = heads.clone();
    let proxy = FaultProxy::start_with_hook(
        &endpoint(),
        0,
        Arc::new(move |line: &str, resp: Vec<u8>| {
            if line.starts_with("HEAD ")
                && line.contains("/m/1.bin")
                && h.fetch_add(1, Ordering::SeqCst) < decom::store::s3::MAX_ATTEMPTS
            {
                crate::faults::error_answer(500, "Internal Server Error", "InternalError", "down")
            } else {
                resp
            }
        }),
    );
    through(&s, &proxy);
    s.execute().ok();
    assert_eq!(
        heads.load(Ordering::SeqCst),
        decom::store::s3::MAX_ATTEMPTS + 1,
        "every SDK attempt, then decom's second ask"
    );
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete");
    assert_eq!(c["locations"][0]["absence_proof"]["contradicted"], 0);
    assert!(s.versions("m/").is_empty());
}

#[test]
fn bad_verify_settings_are_input_errors_and_touch_nothing() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    s.put("m/a.bin", b"x");
    for (extra, says) in [
        ("[s3]\nverify = \"sometimes\"\n", "sometimes"),
        ("[s3]\nverify_sample = 0\n", "verify_sample 0"),
        ("[s3]\nverify = 3\n", "verify"),
    ] {
        s.manifest("m/", extra);
        s.trace().code(2).one_line_error(says);
        assert!(!s.env.plan().exists(), "no plan from a bad manifest");
    }
    assert_eq!(s.versions("m/").len(), 1);
}

/// Each entry of a DeleteObjects answer counts: a legal hold placed after
/// approval makes S3 refuse that one version inside a successful request.
/// That version fails with S3's own code; the rest of the batch is disposed.
#[test]
fn a_per_entry_delete_objects_error_fails_that_version_only() {
    let s = S3Env::new();
    s.create_bucket(true, true);
    let held = s.put("m/held.bin", b"evidence");
    for i in 0..3 {
        s.put(&format!("m/free-{i}.bin"), b"free");
    }
    s.manifest("m/", "");
    s.trace().ok();
    s.approve().ok();
    s.legal_hold("m/held.bin", &held);
    s.execute().code(1);
    let c = s.env.cert_json();
    let a = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().contains("held.bin"))
        .unwrap()
        .clone();
    assert_eq!(a["outcome"], "failed", "{a}");
    // AWS answers AccessDenied for the entry; moto leaves it out of the
    // answer altogether, which decom also refuses to take as deleted.
    let why = a["reason"].as_str().unwrap();
    assert!(
        why.contains("DeleteObjects refused it: AccessDenied")
            || why.contains("DeleteObjects answered neither Deleted nor Error for it"),
        "{why}"
    );
    assert_eq!(c["totals"]["by_outcome"]["disposed"]["artifacts"], 3);
    assert_eq!(s.versions("m/held.bin").len(), 1, "the held version stays");
}

/// Route the approved plan's S3 location through `proxy` (the custodian
/// approves the endpoint, so the redirected plan is approved again).
/// A versioned bucket with `n` objects `m/0.bin`… (and an unfinished
/// upload of `m/big.bin` when `upload`), the folder `m/` traced and approved.
fn approved_folder(n: usize, upload: bool) -> S3Env {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..n {
        s.put(&format!("m/{i}.bin"), b"x");
    }
    if upload {
        s.unfinished_upload("m/big.bin");
    }
    s.manifest("m/", "");
    s.trace().ok();
    s.approve().ok();
    s
}

fn through(s: &S3Env, proxy: &FaultProxy) {
    let mut plan = s.env.plan_json();
    plan["locations"][0]["endpoint"]["endpoint_url"] = proxy.url.clone().into();
    crate::attacks::custodian_signs(&s.env, &serde_json::to_vec_pretty(&plan).unwrap());
}

/// An `<Error>` entry inside a successful DeleteObjects answer is that
/// version's failure, even though the request as a whole succeeded; the
/// other entries are disposed. A resume proves the failed one gone (S3 had
/// in fact deleted it here) and completes.
#[test]
fn an_error_entry_in_a_delete_objects_answer_fails_that_version() {
    let s = approved_folder(4, false);
    let proxy = FaultProxy::start_with_hook(
        &endpoint(),
        0,
        Arc::new(|line: &str, resp: Vec<u8>| {
            if !(line.starts_with("POST ") && line.contains("?delete")) {
                return resp;
            }
            rewrite_body(resp, |body| {
                // The entry of m/2.bin becomes an error.
                let start = body
                    .find("<Deleted><Key>m/2.bin</Key>")
                    .expect("m/2.bin deleted");
                let end = start + body[start..].find("</Deleted>").unwrap() + "</Deleted>".len();
                let entry = &body[start..end];
                let inner = entry
                    .trim_start_matches("<Deleted>")
                    .trim_end_matches("</Deleted>");
                let inner = inner.split("<DeleteMarker>").next().unwrap().to_string();
                format!(
                    "{}<Error>{inner}<Code>InternalError</Code><Message>injected entry error</Message></Error>{}",
                    &body[..start],
                    &body[end..]
                )
            })
        }),
    );
    through(&s, &proxy);
    s.execute().code(1);
    let c = s.env.cert_json();
    let failed: Vec<&serde_json::Value> = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] != "disposed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0]["path"].as_str().unwrap().contains("m/2.bin"));
    assert_eq!(
        failed[0]["reason"],
        "DeleteObjects refused it: InternalError: injected entry error"
    );
    // The version is in fact gone: the resume proves it and completes.
    s.resume().ok();
    assert_eq!(s.env.cert_json()["status"], "complete");
}

/// A folder's upload listing runs beside its version listing. When it
/// fails (an access error, not retried), the planned upload fails as not
/// re-identified and stays; the versions, which never depend on it, are
/// purged and proven; the run is exit 1 (destruction began), never complete.
#[test]
fn a_failed_upload_listing_fails_the_upload_and_the_versions_still_go() {
    let s = approved_folder(3, true);
    let proxy = FaultProxy::start_with_hook(
        &endpoint(),
        0,
        Arc::new(|line: &str, resp: Vec<u8>| {
            if !(line.starts_with("GET ") && line.contains("?uploads")) {
                return resp;
            }
            let body = "<Error><Code>AccessDenied</Code><Message>injected</Message></Error>";
            format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }),
    );
    through(&s, &proxy);
    s.execute().code(1);
    assert!(s.versions("m/").is_empty(), "{:?}", s.versions("m/"));
    assert_eq!(s.uploads("m/"), 1);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "incomplete");
    let arts = c["artifacts"].as_array().unwrap();
    let not_disposed: Vec<&serde_json::Value> =
        arts.iter().filter(|a| a["outcome"] != "disposed").collect();
    assert_eq!(not_disposed.len(), 1, "{not_disposed:?}");
    assert!(
        not_disposed[0]["path"]
            .as_str()
            .unwrap()
            .contains("uploadId=")
    );
    assert_eq!(not_disposed[0]["outcome"], "failed");
    assert!(
        not_disposed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot re-identify: "),
        "{}",
        not_disposed[0]["reason"]
    );
    assert_eq!(arts.len(), 4);
}

/// Trace HEADs a version only where a fact needs it (it used to send one
/// HEAD per version: 2,001 for 2,000). Counted at a proxy: a plain
/// versioned bucket needs none; `inspect = "each"` HEADs every version and
/// records encryption; a bucket with Object Lock HEADs for the lock state.
/// Each planned version says where its facts came from.
#[test]
fn trace_heads_a_version_only_where_a_fact_needs_it() {
    let proxy = FaultProxy::start(&endpoint(), 0);
    let count = |s: &S3Env, extra: &str| {
        s.manifest("m/", extra);
        proxy.set_fail_permille(0);
        s.trace_via(&proxy.url).ok();
        let heads = proxy.stats.heads.load(Ordering::Relaxed);
        let plan = s.env.plan_json();
        let from: std::collections::BTreeSet<String> = plan["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "s3-version")
            .map(|a| a["facts_from"].as_str().unwrap().to_string())
            .collect();
        (heads, from, plan)
    };
    let s = S3Env::new();
    s.create_bucket(true, false);
    // One object encrypted on request (SSE-S3), so that a HEAD has an
    // encryption to report.
    s.rt.block_on(
        s.client
            .put_object()
            .bucket(&s.bucket)
            .key("m/00-encrypted.bin")
            .body(b"secret".to_vec().into())
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .send(),
    )
    .unwrap();
    for i in 0..30 {
        s.put(&format!("m/{i:02}.bin"), b"x");
        s.put(&format!("m/{i:02}.bin"), b"y");
    }
    let (heads, from, plan) = count(&s, "");
    assert_eq!(heads, 0, "no fact needed a HEAD");
    assert_eq!(from.into_iter().collect::<Vec<_>>(), ["listing"]);
    assert_eq!(plan["totals"]["s3_versions"], 61);
    assert!(
        plan["artifacts"][0].get("sse").is_none(),
        "not recorded from a listing"
    );
    let (heads, from, plan) = count(&s, "[s3]\ninspect = \"each\"\n");
    assert_eq!(heads, 61);
    assert_eq!(from.into_iter().collect::<Vec<_>>(), ["head"]);
    assert_eq!(plan["artifacts"][0]["key"], "m/00-encrypted.bin");
    assert_eq!(plan["artifacts"][0]["sse"], "AES256");
    // Object Lock: the lock state needs a HEAD.
    let t = S3Env::new();
    t.create_bucket(true, true);
    for i in 0..5 {
        t.put(&format!("m/{i}.bin"), b"x");
    }
    let (heads, from, _) = count(&t, "");
    assert_eq!(heads, 5);
    assert_eq!(from.into_iter().collect::<Vec<_>>(), ["head"]);
}

/// The purge decides keys while the listing goes on: a key is decided only
/// once a page has ended after it. Here one key's versions straddle the
/// first page boundary (ListObjectVersions answers 1,000 entries a page)
/// and delete markers follow the versions of their page: every version and
/// marker is still re-identified against all of its key's entries, and
/// all of it is purged.
#[test]
fn keys_straddling_listing_pages_are_decided_whole() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..996 {
        s.put(&format!("data/a{i:04}"), b"x");
    }
    // Entries 997-1,004 of the listing: the page ends inside this key.
    for i in 0..8 {
        s.put("data/b-straddles", format!("v{i}").as_bytes());
    }
    s.delete("data/a0001"); // a delete marker, listed after the page's versions
    s.manifest("data/", "");
    s.trace().ok();
    let planned = s.env.plan_json()["artifacts"].as_array().unwrap().len();
    assert_eq!(planned, 996 + 8 + 1);
    // Trace streams the plan page by page: the file is byte for byte the
    // serialized plan, and the straddling key's versions stay together,
    // newest first.
    let bytes = std::fs::read(s.env.plan()).unwrap();
    let plan = decom::plan::Plan::parse(&bytes, "plan.json").unwrap();
    assert!(
        plan.to_bytes() == bytes,
        "streamed plan differs from its serialization"
    );
    let straddling: Vec<&decom::plan::S3Version> = plan
        .artifacts
        .iter()
        .filter_map(|a| match &a.item {
            decom::plan::Item::S3Version(v) if v.key == "data/b-straddles" => Some(v),
            _ => None,
        })
        .collect();
    let at = plan
        .artifacts
        .iter()
        .position(|a| a.item.s3_key().is_some_and(|k| k.1 == "data/b-straddles"))
        .unwrap();
    assert!(
        plan.artifacts[at..at + 8]
            .iter()
            .all(|a| a.item.s3_key().is_some_and(|k| k.1 == "data/b-straddles")),
        "one key's versions are planned together"
    );
    assert_eq!(straddling.len(), 8);
    assert!(straddling[0].is_latest && !straddling[7].is_latest);
    // Keys in order, a key's delete markers right after its versions:
    // execute walks the plan beside its listing in that order.
    let keys: Vec<&str> = plan
        .artifacts
        .iter()
        .filter_map(|a| a.item.s3_key().map(|k| k.1))
        .collect();
    let unordered = keys.windows(2).find(|w| w[0] > w[1]);
    assert!(
        unordered.is_none(),
        "the plan lists keys in order: {unordered:?}"
    );
    // `show` summarises a plan by location, never a line per version.
    let show = s.env.run(&["show", "plan.json"]);
    show.ok();
    assert!(show.stdout.contains("1005 artifact(s)"), "{}", show.stdout);
    assert!(show.stdout.lines().count() < 40, "{}", show.stdout);
    s.approve().ok();
    s.execute().ok();
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete");
    assert!(
        c["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "disposed"),
        "nothing decided before all of its key was listed"
    );
    assert!(s.versions("data/").is_empty());
    let show = s.env.run(&["show", "certificate.json"]);
    show.ok();
    assert!(show.stdout.lines().count() < 40, "{}", show.stdout);
}

/// A plan whose versions are not in key order (one from before trace kept
/// them so, or edited and approved again) is still executed whole: execute
/// sorts such a location itself before walking it beside the listing.
#[test]
fn a_plan_out_of_key_order_is_executed_whole() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..30 {
        s.put(&format!("m/{i:02}.bin"), b"one");
        s.put(&format!("m/{i:02}.bin"), b"two");
    }
    s.delete("m/07.bin");
    s.manifest("m/", "");
    s.trace().ok();
    let mut plan = s.env.plan_json();
    let arts = plan["artifacts"].as_array_mut().unwrap();
    assert_eq!(arts.len(), 61);
    arts.reverse();
    for (i, a) in arts.iter_mut().enumerate() {
        a["id"] = (i as u64 + 1).into();
    }
    crate::attacks::custodian_signs(&s.env, &serde_json::to_vec_pretty(&plan).unwrap());
    s.execute().ok();
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete");
    let arts = c["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 61);
    assert!(arts.iter().all(|a| a["outcome"] == "disposed"));
    let ids: Vec<u64> = arts.iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "the certificate keeps plan order"
    );
    assert!(s.versions("m/").is_empty());
}

/// A store whose second listing page brings a key that sorts before the
/// first page's keys breaks the order deciding-as-it-lists relies on: what
/// is undecided then fails with that reason (exit 1), and only versions
/// decided from the ordered first page are purged.
#[test]
fn a_listing_out_of_key_order_fails_what_it_has_not_decided() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..1004 {
        s.put(&format!("data/a{i:04}"), b"x");
    }
    let armed = Arc::new(AtomicBool::new(false));
    let hook_armed = armed.clone();
    let proxy = FaultProxy::start_with_hook(
        &endpoint(),
        0,
        Arc::new(move |line: &str, resp: Vec<u8>| {
            let second_page = line.starts_with("GET ")
                && line.contains("versions")
                && line.contains("key-marker=");
            if !(hook_armed.load(Ordering::Relaxed) && second_page) {
                return resp;
            }
            // Repeat the page's first version under a key of page one.
            rewrite_body(resp, |b| {
                let (Some(i), Some(j)) = (b.find("<Version>"), b.find("</Version>")) else {
                    return b.to_string();
                };
                let block = &b[i..j + "</Version>".len()];
                let early = with_key(block, "data/a0000");
                format!("{}{early}{}", &b[..i], &b[i..])
            })
        }),
    );
    s.manifest("data/", "");
    s.trace_via(&proxy.url).ok();
    s.approve().ok();
    armed.store(true, Ordering::Relaxed);
    s.execute().code(1);
    let c = s.env.cert_json();
    let failed: Vec<&serde_json::Value> = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "failed")
        .collect();
    assert!(!failed.is_empty());
    assert!(
        failed.iter().all(|a| a["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not in key order")),
        "{failed:?}"
    );
    // What failed was never deleted.
    assert_eq!(s.versions("data/").len(), failed.len());
}

/// `block` (one `<Version>` element) with its key replaced.
fn with_key(block: &str, key: &str) -> String {
    let (a, b) = (block.find("<Key>").unwrap(), block.find("</Key>").unwrap());
    format!("{}<Key>{key}{}", &block[..a], &block[b..])
}

/// A plan that found the store without versions makes execute ask for
/// ListObjectsV2's first page beside ListObjectVersions; where the store
/// answers the version listing after all (it gained versioning, or the plan
/// says wrong), that page is dropped and every version is still purged and
/// proven by version id.
#[test]
fn a_plan_expecting_no_versions_still_purges_every_version_the_store_lists() {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..12 {
        s.put(&format!("m/{i:02}.bin"), b"one");
        s.put(&format!("m/{i:02}.bin"), b"two");
    }
    s.manifest("m/", "");
    s.trace().ok();
    let mut plan = s.env.plan_json();
    let facts = &mut plan["locations"][0]["facts"];
    assert!(
        facts["unsupported"].as_array().is_none_or(Vec::is_empty),
        "moto has versions: {facts}"
    );
    facts["unsupported"] = serde_json::json!(["versioning"]);
    crate::attacks::custodian_signs(&s.env, &serde_json::to_vec_pretty(&plan).unwrap());
    s.execute().ok();
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete", "{c}");
    assert_eq!(c["artifacts"].as_array().unwrap().len(), 24);
    assert!(s.versions("m/").is_empty());
}
