//! The S3 seam: one client configured from the standard AWS chain (plus an
//! endpoint URL and path-style addressing for S3-compatible stores), and the
//! one copy of each S3 loop: version listing and upload listing pagination,
//! and bounded concurrency.
//!
//! aws-sdk-s3 is async; the rest of decom is blocking. The boundary is here:
//! [`S3`] owns a private tokio runtime and every public method blocks on it
//! (as rustic's opendal backend does). Retries with backoff and jitter for
//! throttling, 5xx, timeouts and connection resets are the SDK's standard
//! retry strategy, configured once in [`S3::connect`].

use super::spec::*;
use crate::error::{Error, Result};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use futures_util::StreamExt;
use std::future::Future;
use std::time::Duration;

/// One ListObjectsV2 answer.
type ObjectsPage = std::result::Result<
    aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error,
        aws_sdk_s3::config::http::HttpResponse,
    >,
>;

pub struct S3 {
    rt: tokio::runtime::Runtime,
    client: Client,
    /// KMS at the same endpoint, with the same credentials and region.
    kms: aws_sdk_kms::Client,
    pub endpoint: Endpoint,
    pub concurrency: usize,
    /// Set once a listing found that the store implements no versions.
    without_versions: std::sync::atomic::AtomicBool,
    /// A plan found this store without versions: the first version
    /// listing asks for ListObjectsV2's first page beside it.
    expect_without_versions: std::sync::atomic::AtomicBool,
}

/// One entry of a version listing: an object version or a delete marker.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub is_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
    pub storage_class: Option<String>,
}

/// An unfinished multipart upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    pub initiated: String,
}

/// Whether an error says "not found" (bucket, key, upload, configuration).
/// The version id to HEAD a listed version by: none for the current null
/// version (the same object, and some S3-compatible servers, moto among
/// them, reject `versionId=null` on HEAD).
pub fn head_version_id(version_id: &str, is_latest: bool) -> Option<String> {
    (version_id != "null" || !is_latest).then(|| version_id.to_string())
}

pub fn is_not_found<E: ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>) -> bool {
    if let aws_sdk_s3::error::SdkError::ServiceError(s) = e
        && s.raw().status().as_u16() == 404
    {
        return true;
    }
    matches!(
        e.code(),
        Some("NoSuchKey" | "NoSuchUpload" | "NotFound" | "NoSuchBucket" | "NoSuchVersion")
    )
}

/// Whether the store answered that it does not implement the operation
/// (HTTP 501, `NotImplemented`): a missing feature, not a failure. Any other
/// error (access, 5xx) stays an error.
pub fn not_implemented<E: ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>) -> bool {
    if let aws_sdk_s3::error::SdkError::ServiceError(s) = e
        && s.raw().status().as_u16() == 501
    {
        return true;
    }
    e.code() == Some("NotImplemented")
}

/// An SDK error as one line a person can act on: for an answer from the
/// store, its error code and message (`NotImplemented: Unimplemented
/// action`, with the HTTP status when there is no code); otherwise what
/// failed on the way (connection, timeout) with its causes. Never the SDK's
/// Debug representation. The caller names the location and the operation.
pub fn describe<E>(e: &aws_sdk_s3::error::SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    let line = match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {m}"),
                (Some(c), _) => format!("{c} (HTTP {status})"),
                _ => format!("HTTP {status} without an S3 error code"),
            }
        }
        SdkError::TimeoutError(_) => "timed out (no answer in time)".to_string(),
        other => causes(other),
    };
    crate::util::one_line(&line)
}

/// An error and its sources, by their Display only, joined with ": ".
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

pub fn time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.secs()).ok())
        .map(crate::util::rfc3339)
        .unwrap_or_default()
}

fn host_is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or("");
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
}

impl S3 {
    /// Build the client. The endpoint comes from `settings`, then
    /// `AWS_ENDPOINT_URL`; path-style is on when asked for, or when the
    /// endpoint's host is an IP address or `localhost`.
    pub fn connect(settings: &Settings) -> Result<S3> {
        Self::connect_with(settings, true)
    }

    /// Connect to exactly the endpoint a plan recorded (no environment
    /// fallback): execute must talk to the store the custodian approved.
    /// `concurrency` is how hard to drive it (not part of the approval).
    pub fn connect_exact(e: &Endpoint, concurrency: Option<usize>) -> Result<S3> {
        let s = Settings {
            endpoint_url: e.endpoint_url.clone(),
            region: Some(e.region.clone()),
            path_style: Some(e.path_style),
            hash_remote: false,
            concurrency,
            ..Default::default()
        };
        Self::connect_with(&s, false)
    }

    fn connect_with(settings: &Settings, env_endpoint: bool) -> Result<S3> {
        let concurrency = settings.concurrency()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::input(format!("cannot start the S3 runtime: {e}")))?;
        let from_env = || {
            if !env_endpoint {
                return None;
            }
            std::env::var("AWS_ENDPOINT_URL_S3")
                .ok()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        };
        let endpoint_url = settings
            .endpoint_url
            .clone()
            .or_else(from_env)
            .filter(|s| !s.is_empty());
        if let Some(u) = &endpoint_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(Error::input(format!(
                "endpoint URL {u:?} must start with http:// or https://"
            )));
        }
        let path_style = settings
            .path_style
            .unwrap_or_else(|| endpoint_url.as_deref().is_some_and(host_is_local));
        // Every request either client sends waits for one of these.
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let http = super::bound::client(permits);
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &settings.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let sdk = rt.block_on(loader.load());
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut b = aws_sdk_s3::config::Builder::from(&sdk)
            .http_client(http.clone())
            .region(aws_config::Region::new(region.clone()))
            .force_path_style(path_style)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(50)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        // Exactly this endpoint (None: the AWS default), even if the
        // environment configured another one for the SDK.
        b.set_endpoint_url(endpoint_url.clone());
        let client = Client::from_conf(b.build());
        let mut k = aws_sdk_kms::config::Builder::from(&sdk)
            .http_client(http)
            .region(aws_config::Region::new(region.clone()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(50)),
            );
        k.set_endpoint_url(endpoint_url.clone());
        let kms = aws_sdk_kms::Client::from_conf(k.build());
        Ok(S3 {
            rt,
            client,
            kms,
            endpoint: Endpoint {
                endpoint_url,
                region,
                path_style,
            },
            concurrency,
            without_versions: Default::default(),
            expect_without_versions: Default::default(),
        })
    }

    /// Whether a version listing had to fall back to ListObjectsV2 (the
    /// store does not implement ListObjectVersions).
    /// The plan recorded "versioning not supported by this store": the
    /// next version listing still asks (a store can gain versioning), but
    /// sends ListObjectsV2's first page beside the question, saving a round
    /// trip where the answer is still no. Only with more than one request
    /// allowed in flight.
    pub fn expect_without_versions(&self) {
        if self.concurrency > 1 {
            self.expect_without_versions
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn without_versions(&self) -> bool {
        self.without_versions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// KMS at the S3 endpoint's address, credentials and region.
    pub fn kms(&self) -> &aws_sdk_kms::Client {
        &self.kms
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Run `f` over `items` with at most `concurrency` in flight; results in
    /// completion order.
    pub fn bounded<T, O, Fut>(&self, items: Vec<T>, f: impl Fn(T) -> Fut) -> Vec<O>
    where
        Fut: Future<Output = O>,
    {
        self.bounded_stream(self.concurrency, futures_util::stream::iter(items), f)
    }

    /// [`S3::bounded`] over a stream of work that other threads, or the
    /// answers themselves, are still feeding (it ends when the stream
    /// does), each answer handed to `each` as it arrives: nothing is
    /// collected.
    pub fn bounded_stream_each<T, O, Fut>(
        &self,
        items: impl futures_util::Stream<Item = T>,
        f: impl Fn(T) -> Fut,
        mut each: impl FnMut(O),
    ) where
        Fut: Future<Output = O>,
    {
        self.rt.block_on(
            items
                .map(f)
                .buffer_unordered(self.concurrency.max(1))
                .for_each(|o| {
                    each(o);
                    std::future::ready(())
                }),
        )
    }

    /// Requests in flight, at most.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn bounded_stream<T, O, Fut>(
        &self,
        n: usize,
        items: impl futures_util::Stream<Item = T>,
        f: impl Fn(T) -> Fut,
    ) -> Vec<O>
    where
        Fut: Future<Output = O>,
    {
        self.rt
            .block_on(items.map(f).buffer_unordered(n.max(1)).collect())
    }

    /// Every version and delete marker in `scope`, page by page (the one
    /// ListObjectVersions pagination loop). Memory holds one page at a
    /// time. Returns the number of pages listed. A store that does not
    /// implement ListObjectVersions (Garage) is listed with ListObjectsV2,
    /// each object as its only, null, version.
    pub fn list_versions(
        &self,
        bucket: &str,
        scope: &Scope<'_>,
        mut each: impl FnMut(Listed),
    ) -> Result<u64> {
        self.list_versions_by_page(bucket, scope, |l| {
            if let Some(l) = l {
                each(l)
            }
        })
    }

    /// [`S3::list_versions`], telling `each` where each page ends (`None`).
    /// Keys come in order across pages; within a page versions come before
    /// delete markers, and one key's versions may continue on the next page.
    pub fn list_versions_by_page(
        &self,
        bucket: &str,
        scope: &Scope<'_>,
        each: impl FnMut(Option<Listed>),
    ) -> Result<u64> {
        self.list_versions_split(bucket, scope, &[], each)
    }

    /// [`S3::list_versions_by_page`] where the keys are known in advance
    /// (execute's plan): on a store without versions, the listing is split
    /// at `splits` (keys in order, about a page apart) and the pieces are
    /// asked for at once, up to [`LIST_AHEAD`] ahead, instead of one page
    /// after another; `each` still sees one listing in key order.
    pub fn list_versions_split(
        &self,
        bucket: &str,
        scope: &Scope<'_>,
        splits: &[String],
        mut each: impl FnMut(Option<Listed>),
    ) -> Result<u64> {
        if self.without_versions() {
            return self.list_objects(bucket, scope, splits, None, each);
        }
        let mut pages = 0;
        for (prefix, delimiter) in scope.listings() {
            let (mut key_marker, mut version_marker): (Option<String>, Option<String>) =
                (None, None);
            loop {
                let request = self
                    .client
                    .list_object_versions()
                    .bucket(bucket)
                    .prefix(&prefix)
                    .set_delimiter(delimiter.map(str::to_string))
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send();
                let expected = pages == 0
                    && self
                        .expect_without_versions
                        .swap(false, std::sync::atomic::Ordering::Relaxed);
                // Asked already, beside the question: dropped (and its
                // requests called off) if the store lists versions.
                let first =
                    expected.then(|| Pieces::new(self, bucket, (&prefix, delimiter), splits));
                let answer = self.block_on(request);
                let page = match answer {
                    Ok(p) => p,
                    Err(e) if pages == 0 && not_implemented(&e) => {
                        self.without_versions
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        return self.list_objects(bucket, scope, splits, first, each);
                    }
                    Err(e) => {
                        return Err(Error::input(format!(
                            "s3://{bucket}/{prefix}: ListObjectVersions: {}",
                            describe(&e)
                        )));
                    }
                };
                pages += 1;
                for v in page.versions() {
                    let key = v.key().unwrap_or_default();
                    if !scope.owns(key, (&prefix, delimiter)) {
                        continue;
                    }
                    each(Some(Listed {
                        key: key.to_string(),
                        version_id: v.version_id().unwrap_or("null").to_string(),
                        is_latest: v.is_latest().unwrap_or(false),
                        is_marker: false,
                        size: v.size().unwrap_or(0).max(0) as u64,
                        etag: v.e_tag().unwrap_or_default().to_string(),
                        last_modified: time(v.last_modified()),
                        storage_class: v.storage_class().map(|s| s.as_str().to_string()),
                    }));
                }
                for m in page.delete_markers() {
                    let key = m.key().unwrap_or_default();
                    if !scope.owns(key, (&prefix, delimiter)) {
                        continue;
                    }
                    each(Some(Listed {
                        key: key.to_string(),
                        version_id: m.version_id().unwrap_or("null").to_string(),
                        is_latest: m.is_latest().unwrap_or(false),
                        is_marker: true,
                        size: 0,
                        etag: String::new(),
                        last_modified: time(m.last_modified()),
                        storage_class: None,
                    }));
                }
                each(None);
                if !page.is_truncated().unwrap_or(false) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
                if key_marker.is_none() && version_marker.is_none() {
                    return Err(Error::input(format!(
                        "s3://{bucket}/{prefix}: truncated listing without a next marker"
                    )));
                }
            }
        }
        Ok(pages)
    }

    /// One ListObjectsV2 request: from the start of `prefix`, after the
    /// key `after`, or where a continuation token says.
    fn objects_page(
        &self,
        bucket: &str,
        (prefix, delimiter): (&str, Option<&str>),
        after: Option<String>,
        token: Option<String>,
    ) -> impl Future<Output = ObjectsPage> + Send + use<> {
        self.client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .set_start_after(after)
            .set_continuation_token(token)
            .send()
    }

    /// The fallback of [`S3::list_versions`] for stores without versioning:
    /// the ListObjectsV2 pagination loop, every object its own null
    /// version. Each listing goes piece by piece ([`Pieces`]; one piece
    /// without `splits`), each piece page by page until it is complete.
    /// `first`: the first listing's pieces, already asked for.
    fn list_objects(
        &self,
        bucket: &str,
        scope: &Scope<'_>,
        splits: &[String],
        mut first: Option<Pieces>,
        mut each: impl FnMut(Option<Listed>),
    ) -> Result<u64> {
        let mut pages = 0;
        for (prefix, delimiter) in scope.listings() {
            let listing = (prefix.as_str(), delimiter);
            let mut pieces = first
                .take()
                .unwrap_or_else(|| Pieces::new(self, bucket, listing, splits));
            while let Some((after, upto, asked)) = pieces.next(self, bucket) {
                // Never aborted while it is still to be read; a panic in
                // the request goes on here.
                let mut page = match self.block_on(asked) {
                    Ok(p) => p,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                let mut token = None;
                loop {
                    let p = page.map_err(|e| {
                        Error::input(format!(
                            "s3://{bucket}/{prefix}: ListObjectsV2: {}",
                            describe(&e)
                        ))
                    })?;
                    pages += 1;
                    // Past the piece's end: the next piece lists that.
                    let mut reached = false;
                    for o in p.contents() {
                        let key = o.key().unwrap_or_default();
                        if upto.as_deref().is_some_and(|u| key >= u) {
                            reached = true;
                        }
                        if upto.as_deref().is_some_and(|u| key > u)
                            || after.as_deref().is_some_and(|a| key <= a)
                            || !scope.owns(key, listing)
                        {
                            continue;
                        }
                        each(Some(Listed {
                            key: key.to_string(),
                            version_id: "null".to_string(),
                            is_latest: true,
                            is_marker: false,
                            size: o.size().unwrap_or(0).max(0) as u64,
                            etag: o.e_tag().unwrap_or_default().to_string(),
                            last_modified: time(o.last_modified()),
                            storage_class: o.storage_class().map(|s| s.as_str().to_string()),
                        }));
                    }
                    each(None);
                    let next = p.next_continuation_token().map(str::to_string);
                    if reached || !p.is_truncated().unwrap_or(false) || next.is_none() {
                        break;
                    }
                    if next == token {
                        return Err(Error::input(format!(
                            "s3://{bucket}/{prefix}: ListObjectsV2: the store answered the same continuation token twice; the listing cannot be completed"
                        )));
                    }
                    token = next;
                    page = self.block_on(self.objects_page(bucket, listing, None, token.clone()));
                }
            }
        }
        Ok(pages)
    }

    /// Every unfinished multipart upload in `scope` (the one
    /// ListMultipartUploads pagination loop). Returns the number of pages.
    pub fn list_uploads(
        &self,
        bucket: &str,
        scope: &Scope<'_>,
        mut each: impl FnMut(Upload),
    ) -> Result<u64> {
        let mut pages = 0;
        for (prefix, delimiter) in scope.listings() {
            let (mut key_marker, mut upload_marker): (Option<String>, Option<String>) =
                (None, None);
            loop {
                let page = self
                    .block_on(
                        self.client
                            .list_multipart_uploads()
                            .bucket(bucket)
                            .prefix(&prefix)
                            .set_delimiter(delimiter.map(str::to_string))
                            .set_key_marker(key_marker.clone())
                            .set_upload_id_marker(upload_marker.clone())
                            .send(),
                    )
                    .map_err(|e| {
                        Error::input(format!(
                            "s3://{bucket}/{prefix}: ListMultipartUploads: {}",
                            describe(&e)
                        ))
                    })?;
                pages += 1;
                for u in page.uploads() {
                    let key = u.key().unwrap_or_default();
                    if !scope.owns(key, (&prefix, delimiter)) {
                        continue;
                    }
                    each(Upload {
                        key: key.to_string(),
                        upload_id: u.upload_id().unwrap_or_default().to_string(),
                        initiated: time(u.initiated()),
                    });
                }
                if !page.is_truncated().unwrap_or(false) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_string);
                upload_marker = page.next_upload_id_marker().map(str::to_string);
                if key_marker.is_none() && upload_marker.is_none() {
                    return Err(Error::input(format!(
                        "s3://{bucket}/{prefix}: truncated upload listing without a next marker"
                    )));
                }
            }
        }
        Ok(pages)
    }
}

/// One listing's pieces: between consecutive split keys that lie in the
/// listing (`(after, upto]`; the first from the start, the last to the
/// end), each asked for with StartAfter as soon as it is among the next
/// [`LIST_AHEAD`] (a task on the runtime, so the answers arrive while the
/// caller reads the piece before), and handed out in key order. A listing
/// with a delimiter is one piece. Dropped, it calls off what it asked.
struct Pieces {
    listing: (String, Option<&'static str>),
    /// Piece boundaries, in order; piece `i` ends at `bounds[i]`.
    bounds: Vec<String>,
    /// The next piece to ask for.
    next: usize,
    asked: std::collections::VecDeque<Piece>,
}

/// A piece's start (exclusive), end (inclusive) and first page, asked.
type Piece = (
    Option<String>,
    Option<String>,
    tokio::task::JoinHandle<ObjectsPage>,
);

impl Pieces {
    fn new(
        s3: &S3,
        bucket: &str,
        (prefix, delimiter): (&str, Option<&'static str>),
        splits: &[String],
    ) -> Pieces {
        let mut bounds: Vec<String> = Vec::new();
        if delimiter.is_none() {
            for k in splits.iter().filter(|k| k.starts_with(prefix)) {
                if bounds.last().is_none_or(|b| b < k) {
                    bounds.push(k.clone());
                }
            }
        }
        let mut p = Pieces {
            listing: (prefix.to_string(), delimiter),
            bounds,
            next: 0,
            asked: Default::default(),
        };
        p.ask(s3, bucket);
        p
    }

    fn ask(&mut self, s3: &S3, bucket: &str) {
        let ahead = s3.concurrency.clamp(1, LIST_AHEAD);
        while self.asked.len() < ahead && self.next <= self.bounds.len() {
            let i = self.next;
            let after = i.checked_sub(1).map(|j| self.bounds[j].clone());
            let upto = self.bounds.get(i).cloned();
            let listing = (self.listing.0.as_str(), self.listing.1);
            let page = s3
                .rt
                .spawn(s3.objects_page(bucket, listing, after.clone(), None));
            self.asked.push_back((after, upto, page));
            self.next += 1;
        }
    }

    /// The next piece in key order, asking for the one after the window.
    fn next(&mut self, s3: &S3, bucket: &str) -> Option<Piece> {
        let p = self.asked.pop_front()?;
        self.ask(s3, bucket);
        Some(p)
    }
}

impl Drop for Pieces {
    fn drop(&mut self) {
        for (_, _, page) in &self.asked {
            page.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            parse_uri("s3://models/fraud/v3/").unwrap(),
            ("models".into(), "fraud/v3/".into())
        );
        assert_eq!(
            parse_uri("s3://models").unwrap(),
            ("models".into(), "".into())
        );
        for bad in [
            "s3://",
            "s3://A_b/x",
            "s3://ab/x",
            "s3://-ab/x",
            "s3://a..b/x",
            "s4://abc/x",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }

    /// Regression: `s3://models/fraud-detector` must never reach
    /// `fraud-detector-v2/` (a raw string prefix did).
    #[test]
    fn locations_are_folders_not_string_prefixes() {
        let fd = Scope::new("fraud-detector");
        for k in [
            "fraud-detector",
            "fraud-detector/",
            "fraud-detector/a/b.bin",
        ] {
            assert!(fd.contains(k), "{k}");
        }
        for k in [
            "fraud-detector-v2/model.bin",
            "fraud-detector-v2",
            "fraud-detectorx",
            "fraud-detecto",
            "other/fraud-detector",
        ] {
            assert!(!fd.contains(k), "{k}");
        }
        assert_eq!(fd.relative("fraud-detector/a/b.bin"), "a/b.bin");
        assert_eq!(fd.relative("fraud-detector"), "fraud-detector");
        let folder = Scope::new("fd/");
        assert!(folder.contains("fd/x") && folder.contains("fd/") && !folder.contains("fd"));
        assert_eq!(folder.relative("fd/x/y"), "x/y");
        assert!(Scope::new("").contains("anything/at/all"));
        assert_eq!(fd.listings().len(), 2);
        assert_eq!(folder.listings(), vec![("fd/".to_string(), None)]);
    }

    #[test]
    fn local_hosts_use_path_style() {
        assert!(host_is_local("http://127.0.0.1:9000"));
        assert!(host_is_local("http://localhost:9000/"));
        assert!(host_is_local("http://[::1]:9000"));
        assert!(!host_is_local("https://s3.eu-west-1.amazonaws.com"));
    }
}
