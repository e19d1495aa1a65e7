//! `compression`: answers compressed in the coding the client prefers (gzip, br, zstd, deflate),
//! and compressed request bodies inflated, within a cap, before anything reads them.
//!
//! The data types are always here (routes name them); the work is behind the `compression`
//! feature, which `gwgen` turns on only for specs that use it.

/// A route's `compression`.
#[derive(Debug)]
pub struct CompressionDef {
    /// Answers: compressed when the client accepts one of these.
    pub responses: Option<ResponseCompression>,
    /// Request bodies: these codings are accepted and inflated.
    pub requests: Option<RequestDecompression>,
}

/// Which answers are compressed.
#[derive(Debug)]
pub struct ResponseCompression {
    /// Codings in the gateway's order of preference (ties in the client's `q` go to the first).
    pub encodings: &'static [Encoding],
    /// Answers whose `Content-Length` is below this stay as they are.
    pub min_size: u64,
    /// Media ranges compressed (`application/json`, `text/*`); others stay as they are.
    pub types: &'static [&'static str],
}

/// Which request bodies are inflated.
#[derive(Debug)]
pub struct RequestDecompression {
    /// The codings accepted; a body in another is 415.
    pub encodings: &'static [Encoding],
    /// The most bytes a body may inflate to; past it, 413.
    pub max_size: u64,
}

/// A content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `gzip`.
    Gzip,
    /// `br`.
    Br,
    /// `zstd`.
    Zstd,
    /// `deflate` (zlib).
    Deflate,
}

impl Encoding {
    /// Its name in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Deflate => "deflate",
        }
    }
}

/// A request body inflated past its route's `compression.requests.max_size` (the cap, in bytes).
#[derive(Debug)]
pub(crate) struct InflatedTooLarge(pub(crate) u64);

impl std::fmt::Display for InflatedTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body inflates past {} bytes", self.0)
    }
}

impl std::error::Error for InflatedTooLarge {}

/// The cap, when `e` (or an error it wraps) is [`InflatedTooLarge`].
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) fn inflated_too_large(e: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<InflatedTooLarge>() {
            return Some(t.0);
        }
        source = s.source();
    }
    None
}

/// The coding to answer in: of `ours`, the one `accept` gives the highest `q` (ties to the
/// earlier of ours); `None` when it accepts none of them.
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) fn negotiate(accept: &str, ours: &[Encoding]) -> Option<Encoding> {
    let mut best: Option<(Encoding, u32)> = None;
    for &encoding in ours {
        let mut q: Option<u32> = None;
        let mut star: Option<u32> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let weight = parts
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| qvalue(v.trim()))
                })
                .unwrap_or(Some(1000));
            let Some(weight) = weight else {
                continue;
            };
            if coding.eq_ignore_ascii_case(encoding.name()) {
                q = Some(weight);
            } else if coding == "*" {
                star = Some(weight);
            }
        }
        let q = q.or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((encoding, q));
        }
    }
    best.map(|(e, _)| e)
}

/// A `q` value (RFC 9110 §12.4.2) in thousandths; `None` when malformed.
fn qvalue(v: &str) -> Option<u32> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u32 = format!("{frac:0<3}").parse().ok()?;
    match whole {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

/// What to do with an answer.
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Not a kind of answer the route compresses: untouched.
    AsItIs,
    /// One it compresses, but the client accepts none of the codings: sent plain, with
    /// `Vary: Accept-Encoding` (another client could get it coded).
    Vary,
    /// Coded.
    Code(Encoding),
}

/// Whether and how an answer is compressed: not for `HEAD`, 1xx, 204, 304 or 206, an answer
/// already coded or holding a range, `Cache-Control: no-transform`, a media type outside
/// `def.types`, or a length under `def.min_size` (its `Content-Length`, else `body_len`, the
/// body's own when it is known, as a mock's or a mapped answer's is); else in the coding the
/// client prefers, if it accepts one.
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) fn plan(
    def: &ResponseCompression,
    method: &http::Method,
    status: http::StatusCode,
    h: &http::HeaderMap,
    accept: Option<&http::HeaderValue>,
    body_len: Option<u64>,
) -> Plan {
    use http::{header, StatusCode};
    let compressible = method != http::Method::HEAD
        && !status.is_informational()
        && !matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
        )
        && !h.contains_key(header::CONTENT_ENCODING)
        && !h.contains_key(header::CONTENT_RANGE)
        && !h.get_all(header::CACHE_CONTROL).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .to_ascii_lowercase()
                .contains("no-transform")
        })
        && h.get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| media_matches(ct, def.types))
        && h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .or(body_len)
            .is_none_or(|len| len >= def.min_size);
    if !compressible {
        return Plan::AsItIs;
    }
    match accept
        .and_then(|a| a.to_str().ok())
        .and_then(|a| negotiate(a, def.encodings))
    {
        Some(encoding) => Plan::Code(encoding),
        None => Plan::Vary,
    }
}

/// Adds `Vary: Accept-Encoding` unless the answer varies on it (or on everything) already.
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) fn vary_on_accept_encoding(h: &mut http::HeaderMap) {
    let already = h.get_all(http::header::VARY).iter().any(|v| {
        v.to_str().unwrap_or("").split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.eq_ignore_ascii_case("accept-encoding")
        })
    });
    if !already {
        h.append(
            http::header::VARY,
            http::HeaderValue::from_static("accept-encoding"),
        );
    }
}

/// A strong `ETag` names the plain bytes; the coded ones get it weak (`W/"…"`), as nginx does.
/// `None` when it is weak already.
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) fn weak_etag(tag: &http::HeaderValue) -> Option<http::HeaderValue> {
    if tag.as_bytes().starts_with(b"W/") {
        return None;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(tag.as_bytes());
    http::HeaderValue::from_bytes(&weak).ok()
}

/// Whether a `Content-Type` is one of the media ranges (`text/*`, `*/*`, or exact).
fn media_matches(content_type: &str, ranges: &[&str]) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    ranges.iter().any(|r| match r.strip_suffix("/*") {
        _ if *r == "*/*" => true,
        Some(top) => essence
            .split_once('/')
            .is_some_and(|(t, _)| t.eq_ignore_ascii_case(top)),
        None => essence.eq_ignore_ascii_case(r),
    })
}

#[cfg(feature = "compression")]
mod work {
    use super::*;
    use axum::body::Body;
    use http::{header, HeaderValue, Method, StatusCode};

    use super::{plan, vary_on_accept_encoding, weak_etag, Plan};
    use tokio_util::io::{ReaderStream, StreamReader};

    use crate::problem::Problem;

    /// The answer, compressed when `def` and the client's `Accept-Encoding` ask for it.
    pub(crate) fn compress(
        def: &ResponseCompression,
        method: &Method,
        accept: Option<&HeaderValue>,
        mut resp: http::Response<Body>,
    ) -> http::Response<Body> {
        let body_len = http_body::Body::size_hint(resp.body()).exact();
        let encoding = match plan(def, method, resp.status(), resp.headers(), accept, body_len) {
            Plan::AsItIs => return resp,
            Plan::Vary => {
                vary_on_accept_encoding(resp.headers_mut());
                return resp;
            }
            Plan::Code(encoding) => encoding,
        };
        let (mut parts, body) = resp.into_parts();
        vary_on_accept_encoding(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.name()),
        );
        if let Some(weak) = parts.headers.get(header::ETAG).and_then(weak_etag) {
            parts.headers.insert(header::ETAG, weak);
        }
        let reader = tokio::io::BufReader::new(StreamReader::new(io_stream(body)));
        use async_compression::tokio::bufread as enc;
        let encoder: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match encoding {
            Encoding::Gzip => Box::new(enc::GzipEncoder::new(reader)),
            Encoding::Br => Box::new(enc::BrotliEncoder::with_quality(
                reader,
                async_compression::Level::Precise(4),
            )),
            Encoding::Zstd => Box::new(enc::ZstdEncoder::new(reader)),
            Encoding::Deflate => Box::new(enc::ZlibEncoder::new(reader)),
        };
        http::Response::from_parts(parts, Body::from_stream(ReaderStream::new(encoder)))
    }

    /// A request body in a content coding: inflated (its `Content-Encoding` and length gone),
    /// reading at most `max_size` bytes out of it (past that, whoever reads it gets a length
    /// error: 413); 415 for a coding the route does not take.
    pub(crate) fn inflate(
        def: Option<&RequestDecompression>,
        req: &mut http::Request<Body>,
    ) -> Result<(), Problem> {
        let mut codings = req.headers().get_all(header::CONTENT_ENCODING).iter();
        let Some(coding) = codings.next() else {
            return Ok(());
        };
        // Codings applied one over another (two fields, or a list in one) are not taken: the
        // gateway would inflate one and pass the rest on as if plain.
        let several = codings.next().is_some();
        let coding = coding.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if coding == "identity" && !several {
            req.headers_mut().remove(header::CONTENT_ENCODING);
            return Ok(());
        }
        let accepted = def.map_or(&[][..], |d| d.encodings);
        let found = accepted.iter().copied().find(|e| e.name() == coding);
        let Some(encoding) = found.filter(|_| !several) else {
            let detail = if several {
                "this operation takes a request body in one coding at most".to_string()
            } else {
                format!("this operation takes no request body in the coding `{coding}`")
            };
            let mut p = Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
                detail,
            );
            let list: Vec<&str> = accepted.iter().map(|e| e.name()).collect();
            let value = if list.is_empty() {
                "identity".to_string()
            } else {
                list.join(", ")
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                p.headers.push((header::ACCEPT_ENCODING, v));
            }
            return Err(p);
        };
        let max = def.map_or(0, |d| d.max_size);
        let body = std::mem::take(req.body_mut());
        let reader = tokio::io::BufReader::new(StreamReader::new(io_stream(body)));
        use async_compression::tokio::bufread as dec;
        let decoder: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match encoding {
            Encoding::Gzip => Box::new(dec::GzipDecoder::new(reader)),
            Encoding::Br => Box::new(dec::BrotliDecoder::new(reader)),
            Encoding::Zstd => Box::new(dec::ZstdDecoder::new(reader)),
            Encoding::Deflate => Box::new(dec::ZlibDecoder::new(reader)),
        };
        // Counted as it comes out: a small body that inflates without end stops at the cap,
        // having held no more than one read's worth of it.
        let mut out = 0u64;
        let counted = futures_util::StreamExt::map(ReaderStream::new(decoder), move |item| {
            let bytes = item.map_err(axum::BoxError::from)?;
            out += bytes.len() as u64;
            if out > max {
                return Err(axum::BoxError::from(InflatedTooLarge(max)));
            }
            Ok(bytes)
        });
        *req.body_mut() = Body::from_stream(counted);
        let h = req.headers_mut();
        h.remove(header::CONTENT_ENCODING);
        h.remove(header::CONTENT_LENGTH);
        Ok(())
    }

    /// A body's bytes as a stream of I/O results, for `StreamReader`.
    fn io_stream(
        body: Body,
    ) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
        futures_util::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other)
    }
}

#[cfg(feature = "compression")]
pub(crate) use work::{compress, inflate};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_answers_are_coded() {
        use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
        let def = ResponseCompression {
            encodings: &[Encoding::Br, Encoding::Gzip],
            min_size: 100,
            types: &["application/json", "text/*"],
        };
        let gzip = HeaderValue::from_static("gzip");
        let typed = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h
        };
        let json = || typed("application/json; charset=utf-8");
        let plan_of =
            |method: &Method, status: u16, h: &HeaderMap, accept: Option<&HeaderValue>| {
                plan(
                    &def,
                    method,
                    StatusCode::from_u16(status).unwrap(),
                    h,
                    accept,
                    None,
                )
            };
        assert_eq!(
            plan_of(&Method::GET, 200, &json(), Some(&gzip)),
            Plan::Code(Encoding::Gzip)
        );
        assert_eq!(plan_of(&Method::GET, 200, &json(), None), Plan::Vary);
        assert_eq!(
            plan_of(&Method::GET, 200, &typed("text/csv"), Some(&gzip)),
            Plan::Code(Encoding::Gzip)
        );
        assert_eq!(
            plan_of(&Method::GET, 200, &typed("image/png"), Some(&gzip)),
            Plan::AsItIs
        );
        assert_eq!(
            plan_of(&Method::GET, 200, &HeaderMap::new(), Some(&gzip)),
            Plan::AsItIs
        );
        // (method, status, a header added): none of these is coded.
        type Case = (Method, u16, Option<(header::HeaderName, &'static str)>);
        let cases: [Case; 8] = [
            (Method::HEAD, 200, None),
            (Method::GET, 204, None),
            (Method::GET, 304, None),
            (Method::GET, 206, None),
            (Method::GET, 200, Some((header::CONTENT_ENCODING, "br"))),
            (
                Method::GET,
                200,
                Some((header::CONTENT_RANGE, "bytes 0-1/2")),
            ),
            (
                Method::GET,
                200,
                Some((header::CACHE_CONTROL, "public, No-Transform")),
            ),
            (Method::GET, 200, Some((header::CONTENT_LENGTH, "99"))),
        ];
        for (method, status, extra) in cases {
            let mut h = json();
            if let Some((n, v)) = extra.clone() {
                h.insert(n, HeaderValue::from_static(v));
            }
            assert_eq!(
                plan_of(&method, status, &h, Some(&gzip)),
                Plan::AsItIs,
                "{method} {status} {extra:?}"
            );
        }
        let mut h = json();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("100"));
        assert_eq!(
            plan_of(&Method::GET, 200, &h, Some(&gzip)),
            Plan::Code(Encoding::Gzip)
        );
        // Without `Content-Length`, the body's own length when it is known (a mock's answer).
        let sized = |len: Option<u64>| {
            plan(
                &def,
                &Method::GET,
                StatusCode::OK,
                &json(),
                Some(&gzip),
                len,
            )
        };
        assert_eq!(sized(Some(99)), Plan::AsItIs);
        assert_eq!(sized(Some(100)), Plan::Code(Encoding::Gzip));
        assert_eq!(sized(None), Plan::Code(Encoding::Gzip));
    }

    #[test]
    fn vary_once_and_weak_etags() {
        use http::{header, HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        vary_on_accept_encoding(&mut h);
        vary_on_accept_encoding(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("*"));
        vary_on_accept_encoding(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        let strong = HeaderValue::from_static("\"a\"");
        assert_eq!(
            weak_etag(&strong),
            Some(HeaderValue::from_static("W/\"a\""))
        );
        assert_eq!(weak_etag(&HeaderValue::from_static("W/\"a\"")), None);
    }

    #[test]
    fn the_clients_q_decides_then_our_order() {
        let ours = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];
        assert_eq!(negotiate("gzip, br", &ours), Some(Encoding::Br));
        assert_eq!(negotiate("gzip;q=1, br;q=0.5", &ours), Some(Encoding::Gzip));
        assert_eq!(negotiate("br;q=0, gzip;q=0.1", &ours), Some(Encoding::Gzip));
        assert_eq!(negotiate("*", &ours), Some(Encoding::Br));
        assert_eq!(negotiate("*;q=0.2, br;q=0", &ours), Some(Encoding::Zstd));
        assert_eq!(negotiate("identity", &ours), None);
        assert_eq!(negotiate("", &ours), None);
        assert_eq!(
            negotiate("gzip;q=2", &ours),
            None,
            "a malformed q is ignored"
        );
        assert_eq!(negotiate("GZIP;Q=0.500", &ours), Some(Encoding::Gzip));
    }
}
