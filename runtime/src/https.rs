//! TLS on the listener (`tls` at the root of `x-gateway`): rustls with the `ring` provider,
//! certificates and keys from PEM files, the certificate chosen by the name the client asks for
//! (SNI), TLS 1.2 and 1.3 (or 1.3 only), ALPN `h2` and `http/1.1`, and client certificates
//! verified against a CA when `client_ca` is set.
//!
//! The files are read at start (a missing or broken one is a start-up error that names it), and
//! again on SIGHUP and whenever one of them changes (checked every 2 s): a new configuration
//! serves the connections that come after it, those already open keep theirs, and a broken file
//! keeps the configuration in use (a warning says why).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateRevocationListDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::stage::{Stage, StartError};

/// The listener's TLS settings, as generated code describes them: paths of PEM files, which may
/// interpolate stage and environment variables.
#[derive(Debug, Clone, Copy)]
pub struct TlsListenerDef {
    /// Certificate chains and their keys; the first also serves clients that name no host, or
    /// one no certificate is for.
    pub certificates: &'static [(&'static str, &'static str)],
    /// CA certificates client certificates are verified against (""): none asked for).
    pub client_ca: &'static str,
    /// Certificate revocation lists (PEM) for client certificates ("": none).
    pub client_crl: &'static str,
    /// `"1.2"` (the default) or `"1.3"`: the oldest TLS version taken.
    pub min_version: &'static str,
    /// The `Strict-Transport-Security` value put on every answer ("": none).
    pub hsts: &'static str,
}

/// The listener's TLS, reloadable.
pub(crate) struct Listener {
    files: Files,
    config: arc_swap::ArcSwap<rustls::ServerConfig>,
    /// The files' modification times and sizes when last read.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

/// Where the listener's TLS comes from.
#[derive(Debug)]
struct Files {
    certificates: Vec<(String, String)>,
    client_ca: Option<String>,
    client_crl: Option<String>,
    tls13_only: bool,
    http2: bool,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("files", &self.files)
            .finish()
    }
}

impl Listener {
    /// Reads the files `def` names (interpolated for `stage`); with `http2`, ALPN offers `h2`.
    pub(crate) fn new(
        stage: &Stage,
        def: &TlsListenerDef,
        http2: bool,
    ) -> Result<Self, StartError> {
        let path = |p: &str, what: &str| stage.interpolate(p, &format!("`tls.{what}`"));
        let certificates = def
            .certificates
            .iter()
            .map(|(c, k)| Ok((path(c, "certificates")?, path(k, "certificates")?)))
            .collect::<Result<Vec<_>, StartError>>()?;
        let client_ca = match def.client_ca {
            "" => None,
            ca => Some(path(ca, "client_ca")?),
        };
        let client_crl = match def.client_crl {
            "" => None,
            crl => Some(path(crl, "client_crl")?),
        };
        let files = Files {
            certificates,
            client_ca,
            client_crl,
            tls13_only: def.min_version == "1.3",
            http2,
        };
        let stamps = files.stamps();
        let config = files
            .load()
            .map_err(|e| StartError::Invalid(format!("`tls`: {e}")))?;
        Ok(Listener {
            files,
            config: arc_swap::ArcSwap::from_pointee(config),
            stamps: Mutex::new(stamps),
        })
    }

    /// The configuration for a new connection.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// Reads the files again; on success, new connections use them.
    pub(crate) fn reload(&self) -> Result<usize, String> {
        let stamps = self.files.stamps();
        let config = self.files.load()?;
        self.config.store(Arc::new(config));
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        Ok(self.files.certificates.len())
    }

    /// Reloads whenever a file changes (checked every 2 s), for as long as the process runs.
    pub(crate) fn watch(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let now = me.files.stamps();
                let changed = *me.stamps.lock().unwrap_or_else(|e| e.into_inner()) != now;
                if changed {
                    me.reloaded("a certificate file changed");
                }
            }
        });
    }

    /// Reloads, and says in the log how it went.
    pub(crate) fn reloaded(&self, why: &str) {
        match self.reload() {
            Ok(n) => tracing::info!(certificates = n, reason = why, "TLS certificates reloaded"),
            Err(e) => {
                // The same broken files are not read again every 2 s.
                *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = self.files.stamps();
                tracing::warn!(error = %e, reason = why, "TLS certificates not reloaded; the loaded ones stay")
            }
        }
    }
}

impl Files {
    fn paths(&self) -> impl Iterator<Item = &str> {
        self.certificates
            .iter()
            .flat_map(|(c, k)| [c.as_str(), k.as_str()])
            .chain(self.client_ca.as_deref())
            .chain(self.client_crl.as_deref())
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.paths()
            .map(|f| {
                let m = std::fs::metadata(f).ok()?;
                Some((m.modified().ok()?, m.len()))
            })
            .collect()
    }

    fn load(&self) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut keys = Vec::with_capacity(self.certificates.len());
        for (cert, key) in &self.certificates {
            let chain = crate::tls::read_chain(cert)?;
            let der = crate::tls::read_key(key)?;
            let signing = provider
                .key_provider
                .load_private_key(der)
                .map_err(|e| format!("`{key}`: {e}"))?;
            let certified = CertifiedKey::new(chain, signing);
            certified
                .keys_match()
                .map_err(|e| format!("`{key}` is not the key of `{cert}`: {e}"))?;
            keys.push(Arc::new(certified));
        }
        let versions: &[&'static rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let roots = crate::tls::read_roots(ca)?;
                let crls = match &self.client_crl {
                    Some(crl) => CertificateRevocationListDer::pem_file_iter(crl)
                        .map_err(|e| format!("`{crl}`: {e}"))?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("`{crl}`: {e}"))?,
                    None => Vec::new(),
                };
                // A client may come without a certificate (operations that require one refuse
                // it); one it presents must verify (and not be revoked), or the handshake fails.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .with_crls(crls)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| format!("`{ca}`: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(BySni(keys)));
        config.alpn_protocols = if self.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(config)
    }
}

/// Picks the first certificate valid for the name the client asks for (SNI), else the first.
#[derive(Debug)]
struct BySni(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let first = self.0.first()?;
        let Some(name) = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n).ok())
        else {
            return Some(first.clone());
        };
        self.0
            .iter()
            .find(|k| {
                k.end_entity_cert()
                    .ok()
                    .and_then(|c| webpki::EndEntityCert::try_from(c).ok())
                    .is_some_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
            })
            .or(Some(first))
            .cloned()
    }
}

/// Marks a request whose connection presented a client certificate that the handshake verified
/// against `client_ca` (what the certificate says of the client is not read yet: its presence
/// is what `mutualTLS` asks for).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientCert;
