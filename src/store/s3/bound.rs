//! The request bound: every HTTP request one [`super::S3`] sends (S3 and
//! KMS, each retry included) waits for one of `concurrency` permits, so
//! `--s3-concurrency` bounds what is in flight however many threads and
//! loops (the lister, the request runner, the proof listing) are asking at
//! once. Each loop may then ask ahead freely: the store never sees more.
//!
//! The inner client is the SDK's own default (hyper 1, rustls with aws-lc,
//! proxy settings from the environment), built here as
//! `aws_smithy_runtime`'s `default_https_client` builds it: that function
//! is crate-private, and a wrapper needs the client it wraps.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The SDK's default HTTPS client, its requests bounded by `permits`.
pub fn client(permits: Arc<Semaphore>) -> SharedHttpClient {
    let inner = Builder::new().build_with_connector_fn(|settings, components| {
        let mut b =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    });
    SharedHttpClient::new(Bounded { inner, permits })
}

#[derive(Debug)]
struct Bounded {
    inner: SharedHttpClient,
    permits: Arc<Semaphore>,
}

impl HttpClient for Bounded {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BoundedConnector {
            inner: self.inner.http_connector(settings, components),
            permits: self.permits.clone(),
        })
    }
}

#[derive(Debug)]
struct BoundedConnector {
    inner: SharedHttpConnector,
    permits: Arc<Semaphore>,
}

impl HttpConnector for BoundedConnector {
    /// The permit is held until the answer's head arrives (its body is
    /// read after; the store is done by then).
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, permits) = (self.inner.clone(), self.permits.clone());
        HttpConnectorFuture::new(async move {
            // The semaphore lives as long as the client and is never closed.
            let _permit = permits.acquire_owned().await.ok();
            inner.call(request).await
        })
    }
}
