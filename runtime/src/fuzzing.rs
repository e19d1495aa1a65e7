//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): each takes arbitrary
//! bytes, runs one parser of untrusted input, and asserts what must hold whatever the bytes.
//! None may panic, loop or allocate without bound.

/// Path normalisation: the plain fast path agrees with the full policy; normalised segments
/// hold no empty, `.` or `..` segment; encoding then normalising again gives the same segments.
pub fn path(data: &[u8]) {
    // Only what the HTTP parser lets through as a request target reaches normalisation (no raw
    // controls or spaces).
    let Ok(target) = http::uri::PathAndQuery::try_from(data) else {
        return;
    };
    let raw = target.path();
    for keep in [false, true] {
        let Ok(segs) = crate::path::normalize(raw, keep) else {
            continue;
        };
        if let Some(plain) = crate::path::plain_segments(raw) {
            let plain: Vec<&str> = plain.into_iter().collect();
            let full: Vec<&str> = segs.iter().map(|s| s.as_ref()).collect();
            assert_eq!(plain, full, "the fast path disagrees on {raw:?}");
        }
        for s in &segs {
            assert!(!matches!(s.as_ref(), "" | "." | ".."), "{raw:?} kept {s:?}");
            assert!(!s.contains('\0'), "{raw:?} kept a NUL");
            if !keep {
                assert!(!s.contains(['/', '\\']), "{raw:?} kept a separator");
            }
        }
        let mut encoded = String::new();
        crate::path::encode_path(&mut encoded, &segs);
        assert!(!encoded.contains(';'), "{encoded:?} forwards a `;`");
        let again = crate::path::normalize(&encoded, true).expect("an encoded path normalises");
        assert_eq!(
            segs, again,
            "{raw:?} does not round-trip through {encoded:?}"
        );
    }
}

/// Query strings and form bodies: pairs are decoded, a form becomes a document, and a cache
/// key is made, for any text.
pub fn query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs = crate::validate::input::parse_pairs(text);
    assert!(pairs.len() <= text.len() / 2 + 1);
    crate::validate::input::fuzz_form(text);
    #[cfg(feature = "cache")]
    {
        use crate::cache::{CacheDef, KeyPart, KeySource, UndeclaredQuery};
        const DEF: CacheDef = CacheDef {
            ttl_ms: 1,
            key: &[KeyPart::Query("a")],
            query: &["a", "b"],
            undeclared_query: UndeclaredQuery::Key,
            shared: false,
            invalidate: &[],
            max_entries: None,
        };
        let headers = http::HeaderMap::new();
        let src = |q| KeySource {
            route: "GET /x",
            method: "GET",
            path: &[],
            query: q,
            headers: &headers,
            caller: None,
            identity: None,
            cert: None,
        };
        let key = crate::cache::key(&DEF, &src(Some(text)));
        // The same pairs in another order make the same key.
        let mut reversed: Vec<&str> = text.split('&').collect();
        reversed.reverse();
        let reversed = reversed.join("&");
        let declared_once = ["a", "b"].iter().all(|n| {
            text.split('&')
                .filter(|p| p.split_once('=').map_or(*p, |(k, _)| k) == *n)
                .count()
                <= 1
        });
        if declared_once && !text.contains('%') {
            assert_eq!(key, crate::cache::key(&DEF, &src(Some(&reversed))));
        }
        if let Some(kept) = crate::cache::strip_undeclared(&DEF, text) {
            assert!(kept.len() <= text.len());
        }
    }
}

/// The JSON tape: whatever `serde_json` accepts (within the depth limit) the tape accepts, but
/// for objects that repeat a member name, which the gateway refuses on purpose (which copy
/// would the upstream read?); a parsed document can be walked, compared and hashed; the
/// streaming reader accepts only what the tape accepts.
pub fn json(data: &[u8]) {
    let ours = crate::json::Doc::parse(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let repeats = matches!(&ours, Err(e) if e.message == "an object repeats a member name");
        if depth(&value) < 100 && !repeats {
            assert!(
                ours.is_ok(),
                "serde_json accepts what the tape refuses: {ours:?}"
            );
        }
    }
    if let Ok(doc) = ours {
        assert!(doc.equal(0, &doc, 0));
        let _ = doc.hash(0);
        let _ = crate::validate::unique_items(&doc, 0);
    }
    // The streaming reader accepts nothing the parser refuses, limits included.
    if let Ok(text) = std::str::from_utf8(data) {
        for (depth, values) in [(crate::json::MAX_DEPTH, usize::MAX), (8, 64)] {
            let mut r = crate::json::Stream::new(text, depth, values);
            if crate::json::walk(&mut r) && r.finish() {
                assert!(
                    crate::json::Doc::parse_with_limits(data, depth, values).is_ok(),
                    "the stream accepts what the parser refuses"
                );
            }
        }
    }
    let _ = crate::json::Doc::parse_with_limits(data, 8, 64);
}

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The HTTP/1.1 server's request-head parser and body decoders: any bytes give a head, "not
/// yet" or a refusal, never a panic, and never more than the bytes given.
pub fn request_head(data: &[u8]) {
    crate::h1::fuzz(data);
}

/// The upstream answer-head parser: any bytes give a head, "not yet", or an error, never a
/// panic, and never more than the bytes given.
#[cfg(feature = "proxy")]
pub fn upstream_head(data: &[u8]) {
    for head in [false, true] {
        crate::pool::fuzz_head(data, head);
    }
}
