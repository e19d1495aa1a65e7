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
    /// Certificate chains, their keys and OCSP responses to staple ("": none); the first also
    /// serves clients that name no host, or one no certificate is for.
    pub certificates: &'static [(&'static str, &'static str, &'static str)],
    /// CA certificates client certificates are verified against (""): none asked for).
    pub client_ca: &'static str,
    /// Certificate revocation lists (PEM) for client certificates ("": none).
    pub client_crl: &'static str,
    /// `"1.2"` (the default) or `"1.3"`: the oldest TLS version taken.
    pub min_version: &'static str,
    /// The `Strict-Transport-Security` value put on every answer ("": none).
    pub hsts: &'static str,
    /// Domains with client CAs of their own: host name (or `*.` pattern), CA, CRL (""): none).
    /// A client naming such a host (SNI) is verified against its CA rather than `client_ca`.
    pub domain_cas: &'static [(&'static str, &'static str, &'static str)],
}

/// The listener's TLS, reloadable.
pub(crate) struct Listener {
    files: Files,
    /// One configuration per trust: 0 for `client_ca`, then one per domain CA.
    configs: arc_swap::ArcSwap<Vec<Arc<rustls::ServerConfig>>>,
    /// The files' modification times and sizes when last read.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

/// Where the listener's TLS comes from.
#[derive(Debug)]
struct Files {
    /// Certificate, key and OCSP response files.
    certificates: Vec<(String, String, Option<String>)>,
    /// Client CAs: the listener's first, then the domains'.
    trusts: Vec<Trust>,
    tls13_only: bool,
    http2: bool,
}

/// Whom client certificates are verified against, for connections naming which hosts.
#[derive(Debug)]
struct Trust {
    /// Host names (lower case, or `*.` patterns); empty for the listener's own.
    names: Vec<String>,
    client_ca: Option<String>,
    client_crl: Option<String>,
}

impl Trust {
    /// The listener's trust first, then one per distinct CA and CRL of the domains: domains
    /// that trust the same CAs share one (a certificate serves all their hosts).
    fn group(
        listener: Trust,
        domains: Vec<(String, Option<String>, Option<String>)>,
    ) -> Vec<Trust> {
        let mut trusts = vec![listener];
        for (name, client_ca, client_crl) in domains {
            let name = name.to_ascii_lowercase();
            match trusts[1..]
                .iter_mut()
                .find(|t| t.client_ca == client_ca && t.client_crl == client_crl)
            {
                Some(t) => t.names.push(name),
                None => trusts.push(Trust {
                    names: vec![name],
                    client_ca,
                    client_crl,
                }),
            }
        }
        trusts
    }

    /// The index of the trust a host (SNI or `Host`) belongs to: its domain's, else the
    /// listener's (0).
    fn of(trusts: &[Trust], host: &str) -> usize {
        let host = crate::gateway::host_name(host);
        trusts
            .iter()
            .position(|t| {
                t.names
                    .iter()
                    .any(|p| crate::gateway::host_matches(p, &host))
            })
            .unwrap_or(0)
    }
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
        let optional = |p: &str, what: &str| match p {
            "" => Ok(None),
            p => path(p, what).map(Some),
        };
        let certificates = def
            .certificates
            .iter()
            .map(|(c, k, o)| {
                Ok((
                    path(c, "certificates")?,
                    path(k, "certificates")?,
                    optional(o, "certificates")?,
                ))
            })
            .collect::<Result<Vec<_>, StartError>>()?;
        let listener = Trust {
            names: Vec::new(),
            client_ca: optional(def.client_ca, "client_ca")?,
            client_crl: optional(def.client_crl, "client_crl")?,
        };
        let domains = def
            .domain_cas
            .iter()
            .map(|(name, ca, crl)| {
                let what = format!("domains` `{name}");
                Ok((
                    name.to_string(),
                    optional(ca, &what)?,
                    optional(crl, &what)?,
                ))
            })
            .collect::<Result<Vec<_>, StartError>>()?;
        let trusts = Trust::group(listener, domains);
        let files = Files {
            certificates,
            trusts,
            tls13_only: def.min_version == "1.3",
            http2,
        };
        let stamps = files.stamps();
        let configs = files
            .load()
            .map_err(|e| StartError::Invalid(format!("`tls`: {e}")))?;
        Ok(Listener {
            files,
            configs: arc_swap::ArcSwap::from_pointee(configs),
            stamps: Mutex::new(stamps),
        })
    }

    /// The trust (index in [`Listener::configs`]) a host (SNI or `Host`) belongs to: its
    /// domain's client CA, else the listener's.
    pub(crate) fn trust_of(&self, host: &str) -> usize {
        Trust::of(&self.files.trusts, host)
    }

    /// Whether some domains have client CAs of their own.
    #[cfg(feature = "mtls")]
    pub(crate) fn has_domain_trusts(&self) -> bool {
        self.files.trusts.len() > 1
    }

    /// The TLS handshake of a new connection, with the configuration of the host it names
    /// (SNI); the trust that verifies its client certificate comes with it.
    pub(crate) async fn accept<S>(
        &self,
        stream: S,
    ) -> std::io::Result<(tokio_rustls::server::TlsStream<S>, usize)>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let configs = self.configs.load_full();
        if configs.len() == 1 {
            let acceptor = tokio_rustls::TlsAcceptor::from(configs[0].clone());
            return Ok((acceptor.accept(stream).await?, 0));
        }
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        let trust = start
            .client_hello()
            .server_name()
            .map_or(0, |n| self.trust_of(n));
        let config = configs[trust].clone();
        Ok((start.into_stream(config).await?, trust))
    }

    /// Reads the files again; on success, new connections use them.
    pub(crate) fn reload(&self) -> Result<usize, String> {
        let stamps = self.files.stamps();
        let configs = self.files.load()?;
        self.configs.store(Arc::new(configs));
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
            .flat_map(|(c, k, o)| [Some(c.as_str()), Some(k.as_str()), o.as_deref()])
            .chain(
                self.trusts
                    .iter()
                    .flat_map(|t| [t.client_ca.as_deref(), t.client_crl.as_deref()]),
            )
            .flatten()
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.paths()
            .map(|f| {
                let m = std::fs::metadata(f).ok()?;
                Some((m.modified().ok()?, m.len()))
            })
            .collect()
    }

    /// One configuration per trust, sharing the certificates.
    fn load(&self) -> Result<Vec<Arc<rustls::ServerConfig>>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut keys = Vec::with_capacity(self.certificates.len());
        for (cert, key, ocsp) in &self.certificates {
            let chain = crate::tls::read_chain(cert)?;
            let der = crate::tls::read_key(key)?;
            let signing = provider
                .key_provider
                .load_private_key(der)
                .map_err(|e| format!("`{key}`: {e}"))?;
            let mut certified = CertifiedKey::new(chain, signing);
            certified
                .keys_match()
                .map_err(|e| format!("`{key}` is not the key of `{cert}`: {e}"))?;
            if let Some(ocsp) = ocsp {
                certified.ocsp = Some(read_ocsp(ocsp)?);
            }
            keys.push(Arc::new(certified));
        }
        let resolver = Arc::new(BySni(keys));
        let versions: &[&'static rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut configs = Vec::with_capacity(self.trusts.len());
        for trust in &self.trusts {
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)
                .map_err(|e| e.to_string())?;
            let builder = match &trust.client_ca {
                Some(ca) => {
                    let roots = crate::tls::read_roots(ca)?;
                    let crls = match &trust.client_crl {
                        Some(crl) => CertificateRevocationListDer::pem_file_iter(crl)
                            .map_err(|e| format!("`{crl}`: {e}"))?
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| format!("`{crl}`: {e}"))?,
                        None => Vec::new(),
                    };
                    // A client may come without a certificate (operations that require one
                    // refuse it); one it presents must verify (and not be revoked), or the
                    // handshake fails.
                    let verifier = WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    )
                    .with_crls(crls)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("`{ca}`: {e}"))?;
                    builder.with_client_cert_verifier(verifier)
                }
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_cert_resolver(resolver.clone());
            config.alpn_protocols = if self.http2 {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            };
            configs.push(Arc::new(config));
        }
        Ok(configs)
    }
}

/// An OCSP response to staple (DER, as `openssl ocsp -respout` writes it), checked to be one.
fn read_ocsp(path: &str) -> Result<Vec<u8>, String> {
    let der = std::fs::read(path).map_err(|e| format!("`{path}`: {e}"))?;
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, … }: 0x30, a length, 0x0a 0x01.
    let body = match der.get(1) {
        Some(n) if n & 0x80 == 0 => 2,
        Some(n) => 2 + usize::from(n & 0x7f),
        None => 0,
    };
    if der.first() != Some(&0x30) || der.get(body..body + 2) != Some(&[0x0a, 0x01][..]) {
        return Err(format!("`{path}` is not an OCSP response (DER)"));
    }
    if der.get(body + 2) != Some(&0) {
        return Err(format!(
            "`{path}` is an OCSP response whose status is not `successful`"
        ));
    }
    Ok(der)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_with_the_same_ca_share_a_trust_and_hosts_find_theirs() {
        let ca = |s: &str| Some(s.to_string());
        let listener = Trust {
            names: Vec::new(),
            client_ca: ca("root.pem"),
            client_crl: None,
        };
        let trusts = Trust::group(
            listener,
            vec![
                ("A.example".into(), ca("a.pem"), None),
                ("*.partners.example".into(), ca("p.pem"), None),
                ("b.example".into(), ca("a.pem"), None),
                ("c.example".into(), ca("a.pem"), ca("revoked.pem")),
            ],
        );
        assert_eq!(trusts.len(), 4, "{trusts:?}");
        let of = |host: &str| Trust::of(&trusts, host);
        assert_eq!(of("a.example"), 1);
        assert_eq!(of("B.EXAMPLE.:8443"), 1, "case, port and trailing dot");
        assert_eq!(of("x.partners.example"), 2);
        assert_eq!(of("x.y.partners.example"), 0, "one label under a wildcard");
        assert_eq!(of("c.example"), 3, "another CRL is another trust");
        assert_eq!(of("elsewhere.example"), 0);
        assert_eq!(of(""), 0);
    }

    #[test]
    fn only_successful_ocsp_responses_are_stapled() {
        let dir = std::env::temp_dir().join(format!("gwgen-ocsp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("write");
            p.display().to_string()
        };
        // SEQUENCE { ENUMERATED 0 (successful), … }, short and long length forms.
        assert!(read_ocsp(&file("ok", &[0x30, 0x03, 0x0a, 0x01, 0x00])).is_ok());
        assert!(read_ocsp(&file("long", &[0x30, 0x81, 0x03, 0x0a, 0x01, 0x00])).is_ok());
        let e = read_ocsp(&file("unauthorized", &[0x30, 0x03, 0x0a, 0x01, 0x06])).unwrap_err();
        assert!(e.contains("not `successful`"), "{e}");
        for junk in [&b"-----BEGIN OCSP"[..], b"", b"\x30"] {
            let e = read_ocsp(&file("junk", junk)).unwrap_err();
            assert!(e.contains("is not an OCSP response"), "{e}");
        }
        assert!(read_ocsp(&dir.join("missing").display().to_string()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
