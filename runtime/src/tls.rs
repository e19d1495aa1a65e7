//! The HTTPS client side, for the gateway's own calls (JWKS, OpenID Connect discovery, custom
//! authorizers): rustls with the `ring` provider, trusting the system's root certificates, or
//! those of the file `SSL_CERT_FILE` names (the usual OpenSSL convention, for private CAs).
//!
//! A machine with no root certificates at all still starts: its HTTPS calls then fail (and the
//! requests that need them are refused), and a warning says why.
// Built with `tls`; used by the features that call out over HTTPS.
#![cfg_attr(
    not(any(feature = "proxy", feature = "jwt", feature = "authorizer")),
    allow(dead_code)
)]

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;

/// A connector for `http://` and `https://` URLs.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Builds the connector.
pub fn connector() -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
    {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(
                error = %e,
                "no root certificates could be loaded; HTTPS calls will fail (set SSL_CERT_FILE)"
            );
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    builder.https_or_http().enable_http1().wrap_connector(http)
}
