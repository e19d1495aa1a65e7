//! What a verified client certificate says of the client (mutual TLS): read once per
//! connection, after the handshake verified the certificate against `client_ca`, and shared by
//! every request of the connection. Transforms (`context.identity.clientCert.*`), cache keys
//! (`client_cert.*`), throttles (`per: client_cert`), authorizer and Lambda events
//! (`requestContext.identity.clientCert`, as API Gateway puts it) read it.

// Generated code and the pipeline name the type on every gateway; it is only ever made with
// the `mtls` feature.
#![cfg_attr(not(feature = "mtls"), allow(dead_code))]

/// A verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate, PEM.
    pub pem: String,
    /// The subject, as API Gateway writes it: the attributes in the certificate's order, `,`
    /// between them, values escaped as RFC 4514 says (`C=US,O=Example,CN=client`).
    pub subject: String,
    /// The issuer, likewise.
    pub issuer: String,
    /// The serial number as API Gateway writes it: hex bytes joined by `:`, the first without
    /// a leading zero (`1`, `a1:07:…`).
    pub serial: String,
    /// Start of validity, as API Gateway writes it (`May 28 12:30:02 2026 GMT`).
    pub not_before: String,
    /// End of validity, likewise.
    pub not_after: String,
    /// Subject alternative names, as OpenSSL prints them: `DNS:…`, `IP:…`, `URI:…`, `email:…`.
    pub sans: Vec<String>,
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// Which client CA verified it: 0 for `tls.client_ca`, `n` for the `n`th domain with a
    /// `client_ca` of its own (a request must be for a host of the same trust).
    pub trust: usize,
}

impl ClientCert {
    /// One field by its name: `clientCertPem`, `subjectDN`, `issuerDN`, `serialNumber`,
    /// `validity.notBefore`, `validity.notAfter`, `subjectAlternativeNames` (joined by `,`) or
    /// `fingerprint`.
    pub fn field(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow::{Borrowed, Owned};
        Some(match name {
            "clientCertPem" => Borrowed(self.pem.as_str()),
            "subjectDN" => Borrowed(self.subject.as_str()),
            "issuerDN" => Borrowed(self.issuer.as_str()),
            "serialNumber" => Borrowed(self.serial.as_str()),
            "validity.notBefore" => Borrowed(self.not_before.as_str()),
            "validity.notAfter" => Borrowed(self.not_after.as_str()),
            "subjectAlternativeNames" => Owned(self.sans.join(",")),
            "fingerprint" => Borrowed(self.fingerprint.as_str()),
            _ => return None,
        })
    }

    /// API Gateway's `clientCert` object (REST `requestContext.identity.clientCert`, HTTP API
    /// `requestContext.authentication.clientCert`), with the SANs and fingerprint besides.
    pub fn event(&self) -> serde_json::Value {
        serde_json::json!({
            "clientCertPem": self.pem,
            "subjectDN": self.subject,
            "issuerDN": self.issuer,
            "serialNumber": self.serial,
            "validity": { "notBefore": self.not_before, "notAfter": self.not_after },
            "subjectAlternativeNames": self.sans,
            "fingerprint": self.fingerprint,
        })
    }

    /// Reads a certificate the handshake verified (DER). The fingerprint and PEM are always
    /// there; the rest is empty for what X.509 parsing cannot read.
    #[cfg(feature = "mtls")]
    pub(crate) fn read(der: &[u8], trust: usize) -> ClientCert {
        use base64::Engine as _;
        use sha2::Digest as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        let mut fingerprint = Vec::with_capacity(64);
        crate::trace::push_hex(&mut fingerprint, &sha2::Sha256::digest(der));
        let fingerprint = String::from_utf8(fingerprint).unwrap_or_default();
        let mut out = ClientCert {
            pem,
            fingerprint,
            trust,
            ..ClientCert::default()
        };
        use x509_parser::prelude::FromDer as _;
        if let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(der) {
            out.subject = dn(cert.subject());
            out.issuer = dn(cert.issuer());
            out.serial = serial(cert.raw_serial());
            out.not_before = aws_time(cert.validity().not_before.timestamp());
            out.not_after = aws_time(cert.validity().not_after.timestamp());
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                out.sans = san
                    .value
                    .general_names
                    .iter()
                    .filter_map(san_text)
                    .collect();
            }
        }
        out
    }
}

/// A distinguished name as API Gateway writes it: the RDNs in the certificate's order, `,`
/// between them, `+` inside one, short attribute names where there are some, else the dotted
/// OID and the value's DER in hex (RFC 4514 §2.4).
#[cfg(feature = "mtls")]
fn dn(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let kind = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = match attr.as_str() {
                        Ok(s) => escape_dn(s),
                        Err(_) => {
                            let mut hex = String::from("#");
                            for b in attr.attr_value().as_bytes() {
                                hex.push_str(&format!("{b:02x}"));
                            }
                            hex
                        }
                    };
                    format!("{kind}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.join(",")
}

/// A serial number's bytes (big-endian, leading zeros dropped) as hex joined by `:`.
fn serial(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().skip(start).enumerate() {
        if i == 0 {
            out.push_str(&format!("{b:x}"));
        } else {
            out.push_str(&format!(":{b:02x}"));
        }
    }
    out
}

/// RFC 4514 §2.4: `"+,;<>\` escaped, a leading `#` or space and a trailing space too; control
/// characters as `\XX`.
fn escape_dn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(feature = "mtls")]
fn san_text(name: &x509_parser::extensions::GeneralName<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    Some(match name {
        GeneralName::DNSName(s) => format!("DNS:{s}"),
        GeneralName::RFC822Name(s) => format!("email:{s}"),
        GeneralName::URI(s) => format!("URI:{s}"),
        GeneralName::IPAddress(b) => match b.len() {
            4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?)
            ),
            16 => format!(
                "IP:{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?)
            ),
            _ => return None,
        },
        GeneralName::DirectoryName(n) => format!("DirName:{}", dn(n)),
        _ => return None,
    })
}

/// Unix seconds as API Gateway writes certificate validity: `May 28 12:30:02 2026 GMT`.
pub(crate) fn aws_time(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = crate::throttle::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{} {d:>2} {:02}:{:02}:{:02} {y} GMT",
        MONTHS[(m as usize).clamp(1, 12) - 1],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_as_rfc_4514_says() {
        assert_eq!(escape_dn("Example, Inc."), "Example\\, Inc.");
        assert_eq!(escape_dn("#1 "), "\\#1\\ ");
        assert_eq!(escape_dn(" a+b"), "\\ a\\+b");
        assert_eq!(escape_dn("x\ny"), "x\\0Ay");
        assert_eq!(escape_dn("a=b"), "a=b");
    }

    #[test]
    fn serials_read_as_aws_writes_them() {
        assert_eq!(serial(&[1]), "1");
        assert_eq!(serial(&[0, 0xa1, 0x07]), "a1:07");
        assert_eq!(serial(&[0xa1; 3]), "a1:a1:a1");
        assert_eq!(serial(&[0]), "0");
    }

    #[test]
    fn validity_reads_as_aws_writes_it() {
        assert_eq!(aws_time(0), "Jan  1 00:00:00 1970 GMT");
        assert_eq!(aws_time(1_780_000_000), "May 28 20:26:40 2026 GMT");
    }

    #[test]
    fn fields_are_read_by_name() {
        let c = ClientCert {
            subject: "CN=a".into(),
            sans: vec!["DNS:a".into(), "IP:127.0.0.1".into()],
            ..ClientCert::default()
        };
        // Every member of the event is a field by the same name (`validity.notAfter` inside).
        let event = c.event();
        for (k, v) in event.as_object().expect("an object") {
            match v.as_object() {
                Some(inner) => {
                    for k2 in inner.keys() {
                        assert!(c.field(&format!("{k}.{k2}")).is_some(), "{k}.{k2}");
                    }
                }
                None => assert!(c.field(k).is_some(), "{k}"),
            }
        }
        assert_eq!(c.field("subjectDN").as_deref(), Some("CN=a"));
        assert_eq!(
            c.field("subjectAlternativeNames").as_deref(),
            Some("DNS:a,IP:127.0.0.1")
        );
        assert_eq!(c.field("other"), None);
        assert_eq!(c.event()["validity"]["notAfter"], "");
    }
}
