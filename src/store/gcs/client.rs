//! The one place the GCS JSON API is called: buckets.get and .patch,
//! objects.list (every generation, or the soft-deleted ones), objects.get
//! and its media, objects.delete by generation with preconditions, and
//! the batch endpoint. Over reqwest, with Application Default Credentials
//! from google-cloud-auth for `https://` endpoints. Why not Google's own
//! `google-cloud-storage` crate: ARCHITECTURE.md "Google Cloud Storage".

use super::batch;
use super::spec::{BATCH, Endpoint, GOOGLE_ENDPOINT, LIST_PAGE, Settings};
use crate::error::{Error, Result};
use crate::store::http::{Http, Reply, transient};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicBool, Ordering};

/// A connected client.
pub struct Gcs {
    pub endpoint: Endpoint,
    http: Http,
    creds: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
    concurrency: usize,
    /// The store answered the batch endpoint with "no such route": every
    /// later delete goes one by one.
    no_batch: AtomicBool,
}

/// An object generation as `objects.list` or `objects.get` describe it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    pub name: String,
    pub generation: String,
    #[serde(default)]
    pub metageneration: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub size: u64,
    #[serde(default)]
    pub time_created: Option<String>,
    /// When it became noncurrent (noncurrent generations only).
    #[serde(default)]
    pub time_deleted: Option<String>,
    #[serde(default)]
    pub md5_hash: Option<String>,
    #[serde(default)]
    pub crc32c: Option<String>,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub kms_key_name: Option<String>,
    #[serde(default)]
    pub temporary_hold: bool,
    #[serde(default)]
    pub event_based_hold: bool,
    #[serde(default)]
    pub retention: Option<ObjectRetention>,
    #[serde(default)]
    pub retention_expiration_time: Option<String>,
    #[serde(default)]
    pub hard_delete_time: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRetention {
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub retain_until_time: String,
}

/// The bucket resource, as far as decom reads it. Absent fields stay
/// `None`: unknown, not off.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    #[serde(default)]
    pub versioning: Option<Flag>,
    #[serde(default)]
    pub soft_delete_policy: Option<SoftDeletePolicy>,
    #[serde(default)]
    pub retention_policy: Option<RetentionPolicy>,
    #[serde(default)]
    pub default_event_based_hold: Option<bool>,
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub location_type: Option<String>,
    #[serde(default)]
    pub metageneration: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Flag {
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftDeletePolicy {
    #[serde(default, deserialize_with = "number")]
    pub retention_duration_seconds: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    #[serde(default, deserialize_with = "number")]
    pub retention_period: u64,
    #[serde(default)]
    pub is_locked: bool,
}

/// The rules exactly as the store wrote them: execute sends every rule
/// that is not decom's back byte for byte.
#[derive(Debug, Default, Deserialize)]
pub struct Lifecycle {
    #[serde(default)]
    pub rule: Vec<Box<RawValue>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    #[serde(default)]
    pub default_kms_key_name: Option<String>,
}

/// The JSON API writes 64-bit numbers as strings.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        N(u64),
    }
    match N::deserialize(d)? {
        N::N(n) => Ok(n),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    items: Vec<Object>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// Which generations a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Live and noncurrent generations (`versions=true`).
    Generations,
    /// Soft-deleted generations only (`softDeleted=true`).
    SoftDeleted,
}

/// One delete by generation, with its preconditions.
#[derive(Debug, Clone)]
pub struct Delete {
    pub name: String,
    pub generation: String,
    /// The live generation must still be this one (planned live).
    pub if_generation_match: Option<String>,
    pub if_metageneration_match: Option<String>,
}

/// What the store answered a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Done,
    NotFound,
    /// A precondition failed (412): it changed since approval.
    Changed(String),
    /// A hold or retention policy keeps it (403 naming one).
    Kept(String),
    Failed(String),
}

/// The error message of a GCS error answer, else its status.
fn message(r: &Reply) -> String {
    error_message(r.status, &r.text())
}

fn error_message(status: u16, body: &str) -> String {
    #[derive(Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<E>(body) {
        Ok(e) if !e.error.message.is_empty() => format!("HTTP {status}: {}", e.error.message),
        _ => format!("HTTP {status}"),
    }
}

impl Gcs {
    /// For trace and recheck: the manifest's endpoint, else
    /// `STORAGE_EMULATOR_HOST`, else Google's.
    pub fn connect(settings: &Settings) -> Result<Gcs> {
        let env = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|s| !s.is_empty());
        let (url, what) = match (&settings.endpoint_url, env) {
            (Some(u), _) => (u.clone(), "[gcs] endpoint_url"),
            (None, Some(e)) => (e, "STORAGE_EMULATOR_HOST"),
            (None, None) => (GOOGLE_ENDPOINT.to_string(), "the GCS endpoint"),
        };
        Self::connect_exact(&Endpoint::of(&url, what)?, settings.concurrency()?)
    }

    /// Exactly the endpoint a plan recorded (no environment fallback).
    pub fn connect_exact(endpoint: &Endpoint, concurrency: usize) -> Result<Gcs> {
        let http = Http::new("GCS")?;
        let creds = match endpoint.credentials {
            false => None,
            true => Some(
                google_cloud_auth::credentials::Builder::default()
                    .with_scopes(["https://www.googleapis.com/auth/devstorage.full_control"])
                    .build_access_token_credentials()
                    .map_err(|e| {
                        Error::input(format!(
                            "no Google Cloud credentials (Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login, or the metadata server): {e}"
                        ))
                    })?,
            ),
        };
        Ok(Gcs {
            endpoint: endpoint.clone(),
            http,
            creds,
            concurrency: concurrency.max(1),
            no_batch: AtomicBool::new(false),
        })
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// One request through the one retry loop ([`super::super::http`]),
    /// with a fresh access token where the endpoint takes credentials.
    async fn call(
        &self,
        method: reqwest::Method,
        target: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> std::result::Result<Reply, String> {
        let url = format!("{}{target}", self.endpoint.url);
        let auth = self.bearer().await?;
        self.http
            .call((method, &url), auth.as_deref(), body, error_message)
            .await
    }

    async fn bearer(&self) -> std::result::Result<Option<String>, String> {
        match &self.creds {
            None => Ok(None),
            Some(c) => c
                .access_token()
                .await
                .map(|t| Some(format!("Bearer {}", t.token)))
                .map_err(|e| format!("cannot get a Google Cloud access token: {e}")),
        }
    }

    fn get(&self, target: &str) -> std::result::Result<Reply, String> {
        self.http
            .rt
            .block_on(self.call(reqwest::Method::GET, target, None))
    }

    /// The bucket's resource, parsed.
    pub fn bucket(&self, bucket: &str) -> Result<Bucket> {
        let r = self
            .get(&format!("/storage/v1/b/{}", batch::encode(bucket)))
            .map_err(|e| Error::input(format!("gs://{bucket}: {e}")))?;
        match r.status {
            404 => Err(Error::input(format!("gs://{bucket}: no such bucket"))),
            _ if !r.ok() => Err(Error::input(format!("gs://{bucket}: {}", message(&r)))),
            _ => serde_json::from_slice(&r.body).map_err(|e| {
                Error::input(format!(
                    "gs://{bucket}: the bucket resource is not readable: {e}"
                ))
            }),
        }
    }

    /// Every generation (or soft-deleted generation) under `prefix`, a page
    /// at a time, handed to `each` (the one objects.list pagination loop).
    /// A page token the store repeats is an error, never the end: a
    /// listing that loops is not complete. Returns the pages listed.
    pub fn list(
        &self,
        bucket: &str,
        (prefix, delimiter): (&str, Option<&str>),
        what: Listing,
        each: &mut dyn FnMut(Vec<Object>) -> Result<()>,
    ) -> Result<u64> {
        let mut token: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        let mut pages = 0;
        loop {
            let mut target = format!(
                "/storage/v1/b/{}/o?prefix={}&maxResults={LIST_PAGE}&{}",
                batch::encode(bucket),
                batch::encode(prefix),
                match what {
                    Listing::Generations => "versions=true",
                    Listing::SoftDeleted => "softDeleted=true",
                }
            );
            if let Some(d) = delimiter {
                target.push_str(&format!("&delimiter={}", batch::encode(d)));
            }
            if let Some(t) = &token {
                target.push_str(&format!("&pageToken={}", batch::encode(t)));
            }
            let at = |m: String| Error::input(format!("gs://{bucket}/{prefix}: {m}"));
            let r = self.get(&target).map_err(at)?;
            if !r.ok() {
                return Err(at(format!("listing: {}", message(&r))));
            }
            let page: Page = serde_json::from_slice(&r.body)
                .map_err(|e| at(format!("the listing is not readable: {e}")))?;
            pages += 1;
            each(page.items)?;
            match page.next_page_token.filter(|t| !t.is_empty()) {
                None => return Ok(pages),
                Some(t) if !seen.insert(t.clone()) => {
                    return Err(at(format!(
                        "the store answered page token {t:?} twice: its listing is not complete"
                    )));
                }
                Some(t) => token = Some(t),
            }
        }
    }

    fn object_target(bucket: &str, name: &str, generation: &str) -> String {
        format!(
            "/storage/v1/b/{}/o/{}?generation={}",
            batch::encode(bucket),
            batch::encode(name),
            batch::encode(generation)
        )
    }

    /// One generation's metadata: `None` when the store answers 404.
    pub fn generation(&self, bucket: &str, name: &str, generation: &str) -> Result<Option<Object>> {
        self.http
            .rt
            .block_on(self.generation_async(bucket, name, generation))
    }

    async fn generation_async(
        &self,
        bucket: &str,
        name: &str,
        generation: &str,
    ) -> Result<Option<Object>> {
        let target = Self::object_target(bucket, name, generation);
        let at = |m: String| Error::input(format!("gs://{bucket}/{name}#{generation}: {m}"));
        let r = self
            .call(reqwest::Method::GET, &target, None)
            .await
            .map_err(at)?;
        match r.status {
            404 => Ok(None),
            _ if !r.ok() => Err(at(message(&r))),
            _ => serde_json::from_slice(&r.body)
                .map(Some)
                .map_err(|e| at(format!("not readable: {e}"))),
        }
    }

    /// Ask for each `(name, generation)` with at most `concurrency` in
    /// flight: whether the store still has it (`Err`: no answer).
    pub fn still_there(
        &self,
        bucket: &str,
        asks: Vec<(String, String)>,
    ) -> Vec<((String, String), std::result::Result<bool, String>)> {
        let f = |(n, g): (String, String)| async move {
            let r = self.generation_async(bucket, &n, &g).await;
            ((n, g), r.map(|o| o.is_some()).map_err(|e| e.to_string()))
        };
        self.http.rt.block_on(
            futures_util::stream::iter(asks)
                .map(f)
                .buffer_unordered(self.concurrency)
                .collect(),
        )
    }

    /// Stream one generation's bytes and hash them (SHA-256, hex).
    pub fn sha256(&self, bucket: &str, name: &str, generation: &str) -> Result<String> {
        use sha2::Digest;
        let at = |m: String| Error::input(format!("gs://{bucket}/{name}#{generation}: {m}"));
        let url = format!(
            "{}{}&alt=media",
            self.endpoint.url,
            Self::object_target(bucket, name, generation)
        );
        self.http.rt.block_on(async {
            let mut req = self.http.client().get(&url);
            if let Some(a) = self.bearer().await.map_err(at)? {
                req = req.header("authorization", a);
            }
            let mut r = req.send().await.map_err(|e| at(e.to_string()))?;
            if !r.status().is_success() {
                return Err(at(format!(
                    "HTTP {} reading its bytes",
                    r.status().as_u16()
                )));
            }
            let mut h = sha2::Sha256::new();
            while let Some(chunk) = r.chunk().await.map_err(|e| at(e.to_string()))? {
                h.update(&chunk);
            }
            Ok(hex::encode(h.finalize()))
        })
    }

    /// Create a bucket from its resource (JSON), in `project`.
    pub fn create_bucket(&self, project: &str, resource: &str) -> Result<()> {
        let target = format!("/storage/v1/b?project={}", batch::encode(project));
        let r = self
            .http
            .rt
            .block_on(self.call(
                reqwest::Method::POST,
                &target,
                Some(("application/json", resource.as_bytes().to_vec())),
            ))
            .map_err(Error::input)?;
        match r.ok() {
            true => Ok(()),
            false => Err(Error::input(format!("creating a bucket: {}", message(&r)))),
        }
    }

    /// Upload one object (a simple media upload); its generation.
    pub fn upload(&self, bucket: &str, name: &str, bytes: Vec<u8>) -> Result<String> {
        let target = format!(
            "/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            batch::encode(bucket),
            batch::encode(name)
        );
        let at = |m: String| Error::input(format!("gs://{bucket}/{name}: {m}"));
        let r = self
            .http
            .rt
            .block_on(self.call(
                reqwest::Method::POST,
                &target,
                Some(("application/octet-stream", bytes)),
            ))
            .map_err(at)?;
        if !r.ok() {
            return Err(at(message(&r)));
        }
        let o: Object =
            serde_json::from_slice(&r.body).map_err(|e| at(format!("not readable: {e}")))?;
        Ok(o.generation)
    }

    /// Replace the bucket's lifecycle rules with `rules` (raw JSON each),
    /// if its metageneration is still `metageneration` (where the store
    /// reports one). `Ok(false)`: it
    /// changed meanwhile (read it again).
    pub fn set_lifecycle(
        &self,
        bucket: &str,
        rules: &[&str],
        metageneration: Option<&str>,
    ) -> Result<bool> {
        let body = format!("{{\"lifecycle\":{{\"rule\":[{}]}}}}", rules.join(","));
        let mut target = format!("/storage/v1/b/{}", batch::encode(bucket));
        if let Some(m) = metageneration {
            target.push_str(&format!("?ifMetagenerationMatch={}", batch::encode(m)));
        }
        let r = self
            .http
            .rt
            .block_on(self.call(
                reqwest::Method::PATCH,
                &target,
                Some(("application/json", body.into_bytes())),
            ))
            .map_err(|e| Error::input(format!("gs://{bucket}: {e}")))?;
        match r.status {
            412 => Ok(false),
            _ if r.ok() => Ok(true),
            _ => Err(Error::input(format!(
                "gs://{bucket}: the store refused the lifecycle rules: {}",
                message(&r)
            ))),
        }
    }

    /// Delete generations with their preconditions, up to [`BATCH`] per
    /// batch request and `concurrency` requests in flight; each answer is
    /// handed to `each` with the index of its delete as it arrives.
    pub fn delete_all<'a>(
        &'a self,
        bucket: &'a str,
        deletes: &'a [Delete],
        each: &mut dyn FnMut(usize, Deleted),
    ) {
        let chunks: Vec<(usize, &[Delete])> = deletes
            .chunks(BATCH)
            .enumerate()
            .map(|(i, c)| (i * BATCH, c))
            .collect();
        let f = |(start, chunk): (usize, &'a [Delete])| {
            let answers = self.delete_chunk(bucket, chunk);
            async move { (start, answers.await) }
        };
        self.http.rt.block_on(
            futures_util::stream::iter(chunks)
                .map(f)
                .buffer_unordered(self.concurrency)
                .for_each(|(start, answers)| {
                    for (i, d) in answers.into_iter().enumerate() {
                        each(start + i, d);
                    }
                    std::future::ready(())
                }),
        );
    }

    fn delete_target(bucket: &str, d: &Delete) -> String {
        let mut t = Self::object_target(bucket, &d.name, &d.generation);
        if let Some(g) = &d.if_generation_match {
            t.push_str(&format!("&ifGenerationMatch={}", batch::encode(g)));
        }
        if let Some(m) = &d.if_metageneration_match {
            t.push_str(&format!("&ifMetagenerationMatch={}", batch::encode(m)));
        }
        t
    }

    /// One batch request for a chunk; calls it leaves unanswered, or
    /// answers with a transient status, are sent again one by one.
    async fn delete_chunk(&self, bucket: &str, chunk: &[Delete]) -> Vec<Deleted> {
        let mut answers: Vec<Option<Deleted>> = vec![None; chunk.len()];
        if chunk.len() > 1 && !self.no_batch.load(Ordering::Relaxed) {
            match self.batch(bucket, chunk).await {
                Ok(got) => {
                    for a in got {
                        if let Some(i) = a.id.as_deref().and_then(|id| id.parse::<usize>().ok())
                            && i < chunk.len()
                            && !transient(a.status)
                        {
                            answers[i] = Some(deleted(a.status, &a.body));
                        }
                    }
                }
                Err(None) => self.no_batch.store(true, Ordering::Relaxed),
                Err(Some(_)) => {}
            }
        }
        let mut out = Vec::with_capacity(chunk.len());
        for (d, a) in chunk.iter().zip(answers) {
            out.push(match a {
                Some(a) => a,
                None => self.delete_one(bucket, d).await,
            });
        }
        out
    }

    async fn delete_one(&self, bucket: &str, d: &Delete) -> Deleted {
        match self
            .call(
                reqwest::Method::DELETE,
                &Self::delete_target(bucket, d),
                None,
            )
            .await
        {
            Ok(r) => deleted(r.status, &String::from_utf8_lossy(&r.body)),
            Err(e) => Deleted::Failed(e),
        }
    }

    /// `Err(None)`: the store has no batch endpoint; `Err(Some(why))`: the
    /// batch failed as a whole (its calls are sent again one by one).
    async fn batch(
        &self,
        bucket: &str,
        chunk: &[Delete],
    ) -> std::result::Result<Vec<batch::Answer>, Option<String>> {
        let calls: Vec<batch::Call> = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| batch::Call {
                id: i.to_string(),
                method: "DELETE",
                target: Self::delete_target(bucket, d),
            })
            .collect();
        let boundary = format!("decom{:016x}", rand::random::<u64>());
        let body = batch::body(&calls, &boundary);
        let ct = format!("multipart/mixed; boundary={boundary}");
        let r = self
            .call(
                reqwest::Method::POST,
                "/batch/storage/v1",
                Some((&ct, body.into_bytes())),
            )
            .await
            .map_err(Some)?;
        if matches!(r.status, 404 | 405 | 501) {
            return Err(None);
        }
        if !r.ok() {
            return Err(Some(message(&r)));
        }
        let b = batch::boundary_of(&r.content_type).ok_or_else(|| Some(message(&r)))?;
        batch::parse(&String::from_utf8_lossy(&r.body), &b).map_err(Some)
    }
}

/// Whether a 403 says a hold or retention keeps the object (GCS's reason
/// `retentionPolicyNotMet`, or its "is under active … hold" message), not
/// a permission the caller lacks.
fn kept_by_store(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    let e = &v["error"];
    let reasons = e["errors"].as_array().into_iter().flatten();
    let message = e["message"].as_str().unwrap_or_default();
    reasons
        .map(|r| r["reason"].as_str().unwrap_or_default())
        .any(|r| r == "retentionPolicyNotMet")
        || (message.contains("is under active") && message.contains("hold"))
}

/// A delete's status and body, as decom judges it.
fn deleted(status: u16, body: &str) -> Deleted {
    let m = error_message(status, body);
    match status {
        200..=299 => Deleted::Done,
        404 => Deleted::NotFound,
        412 => Deleted::Changed(m),
        403 if kept_by_store(body) => Deleted::Kept(m),
        _ => Deleted::Failed(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_answers_are_judged_by_status_and_reason() {
        assert_eq!(deleted(204, ""), Deleted::Done);
        assert_eq!(deleted(200, "null"), Deleted::Done);
        assert_eq!(deleted(404, ""), Deleted::NotFound);
        assert!(
            matches!(deleted(412, "{\"error\":{\"code\":412,\"message\":\"Precondition Failed\"}}"), Deleted::Changed(m) if m.contains("Precondition"))
        );
        let held = "{\"error\":{\"code\":403,\"message\":\"Object 'b/o' is under active Temporary hold and cannot be deleted\"}}";
        assert!(matches!(deleted(403, held), Deleted::Kept(_)));
        let denied = "{\"error\":{\"code\":403,\"message\":\"caller does not have storage.objects.delete access\"}}";
        assert!(matches!(deleted(403, denied), Deleted::Failed(_)));
        // A permission message that merely mentions a "holder" is not a hold.
        let iam = "{\"error\":{\"code\":403,\"message\":\"the key holder lacks retention rights\",\"errors\":[{\"reason\":\"forbidden\"}]}}";
        assert!(matches!(deleted(403, iam), Deleted::Failed(_)));
        let policy = "{\"error\":{\"code\":403,\"message\":\"x\",\"errors\":[{\"reason\":\"retentionPolicyNotMet\"}]}}";
        assert!(matches!(deleted(403, policy), Deleted::Kept(_)));
    }

    #[test]
    fn sizes_and_periods_are_read_as_strings_or_numbers() {
        let o: Object =
            serde_json::from_str(r#"{"name":"a","generation":"1","size":"11"}"#).unwrap();
        assert_eq!(o.size, 11);
        let b: Bucket = serde_json::from_str(
            r#"{"softDeletePolicy":{"retentionDurationSeconds":604800},"lifecycle":{"rule":[{"action": {"type":"Delete"}}]}}"#,
        )
        .unwrap();
        assert_eq!(
            b.soft_delete_policy.unwrap().retention_duration_seconds,
            604800
        );
        assert_eq!(
            b.lifecycle.unwrap().rule[0].get(),
            r#"{"action": {"type":"Delete"}}"#
        );
        assert!(b.versioning.is_none());
    }
}
