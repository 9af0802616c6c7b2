//! What the manifest and the plan record of a Google Cloud Storage
//! location, with no client: the `[gcs]` settings, the endpoint and the
//! `gs://` URI. The lower layers (manifest, plan, journal) import this
//! file and nothing else of the GCS store.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Where the JSON API lives when neither the manifest nor
/// `STORAGE_EMULATOR_HOST` names another endpoint.
pub const GOOGLE_ENDPOINT: &str = "https://storage.googleapis.com";
/// Batch requests in flight at once, unless `[gcs] concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The most requests in flight a setting may ask for.
pub const MAX_CONCURRENCY: usize = 256;
/// Calls per JSON batch request (the GCS maximum).
pub const BATCH: usize = 100;
/// Objects per listing page (the GCS maximum).
pub const LIST_PAGE: usize = 1000;
/// Purged generations asked for by generation in the absence proof
/// (`verify = "sample"`), unless `verify_sample` says otherwise.
pub const DEFAULT_VERIFY_SAMPLE: usize = 64;

/// How execute proves that purged generations are gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// A complete listing with every generation, plus a GET by generation
    /// of a random sample.
    #[default]
    Sample,
    /// The listing plus a GET of every purged generation.
    Each,
}

/// The manifest's `[gcs]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The JSON API endpoint (an emulator: `http://127.0.0.1:4443`).
    /// Default: `STORAGE_EMULATOR_HOST`, else Google's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Stream and hash generations to find components by SHA-256.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hash_remote: bool,
    /// Requests in flight at once (default [`DEFAULT_CONCURRENCY`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// How execute proves absence (default [`VerifyMode::Sample`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyMode>,
    /// Generations asked for per location in sample mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_sample: Option<usize>,
}

impl Settings {
    /// Requests in flight: the setting, checked, or the default.
    pub fn concurrency(&self) -> Result<usize> {
        match self.concurrency {
            None => Ok(DEFAULT_CONCURRENCY),
            Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
            Some(n) => Err(Error::input(format!(
                "[gcs] concurrency {n} is out of range (1 to {MAX_CONCURRENCY} requests in flight)"
            ))),
        }
    }

    /// The absence proof asked for: the mode and the sample's size.
    pub fn proof(&self) -> Result<(VerifyMode, usize)> {
        let n = self.verify_sample.unwrap_or(DEFAULT_VERIFY_SAMPLE);
        if n == 0 || n > 1_000_000 {
            return Err(Error::input(format!(
                "[gcs] verify_sample {n} is out of range (1 to 1000000 generations asked for per location)"
            )));
        }
        Ok((self.verify.unwrap_or_default(), n))
    }

    /// Check what can be checked before anything is asked of a store.
    pub fn check(&self) -> Result<()> {
        self.concurrency()?;
        self.proof()?;
        if let Some(u) = &self.endpoint_url {
            endpoint_url(u, "[gcs] endpoint_url")?;
        }
        Ok(())
    }
}

/// The endpoint trace used, recorded in the plan so execute talks to the
/// store the custodian approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub url: String,
    /// Whether requests carry Application Default Credentials (`https://`
    /// endpoints); a plain `http://` emulator gets none.
    pub credentials: bool,
}

impl Endpoint {
    /// The endpoint a URL names (checked: http or https, a host, no path).
    pub fn of(url: &str, what: &str) -> Result<Endpoint> {
        let url = endpoint_url(url, what)?;
        Ok(Endpoint {
            credentials: url.starts_with("https://"),
            url,
        })
    }
}

/// `http(s)://host[:port]` with no path, query or user; a bare
/// `host:port` (as `STORAGE_EMULATOR_HOST` is often written) is `http://`.
fn endpoint_url(url: &str, what: &str) -> Result<String> {
    let bad = |why: &str| Error::input(format!("{what} {url:?}: {why}"));
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let rest = full
        .strip_prefix("http://")
        .or_else(|| full.strip_prefix("https://"))
        .ok_or_else(|| bad("not an http:// or https:// URL"))?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty()
        || host.contains(['/', '?', '#', '@'])
        || host.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(bad("name a host and port only (http://127.0.0.1:4443)"));
    }
    Ok(full.trim_end_matches('/').to_string())
}

/// Parse `gs://bucket/prefix`: a bucket name as GCS allows it (3 to 63
/// characters of lowercase letters, digits, `-`, `_` and `.`, up to 222
/// with dots, starting and ending with a letter or digit) and an object
/// name prefix.
pub fn parse_uri(uri: &str) -> Result<(String, String)> {
    let bad = |m: &str| Err(Error::input(format!("location {uri:?}: {m}")));
    let Some(rest) = uri.strip_prefix("gs://") else {
        return bad("not a gs:// URI");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let max = if bucket.contains('.') { 222 } else { 63 };
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=max).contains(&bucket.len())
        && bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && edge(bucket.bytes().next())
        && edge(bucket.bytes().last())
        && !bucket.contains("..")
        && !bucket.starts_with("goog");
    if !ok {
        return bad(&format!(
            "{bucket:?} is not a valid bucket name (3-63 lowercase letters, digits, '-', '_' and '.')"
        ));
    }
    if prefix.len() > 1024 || prefix.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
        return bad("the object name prefix is not valid");
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_bucket_and_a_folder() {
        assert_eq!(
            parse_uri("gs://models/fd").unwrap(),
            ("models".into(), "fd".into())
        );
        assert_eq!(
            parse_uri("gs://my_b.x").unwrap(),
            ("my_b.x".into(), "".into())
        );
        for bad in [
            "s3://models/fd",
            "gs://",
            "gs://ab",
            "gs://Models/x",
            "gs://-models",
            "gs://models-/x",
            "gs://a..b/x",
            "gs://googmodels/x",
            "gs://models/a\nb",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_a_host_and_port_and_only_https_gets_credentials() {
        let e = Endpoint::of("127.0.0.1:4443", "x").unwrap();
        assert_eq!(e.url, "http://127.0.0.1:4443");
        assert!(!e.credentials);
        let e = Endpoint::of("https://storage.googleapis.com/", "x").unwrap();
        assert_eq!(e.url, GOOGLE_ENDPOINT);
        assert!(e.credentials);
        for bad in [
            "ftp://x",
            "http://",
            "http://h/path",
            "http://u@h",
            "http://h x",
        ] {
            assert!(Endpoint::of(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_out_of_range_are_input_errors() {
        let s = Settings {
            concurrency: Some(0),
            ..Default::default()
        };
        assert!(s.check().is_err());
        let s = Settings {
            verify_sample: Some(0),
            ..Default::default()
        };
        assert!(s.check().is_err());
        assert!(Settings::default().check().is_ok());
    }
}
