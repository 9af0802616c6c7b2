//! The one HTTP request loop of the stores that speak JSON over HTTP
//! themselves (Google Cloud Storage, the MLflow registry): reqwest on a
//! private tokio runtime, and the one retry loop.

use crate::error::{Error, Result};
use std::time::Duration;

/// Attempts per request (first try + retries).
pub const MAX_ATTEMPTS: u32 = 6;

/// A client and the runtime its requests run on.
pub struct Http {
    client: reqwest::Client,
    pub rt: tokio::runtime::Runtime,
}

/// An answer: status, Content-Type and body.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Worth another attempt: throttled or a server-side failure.
pub fn transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl Http {
    /// A client for `what` (named in errors).
    pub fn new(what: &str) -> Result<Http> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::input(format!("cannot start the {what} runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::input(format!("cannot build the {what} client: {e}")))?;
        Ok(Http { client, rt })
    }

    /// The underlying client, for a streamed read outside the loop.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// One request, with the one retry loop: transport errors, 408, 429
    /// and 5xx are asked again with exponential backoff (50 ms, doubling)
    /// and jitter, up to [`MAX_ATTEMPTS`] in all. `auth` is the
    /// Authorization header's value; `describe` turns a transient answer's
    /// status and body into words for the last error.
    pub async fn call(
        &self,
        (method, url): (reqwest::Method, &str),
        auth: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        describe: fn(u16, &str) -> String,
    ) -> std::result::Result<Reply, String> {
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                let base = 50u64 << (attempt - 1).min(6);
                let jitter = rand::random::<u64>() % base.max(1);
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
            }
            let mut req = self.client.request(method.clone(), url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Some((ct, b)) = &body {
                req = req.header("content-type", *ct).body(b.clone());
            }
            let answer = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{url}: {e}");
                    continue;
                }
            };
            let status = answer.status().as_u16();
            let content_type = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            match answer.bytes().await {
                Ok(body) if !transient(status) => {
                    return Ok(Reply {
                        status,
                        content_type,
                        body,
                    });
                }
                Ok(body) => last = describe(status, &String::from_utf8_lossy(&body)),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(format!("{last} (after {MAX_ATTEMPTS} attempts)"))
    }
}
