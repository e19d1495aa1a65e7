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

/// A connector for one integration's upstreams: trusting only the certificates of the PEM file
/// `ca` (else what [`connector`] trusts), and presenting the client certificate chain and key of
/// `identity` (PEM files) to servers that ask for one (mutual TLS). With `http2`, TLS offers
/// only `h2` by ALPN.
#[cfg(feature = "proxy")]
pub fn connector_with(
    ca: Option<&str>,
    identity: Option<(&str, &str)>,
    http2: bool,
) -> Result<Connector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let roots = match ca {
        Some(ca) => Arc::new(read_roots(ca)?),
        None => native_roots(),
    };
    let builder = builder.with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let (chain, key) = (read_chain(cert)?, read_key(key)?);
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate `{cert}`: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    #[cfg(feature = "http2")]
    if http2 {
        return Ok(builder.enable_http2().wrap_connector(http));
    }
    debug_assert!(!http2, "HTTP/2 is built with the `http2` feature");
    Ok(builder.enable_http1().wrap_connector(http))
}

/// The certificate chain of the PEM file `path` (one certificate at least).
#[cfg(any(feature = "proxy", feature = "https"))]
pub(crate) fn read_chain(
    path: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("`{path}`: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{path}`: {e}"))?;
    if chain.is_empty() {
        return Err(format!("`{path}` holds no certificate"));
    }
    Ok(chain)
}

/// The CA certificates of the PEM file `path` (one at least), to verify peers against.
#[cfg(any(feature = "proxy", feature = "https"))]
pub(crate) fn read_roots(path: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_chain(path)? {
        roots.add(cert).map_err(|e| format!("`{path}`: {e}"))?;
    }
    Ok(roots)
}

/// The private key of the PEM file `path` (PKCS#8, PKCS#1 or SEC1).
#[cfg(any(feature = "proxy", feature = "https"))]
pub(crate) fn read_key(path: &str) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::PrivateKeyDer::from_pem_file(path).map_err(|e| format!("`{path}`: {e}"))
}

/// The system's root certificates (or those of `SSL_CERT_FILE`), read once, when the first
/// connector is built: every connector after it shares them. With none, a warning says why.
fn native_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<rustls::RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(loaded.certs);
            if roots.is_empty() {
                let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
                tracing::error!(
                    errors = ?errors,
                    "no root certificates could be loaded; HTTPS calls will fail (set SSL_CERT_FILE)"
                );
            }
            Arc::new(roots)
        })
        .clone()
}

/// Builds the connector, trusting the system's root certificates.
pub fn connector() -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder
            .with_root_certificates(native_roots())
            .with_no_client_auth(),
        // The `ring` provider supports the default versions: this is not reached.
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(native_roots())
            .with_no_client_auth(),
    };
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}
