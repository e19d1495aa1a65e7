//! Path normalisation: one policy, applied before routing, and the same normalised path is the
//! one authorisation sees and the one forwarded upstream.
//!
//! The policy (documented in docs/gateway.md):
//! - empty segments are dropped, so `//a//b/` is `/a/b` (a trailing slash does not matter);
//! - `.` segments are dropped and `..` removes the previous segment, never climbing above `/`;
//! - each segment is percent-decoded once; invalid escapes or UTF-8 are a 400;
//! - a segment that decodes to `.` or `..` (`%2e%2e`) is refused with a 400, since upstreams
//!   disagree on what it means;
//! - a segment holding an encoded slash or backslash (`%2F`, `%5C`), or a raw backslash, is
//!   refused with a 400 (as Envoy's `REJECT_REQUEST`), since upstreams disagree on whether it
//!   splits the path; with `escaped_slashes: keep` it stays inside its segment, never splits a
//!   path parameter, and is re-encoded when forwarded;
//! - an encoded NUL (`%00`) is always a 400;
//! - a forwarded segment is re-encoded: `;` among others, so no upstream reads matrix
//!   parameters the router did not see.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A percent escape that does not decode to UTF-8.
    BadEncoding,
    /// A segment that decodes to `.` or `..`.
    EncodedDotSegment,
    /// An encoded `/` or `\\`, or a raw `\\`, inside a segment (with `escaped_slashes: reject`).
    EncodedSlash,
    /// An encoded NUL.
    EncodedNul,
}

impl PathError {
    /// The message for the client.
    pub fn message(self) -> &'static str {
        match self {
            PathError::BadEncoding => "the path contains an invalid percent-encoding",
            PathError::EncodedDotSegment => "the path contains an encoded `.` or `..` segment",
            PathError::EncodedSlash => {
                "the path contains a backslash or an encoded `/` or `\\` (`%2F`, `%5C`)"
            }
            PathError::EncodedNul => "the path contains an encoded NUL (`%00`)",
        }
    }
}

/// The segments of a path that needs no decoding (no `%`) and holds no backslash, normalised,
/// borrowed from it: the common case, which allocates nothing for up to 16 segments. `None`
/// otherwise (use [`normalize`]).
pub fn plain_segments(raw: &str) -> Option<Segments<'_>> {
    let mut segments = Segments::new();
    plain_segments_into(raw, &mut segments).then_some(segments)
}

/// `plain_segments` into a caller's buffer; `false` when the path has escapes.
pub fn plain_segments_into<'a>(raw: &'a str, out: &mut Segments<'a>) -> bool {
    out.clear();
    let bytes = raw.as_bytes();
    if memchr::memchr2(b'%', b'\\', bytes).is_some() {
        return false;
    }
    // `/` is ASCII, so every cut is on a character boundary.
    let mut start = 0;
    for end in memchr::memchr_iter(b'/', bytes).chain(std::iter::once(bytes.len())) {
        match &raw[start..end] {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            seg => out.push(seg),
        }
        start = end + 1;
    }
    true
}

/// Borrowed path segments, inline up to 16.
pub type Segments<'a> = smallvec::SmallVec<[&'a str; 16]>;

/// The decoded segments of a normalised path; `keep_slashes` lets `%2F` and `%5C` stay inside
/// their segment instead of refusing the path.
pub fn normalize(raw: &str, keep_slashes: bool) -> Result<Vec<Cow<'_, str>>, PathError> {
    let mut segments: Vec<Cow<'_, str>> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ if seg.contains('%') => {
                if !escapes_are_whole(seg) {
                    return Err(PathError::BadEncoding);
                }
                let decoded = percent_decode_str(seg)
                    .decode_utf8()
                    .map_err(|_| PathError::BadEncoding)?;
                if decoded == "." || decoded == ".." {
                    return Err(PathError::EncodedDotSegment);
                }
                if decoded.contains('\0') {
                    return Err(PathError::EncodedNul);
                }
                if !keep_slashes && decoded.contains(['/', '\\']) {
                    return Err(PathError::EncodedSlash);
                }
                segments.push(decoded);
            }
            _ if !keep_slashes && seg.contains('\\') => return Err(PathError::EncodedSlash),
            _ => segments.push(Cow::Borrowed(seg)),
        }
    }
    Ok(segments)
}

/// Whether every `%` in `seg` starts an escape of two hex digits.
fn escapes_are_whole(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Characters encoded in a forwarded path segment: everything but RFC 3986 `pchar`s.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A byte class as a lookup table: the bytes from `from` to `to` (inclusive) but those in
/// `except`.
pub(crate) const fn byte_class(from: u8, to: u8, except: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = from as usize;
    while b <= to as usize {
        t[b] = true;
        b += 1;
    }
    let mut i = 0;
    while i < except.len() {
        t[except[i] as usize] = false;
        i += 1;
    }
    t
}

/// The bytes [`SEGMENT`] leaves as they are (printable ASCII but the ones it names).
static SEGMENT_SAFE: [bool; 256] = byte_class(0x21, 0x7e, b"\"#%/;<>?[\\]^`{|}");

/// Characters encoded in a value placed into one segment of an upstream URL template: all but
/// the unreserved ones, so a value can never add a segment, a query or another host.
const VALUE: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `segments` to `out` as an encoded path (`/a/b%2Fc`).
pub fn encode_path<S: AsRef<str>>(out: &mut String, segments: &[S]) {
    for s in segments {
        out.push('/');
        let s = s.as_ref();
        // Most segments need no escape: those are copied whole.
        if s.bytes().all(|b| SEGMENT_SAFE[usize::from(b)]) {
            out.push_str(s);
        } else {
            out.extend(utf8_percent_encode(s, SEGMENT));
        }
    }
    if segments.is_empty() {
        out.push('/');
    }
}

/// Whether `path` is what [`encode_path`] writes for `segments`, found without writing it:
/// each segment needs no escape, and they follow a `/` each (`/` alone for none). `false` for
/// segments that need an escape, whatever `path` is.
pub fn spells_path<S: AsRef<str>>(path: &str, segments: &[S]) -> bool {
    if segments.is_empty() {
        return path == "/";
    }
    let mut rest = path.as_bytes();
    for s in segments {
        let s = s.as_ref().as_bytes();
        let Some((seg, after)) = rest
            .strip_prefix(b"/")
            .and_then(|r| r.split_at_checked(s.len()))
        else {
            return false;
        };
        // Segments are most often borrowed from this very path: then they are equal as they are.
        let same = std::ptr::eq(seg.as_ptr(), s.as_ptr()) || seg == s;
        if !same || !s.iter().all(|&b| SEGMENT_SAFE[usize::from(b)]) {
            return false;
        }
        rest = after;
    }
    rest.is_empty()
}

/// Appends a greedy parameter's value (segments joined with `/`): each segment encoded as
/// [`encode_value`] encodes it, the `/` between them kept.
pub fn encode_rest(out: &mut String, value: &str) {
    for (i, segment) in value.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode_value(out, segment);
    }
}

/// Appends one value, encoded so that it stays one path segment.
pub fn encode_value(out: &mut String, value: &str) {
    if value == "." || value == ".." {
        // Dot segments would be resolved by the upstream; encode them so they stay data.
        out.extend(std::iter::repeat_n("%2E", value.len()));
        return;
    }
    out.extend(utf8_percent_encode(value, VALUE));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<Vec<String>, PathError> {
        normalize(p, true).map(|v| v.into_iter().map(|c| c.into_owned()).collect())
    }

    #[test]
    fn policy() {
        assert_eq!(norm("/a//b/").unwrap(), vec!["a", "b"]);
        assert_eq!(norm("/a/./b/../c").unwrap(), vec!["a", "c"]);
        assert_eq!(norm("/../../a").unwrap(), vec!["a"]);
        assert_eq!(norm("/files/a%2Fb").unwrap(), vec!["files", "a/b"]);
        assert_eq!(norm("/caf%C3%A9").unwrap(), vec!["café"]);
        assert_eq!(norm("/a/%2e%2E/b"), Err(PathError::EncodedDotSegment));
        assert_eq!(norm("/a/%ff"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a/%zz"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a/%4"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a/100%"), Err(PathError::BadEncoding));
        assert!(norm("/").unwrap().is_empty());
        assert_eq!(norm("/a%00b"), Err(PathError::EncodedNul));
        for p in [
            "/files/a%2Fb",
            "/files/a%2fb",
            "/files/a%5Cb",
            "/files/a%5cb",
        ] {
            assert_eq!(normalize(p, false), Err(PathError::EncodedSlash), "{p}");
        }
        assert!(normalize("/files/a%20b", false).is_ok());
        assert_eq!(
            normalize("/files/a\\b", false),
            Err(PathError::EncodedSlash)
        );
        assert_eq!(norm("/files/a\\b").unwrap(), vec!["files", "a\\b"]);
        assert!(plain_segments("/a\\b").is_none());
    }

    #[test]
    fn plain_paths_agree_with_the_full_policy() {
        for p in [
            "/a//b/",
            "/a/./b/../c",
            "/../../a",
            "/",
            "",
            "/x/y/z/..",
            "/a/b/.",
        ] {
            let full: Vec<String> = norm(p).unwrap();
            let plain: Vec<String> = plain_segments(p)
                .unwrap()
                .into_iter()
                .map(str::to_string)
                .collect();
            assert_eq!(plain, full, "{p}");
        }
        assert!(plain_segments("/a%20b").is_none());
    }

    #[test]
    fn the_fast_path_leaves_what_the_encoder_leaves() {
        for b in 0..=255u8 {
            let s = [b];
            let kept = percent_encoding::percent_encode(&s, SEGMENT).to_string()
                == (b as char).to_string()
                && b.is_ascii();
            assert_eq!(SEGMENT_SAFE[usize::from(b)], kept, "byte {b:#04x}");
        }
    }

    #[test]
    fn a_path_spells_its_segments_when_encoding_them_writes_it() {
        let segments: [&[&str]; 7] = [
            &[],
            &["a"],
            &["a", "b"],
            &["a b"],
            &["a", ""],
            &["é"],
            &["a;b"],
        ];
        let paths = [
            "/", "", "/a", "/a/", "/a/b", "//a/b", "/a%20b", "/a b", "/a/", "/é", "/%C3%A9",
            "/a;b", "/a%3Bb", "/ab",
        ];
        for segs in segments {
            let mut written = String::new();
            encode_path(&mut written, segs);
            // Segments that need an escape are never taken as spelled: the caller writes them.
            let plain = !written.contains('%');
            for path in paths {
                assert_eq!(
                    spells_path(path, segs),
                    plain && written == path,
                    "{path:?} {segs:?}"
                );
            }
        }
    }

    #[test]
    fn encoding_round_trips() {
        let segs = normalize("/files/a%2Fb/c%20d/m;x=1", true).unwrap();
        let mut out = String::new();
        encode_path(&mut out, &segs);
        assert_eq!(out, "/files/a%2Fb/c%20d/m%3Bx=1");
        let mut v = String::new();
        encode_value(&mut v, "../x?y=1#z/w");
        assert_eq!(v, "..%2Fx%3Fy%3D1%23z%2Fw");
        let mut d = String::new();
        encode_value(&mut d, "..");
        assert_eq!(d, "%2E%2E");
    }
}
