//! A JSON document as a flat tape, parsed straight from the request bytes for validation.
//!
//! Parsing builds one `Vec` of 16-byte nodes in document order; strings stay where they are in the
//! input (decoded only when a keyword needs their text), and containers know where they end, so
//! skipping a subtree is one step. Nothing is allocated per value. The parser is strict RFC 8259:
//! UTF-8 only, no trailing commas, no comments, no leading zeros, bounded nesting, and duplicate
//! member names are refused (a validator and an upstream that picked different duplicates would
//! see different documents).

use std::borrow::Cow;

/// Nesting deeper than this is refused unless the route sets `limits.json_depth`.
pub const MAX_DEPTH: usize = 128;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number written without fraction or exponent that fits an `i64`.
    Int,
    /// Any other number.
    Float,
    /// A string.
    Str,
    /// An array.
    Array,
    /// An object.
    Object,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    /// Strings: the text has escapes. Bools: the value.
    flag: bool,
    /// Strings: start offset. Containers: child count (members for objects).
    a: u32,
    /// Strings: end offset. Containers: index past the subtree. Numbers: the bits.
    b: u64,
}

impl Node {
    fn int(v: i64) -> Node {
        Node {
            kind: Kind::Int,
            flag: false,
            a: 0,
            b: v as u64,
        }
    }

    /// A number node's value.
    #[inline]
    fn f64(self) -> Option<f64> {
        match self.kind {
            Kind::Int => Some(self.b as i64 as f64),
            Kind::Float => Some(f64::from_bits(self.b)),
            _ => None,
        }
    }

    /// Whether this is a number with an integral value (`1.0` is an integer).
    #[inline]
    fn integral(self) -> bool {
        match self.kind {
            Kind::Int => true,
            Kind::Float => {
                let f = f64::from_bits(self.b);
                f.is_finite() && f.fract() == 0.0
            }
            _ => false,
        }
    }

    /// A string node's text in `src` (the document's text), decoded.
    #[inline]
    fn str_in(self, src: &str) -> Option<Cow<'_, str>> {
        if self.kind != Kind::Str {
            return None;
        }
        let raw = src.get(self.a as usize..self.b as usize)?;
        Some(if self.flag {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        })
    }

    fn float(v: f64) -> Node {
        Node {
            kind: Kind::Float,
            flag: false,
            a: 0,
            b: v.to_bits(),
        }
    }
}

/// A parsed document. Node `0` is the root.
#[derive(Debug, Clone)]
pub struct Doc<'a> {
    src: Cow<'a, str>,
    nodes: Vec<Node>,
}

/// Why a body is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset.
    pub offset: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// The message of a document refused for holding more values than allowed.
pub const TOO_MANY_VALUES: &str = "the document holds more values than allowed";

impl<'a> Doc<'a> {
    /// Parses bytes, nested at most `MAX_DEPTH` deep.
    pub fn parse(bytes: &'a [u8]) -> Result<Doc<'a>, SyntaxError> {
        Doc::parse_with_depth(bytes, MAX_DEPTH)
    }

    /// Parses bytes, nested at most `max_depth` deep.
    pub fn parse_with_depth(bytes: &'a [u8], max_depth: usize) -> Result<Doc<'a>, SyntaxError> {
        Doc::parse_with_limits(bytes, max_depth, usize::MAX)
    }

    /// Parses bytes, nested at most `max_depth` deep and holding at most `max_values` values
    /// (member names count too); past it, `TOO_MANY_VALUES`. The tape costs 16 bytes a value.
    pub fn parse_with_limits(
        bytes: &'a [u8],
        max_depth: usize,
        max_values: usize,
    ) -> Result<Doc<'a>, SyntaxError> {
        let text = std::str::from_utf8(bytes).map_err(|e| SyntaxError {
            offset: e.valid_up_to(),
            message: "the body is not UTF-8",
        })?;
        Doc::parse_text(text, max_depth, max_values)
    }

    /// Parses text.
    pub fn parse_str(text: &'a str) -> Result<Doc<'a>, SyntaxError> {
        Doc::parse_text(text, MAX_DEPTH, usize::MAX)
    }

    fn parse_text(
        text: &'a str,
        max_depth: usize,
        max_values: usize,
    ) -> Result<Doc<'a>, SyntaxError> {
        let mut p = Parser {
            s: text.as_bytes(),
            nodes: Vec::with_capacity((text.len() / 8 + 4).min(max_values)),
            max_depth,
            max_values,
        };
        p.document()?;
        Ok(Doc {
            src: Cow::Borrowed(text),
            nodes: p.nodes,
        })
    }

    /// Parses owned text (constants, converted parameters).
    pub fn parse_owned(text: String) -> Result<Doc<'static>, SyntaxError> {
        let nodes = Doc::parse_str(&text)?.nodes;
        Ok(Doc {
            src: Cow::Owned(text),
            nodes,
        })
    }

    /// A document that is one string, `value` as it is (nothing to unescape).
    pub fn string(value: Cow<'a, str>) -> Doc<'a> {
        let Ok(end) = u32::try_from(value.len()) else {
            // Longer than a document can index: the empty string stands in (no request head
            // or parameter comes near 4 GiB).
            return Doc::string(Cow::Borrowed(""));
        };
        Doc {
            src: value,
            nodes: vec![Node {
                kind: Kind::Str,
                flag: false,
                a: 0,
                b: u64::from(end),
            }],
        }
    }

    /// A document that is one number, from JSON number text; `None` when `text` is not one
    /// (or is too large for `f64`).
    pub fn number(text: &str) -> Option<Doc<'static>> {
        // Read as the parser reads a number in a document, fast path included.
        let mut nodes = Vec::with_capacity(1);
        match number(text.as_bytes(), 0, &mut nodes) {
            Ok(end) if end == text.len() => Some(Doc {
                src: Cow::Borrowed(""),
                nodes,
            }),
            _ => None,
        }
    }

    /// The same document, owning its text.
    pub fn into_owned(self) -> Doc<'static> {
        Doc {
            src: Cow::Owned(self.src.into_owned()),
            nodes: self.nodes,
        }
    }

    /// The kind of node `i`.
    #[inline]
    pub fn kind(&self, i: u32) -> Kind {
        self.nodes[i as usize].kind
    }

    /// The boolean at `i`, if it is one.
    #[inline]
    pub fn as_bool(&self, i: u32) -> Option<bool> {
        let n = self.nodes[i as usize];
        (n.kind == Kind::Bool).then_some(n.flag)
    }

    /// The number at `i` as `f64`, if it is a number.
    #[inline]
    pub fn as_f64(&self, i: u32) -> Option<f64> {
        self.nodes[i as usize].f64()
    }

    /// The number at `i` as `i64`, if it is an integer-valued number in range.
    #[inline]
    pub fn as_i64(&self, i: u32) -> Option<i64> {
        let n = self.nodes[i as usize];
        match n.kind {
            Kind::Int => Some(n.b as i64),
            Kind::Float => {
                let f = f64::from_bits(n.b);
                (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
            }
            _ => None,
        }
    }

    /// Whether `i` is a number with an integral value (`1.0` is an integer).
    #[inline]
    pub fn is_integer(&self, i: u32) -> bool {
        self.nodes[i as usize].integral()
    }

    /// The string at `i`, decoded, if it is one.
    #[inline]
    pub fn as_str(&self, i: u32) -> Option<Cow<'_, str>> {
        self.nodes[i as usize].str_in(&self.src)
    }

    /// The length in Unicode code points of the string at `i` (0 when not a string).
    #[inline]
    pub fn str_chars(&self, i: u32) -> usize {
        let n = self.nodes[i as usize];
        if n.kind != Kind::Str {
            return 0;
        }
        let raw = &self.src[n.a as usize..n.b as usize];
        if n.flag {
            unescape(raw).chars().count()
        } else {
            chars(raw)
        }
    }

    /// Whether the string at `i` equals `s`.
    #[inline]
    pub fn str_eq(&self, i: u32, s: &str) -> bool {
        let n = self.nodes[i as usize];
        if n.kind != Kind::Str {
            return false;
        }
        let raw = &self.src[n.a as usize..n.b as usize];
        if n.flag {
            unescape(raw) == s
        } else {
            raw == s
        }
    }

    /// The number of items or members of the container at `i` (0 otherwise).
    #[inline]
    pub fn len(&self, i: u32) -> usize {
        let n = self.nodes[i as usize];
        match n.kind {
            Kind::Array | Kind::Object => n.a as usize,
            _ => 0,
        }
    }

    /// Whether the document is empty of nodes (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The index just past the subtree at `i`.
    #[inline]
    pub fn end(&self, i: u32) -> u32 {
        let n = self.nodes[i as usize];
        match n.kind {
            Kind::Array | Kind::Object => n.b as u32,
            _ => i + 1,
        }
    }

    /// The items of the array at `i`.
    #[inline]
    pub fn items(&self, i: u32) -> Items<'_, 'a> {
        let n = self.nodes[i as usize];
        let left = if n.kind == Kind::Array { n.a } else { 0 };
        Items {
            doc: self,
            next: i + 1,
            left,
        }
    }

    /// The members of the object at `i`, as `(key node, value node)`.
    #[inline]
    pub fn members(&self, i: u32) -> Members<'_, 'a> {
        let n = self.nodes[i as usize];
        let left = if n.kind == Kind::Object { n.a } else { 0 };
        Members {
            doc: self,
            next: i + 1,
            left,
        }
    }

    /// The value of member `key` of the object at `i`.
    #[inline]
    pub fn get(&self, i: u32, key: &str) -> Option<u32> {
        self.members(i)
            .find(|&(k, _)| self.str_eq(k, key))
            .map(|(_, v)| v)
    }

    /// JSON equality of two nodes of two documents (`1` equals `1.0`; member order is ignored).
    pub fn equal(&self, i: u32, other: &Doc<'_>, j: u32) -> bool {
        let (a, b) = (self.kind(i), other.kind(j));
        match (a, b) {
            (Kind::Null, Kind::Null) => true,
            (Kind::Bool, Kind::Bool) => self.as_bool(i) == other.as_bool(j),
            (Kind::Int, Kind::Int) => self.nodes[i as usize].b == other.nodes[j as usize].b,
            (Kind::Int | Kind::Float, Kind::Int | Kind::Float) => self.as_f64(i) == other.as_f64(j),
            (Kind::Str, Kind::Str) => self.as_str(i) == other.as_str(j),
            (Kind::Array, Kind::Array) => {
                self.len(i) == other.len(j)
                    && self
                        .items(i)
                        .zip(other.items(j))
                        .all(|(x, y)| self.equal(x, other, y))
            }
            (Kind::Object, Kind::Object) => {
                self.len(i) == other.len(j)
                    && self.members(i).all(|(k, v)| {
                        let key = self.as_str(k).unwrap_or_default();
                        other.get(j, &key).is_some_and(|w| self.equal(v, other, w))
                    })
            }
            _ => false,
        }
    }

    /// A hash that equal values share (for `uniqueItems` on long arrays).
    pub fn hash(&self, i: u32) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mix = |h: u64, x: u64| (h ^ x).wrapping_mul(K).rotate_left(29);
        match self.kind(i) {
            Kind::Null => 1,
            Kind::Bool => 2 + self.as_bool(i).unwrap_or(false) as u64,
            Kind::Int | Kind::Float => {
                let f = self.as_f64(i).unwrap_or(0.0);
                mix(4, if f == 0.0 { 0 } else { f.to_bits() })
            }
            Kind::Str => {
                let s = self.as_str(i).unwrap_or_default();
                s.bytes().fold(5, |h, b| mix(h, b as u64))
            }
            Kind::Array => self.items(i).fold(6, |h, x| mix(h, self.hash(x))),
            Kind::Object => self.members(i).fold(7u64, |h, (k, v)| {
                // Order-independent: a sum of member hashes.
                h.wrapping_add(mix(self.hash(k), self.hash(v)))
            }),
        }
    }

    /// The JSON pointer of node `i`, found by walking down from the root.
    pub fn pointer_of(&self, target: u32) -> String {
        let mut out = String::new();
        let mut at = 0u32;
        while at != target {
            match self.kind(at) {
                Kind::Array => {
                    let Some((n, child)) = self
                        .items(at)
                        .enumerate()
                        .find(|&(_, c)| c <= target && target < self.end(c))
                    else {
                        break;
                    };
                    out.push('/');
                    out.push_str(&n.to_string());
                    at = child;
                }
                Kind::Object => {
                    let Some((k, v)) = self
                        .members(at)
                        .find(|&(k, v)| k == target || (v <= target && target < self.end(v)))
                    else {
                        break;
                    };
                    out.push('/');
                    let key = self.as_str(k).unwrap_or_default();
                    out.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    if k == target {
                        break;
                    }
                    at = v;
                }
                _ => break,
            }
        }
        out
    }

    /// The source text of node `i` (raw, as written), for messages.
    pub fn text(&self, i: u32) -> Cow<'_, str> {
        let n = self.nodes[i as usize];
        match n.kind {
            Kind::Null => "null".into(),
            Kind::Bool => if n.flag { "true" } else { "false" }.into(),
            Kind::Int => (n.b as i64).to_string().into(),
            Kind::Float => f64::from_bits(n.b).to_string().into(),
            Kind::Str => {
                // Parsed text is shown as it was written; a string made from a value (a
                // parameter) is written out as JSON, the same way.
                let raw = &self.src[n.a as usize..n.b as usize];
                let (s, cut) = match raw.char_indices().nth(40) {
                    Some((at, _)) => (&raw[..at], "…"),
                    None => (raw, ""),
                };
                let mut out = String::with_capacity(s.len() + 4);
                if n.flag {
                    out.push('"');
                    out.push_str(s);
                    out.push('"');
                } else {
                    push_json_string(&mut out, s);
                }
                out.insert_str(out.len() - 1, cut);
                out.into()
            }
            Kind::Array => "an array".into(),
            Kind::Object => "an object".into(),
        }
    }
}

/// Iterator over array items.
#[derive(Debug)]
pub struct Items<'d, 'a> {
    doc: &'d Doc<'a>,
    next: u32,
    left: u32,
}

impl Iterator for Items<'_, '_> {
    type Item = u32;
    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let i = self.next;
        self.next = self.doc.end(i);
        Some(i)
    }
}

/// Iterator over object members.
#[derive(Debug)]
pub struct Members<'d, 'a> {
    doc: &'d Doc<'a>,
    next: u32,
    left: u32,
}

impl Iterator for Members<'_, '_> {
    type Item = (u32, u32);
    #[inline]
    fn next(&mut self) -> Option<(u32, u32)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let k = self.next;
        let v = k + 1;
        self.next = self.doc.end(v);
        Some((k, v))
    }
}

/// Decodes the escapes of a JSON string's raw text (already checked by the parser).
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex = |chars: &mut std::str::Chars<'_>| -> u32 {
                    let h: String = chars.by_ref().take(4).collect();
                    u32::from_str_radix(&h, 16).unwrap_or(0xFFFD)
                };
                let hi = hex(&mut chars);
                let code = if (0xD800..0xDC00).contains(&hi) {
                    let mut look = chars.clone();
                    if look.next() == Some('\\') && look.next() == Some('u') {
                        let lo = hex(&mut look);
                        if (0xDC00..0xE000).contains(&lo) {
                            chars = look;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            0xFFFD
                        }
                    } else {
                        0xFFFD
                    }
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that is below 0x20 (exact for the lowest such byte).
#[inline]
fn has_less_than_0x20(w: u64) -> u64 {
    w.wrapping_sub(LO * 0x20) & !w & HI
}

/// High bit set in each byte of `w` equal to `b` (exact for the lowest such byte).
#[inline]
fn has_byte(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * b as u64);
    x.wrapping_sub(LO) & !x & HI
}

/// Where a parse stands: the text, the tape made so far, and the limits.
struct Parser<'s> {
    s: &'s [u8],
    nodes: Vec<Node>,
    max_depth: usize,
    max_values: usize,
}

/// `text` read as one JSON number, as [`Doc::number`] reads it: its value, and whether it is
/// integral (as [`Doc::as_f64`] and [`Doc::is_integer`] would say of that document).
pub(crate) fn number_of(text: &str) -> Option<(f64, bool)> {
    match number_value(text.as_bytes(), 0) {
        Ok((end, node)) if end == text.len() => Some((node.f64()?, node.integral())),
        _ => None,
    }
}

/// A syntax error at `offset`. Out of line: errors are rare, and keeping them apart keeps the
/// scanning loops small.
#[cold]
#[inline(never)]
fn fail<T>(offset: usize, message: &'static str) -> Result<T, SyntaxError> {
    Err(SyntaxError { offset, message })
}

/// The first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
fn ws(s: &[u8], mut i: usize) -> usize {
    while let Some(&b) = s.get(i) {
        if b > b' ' || !(b == b' ' || b == b'\n' || b == b'\r' || b == b'\t') {
            break;
        }
        i += 1;
    }
    i
}

impl Parser<'_> {
    /// The whole document, in one loop: the position stays in a register, and containers are a
    /// stack, so nesting costs no recursion.
    fn document(&mut self) -> Result<(), SyntaxError> {
        let s = self.s;
        if s.len() >= u32::MAX as usize / 2 {
            return fail(0, "the document is too large");
        }
        let i = self.value(ws(s, 0))?;
        let i = ws(s, i);
        if i != s.len() {
            return fail(i, "trailing characters after the JSON value");
        }
        Ok(())
    }

    /// The value that starts at `i` (no whitespace before it), its nodes pushed: the position
    /// just after it.
    fn value(&mut self, mut i: usize) -> Result<usize, SyntaxError> {
        let s = self.s;
        let nodes = &mut self.nodes;
        // Open containers: node index.
        let mut stack: Vec<u32> = Vec::new();
        'value: loop {
            // A value and its member name at most: two nodes.
            if nodes.len() >= self.max_values {
                return fail(i, TOO_MANY_VALUES);
            }
            match s.get(i) {
                Some(b'"') => i = string(s, i, nodes)?,
                Some(&open @ (b'{' | b'[')) => {
                    let obj = open == b'{';
                    if stack.len() >= self.max_depth {
                        return fail(i, "the document is nested too deeply");
                    }
                    let idx = nodes.len();
                    nodes.push(Node {
                        kind: if obj { Kind::Object } else { Kind::Array },
                        flag: false,
                        a: 0,
                        b: 0,
                    });
                    i = ws(s, i + 1);
                    if s.get(i) == Some(&(open + 2)) {
                        // `{}` or `[]`: `}` and `]` are two after `{` and `[`.
                        i += 1;
                        nodes[idx].b = nodes.len() as u64;
                    } else {
                        stack.push(idx as u32);
                        nodes[idx].a = 1;
                        if obj {
                            i = key(s, i, nodes)?;
                        }
                        continue 'value;
                    }
                }
                Some(b't') => i = literal(s, i, b"true", Kind::Bool, true, nodes)?,
                Some(b'f') => i = literal(s, i, b"false", Kind::Bool, false, nodes)?,
                Some(b'n') => i = literal(s, i, b"null", Kind::Null, false, nodes)?,
                Some(b'-' | b'0'..=b'9') => i = number(s, i, nodes)?,
                None => return fail(i, "unexpected end of input"),
                _ => return fail(i, "expected a JSON value"),
            }
            // A value ended: what follows it closes containers or starts the next element.
            while let Some(&top) = stack.last() {
                let top = top as usize;
                let obj = nodes[top].kind == Kind::Object;
                i = ws(s, i);
                match s.get(i) {
                    Some(b',') => {
                        i = ws(s, i + 1);
                        nodes[top].a += 1;
                        if obj {
                            i = key(s, i, nodes)?;
                        }
                        continue 'value;
                    }
                    Some(b']') if !obj => {}
                    Some(b'}') if obj => check_duplicates(s, nodes, top, i)?,
                    None => return fail(i, "unexpected end of input"),
                    _ => {
                        let expected = if obj {
                            "expected `,` or `}`"
                        } else {
                            "expected `,` or `]`"
                        };
                        return fail(i, expected);
                    }
                }
                i += 1;
                stack.pop();
                nodes[top].b = nodes.len() as u64;
            }
            break;
        }
        Ok(i)
    }
}

/// A forward reader over a JSON text, for validators that check a document while they read it
/// (generated `…z…` functions): objects and arrays whose schemas only name properties and items
/// are walked member by member, and every other value is read whole into a small tape and
/// handed to the schema's ordinary function. Nothing is kept of what was read.
///
/// It only says yes: anything it is not sure of (a syntax error, a limit, an escaped member
/// name, a repeated one) makes the walk stop with `false`, and the caller then parses the body
/// as a [`Doc`] to find and word the error. Its limits count as the parser counts, so it
/// accepts no document the parser refuses.
#[derive(Debug)]
pub struct Stream<'a> {
    s: &'a [u8],
    i: usize,
    /// Containers open.
    depth: usize,
    max_depth: usize,
    /// Values and member names read (the nodes a [`Doc`] of the same text would have so far).
    values: usize,
    max_values: usize,
    /// The last value read whole.
    whole: Doc<'a>,
}

/// What [`Stream::member`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A member whose name is these bytes (no escapes in them); its value is next.
    Member(&'a [u8]),
    /// The object ended.
    End,
    /// Something the walk does not take: the body is parsed as a whole instead.
    Stop,
}

impl<'a> Stream<'a> {
    /// A reader at the start of `text`, with the parser's limits.
    pub fn new(text: &'a str, max_depth: usize, max_values: usize) -> Stream<'a> {
        let s = text.as_bytes();
        Stream {
            s,
            // A text too large to index is left to the parser, which refuses it.
            i: if s.len() >= u32::MAX as usize / 2 {
                s.len()
            } else {
                ws(s, 0)
            },
            depth: 0,
            max_depth,
            values: 0,
            max_values,
            whole: Doc {
                src: Cow::Borrowed(text),
                nodes: Vec::new(),
            },
        }
    }

    /// The first byte of the next value (`0` at the end of the text).
    #[inline]
    pub fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    /// Reads the next value whole and checks it with `check` (a schema's function).
    #[inline]
    pub fn whole(
        &mut self,
        c: &mut crate::validate::Ctx,
        check: crate::validate::input::SchemaFn,
    ) -> bool {
        self.read_whole() && check(&self.whole, 0, c, None)
    }

    /// Reads the string that is next (as [`Stream::peek`] showed), decoded.
    #[inline]
    pub fn string(&mut self) -> Option<Cow<'_, str>> {
        if self.values >= self.max_values {
            return None;
        }
        let (end, node) = string_node(self.s, self.i).ok()?;
        self.i = end;
        self.values += 1;
        node.str_in(&self.whole.src)
    }

    /// Reads the number that is next (as [`Stream::peek`] showed): its value, and whether it is
    /// a whole number (as [`Doc::as_f64`] and [`Doc::is_integer`] read it).
    #[inline]
    pub fn number(&mut self) -> Option<(f64, bool)> {
        if self.values >= self.max_values {
            return None;
        }
        let (end, node) = number_value(self.s, self.i).ok()?;
        self.i = end;
        self.values += 1;
        Some((node.f64()?, node.integral()))
    }

    /// Reads the next value whole, unchecked (a member any value may have).
    #[inline]
    pub fn skip(&mut self) -> bool {
        self.read_whole()
    }

    #[inline]
    fn read_whole(&mut self) -> bool {
        let (s, i) = (self.s, self.i);
        let nodes = &mut self.whole.nodes;
        nodes.clear();
        // Scalars, most values, directly; the parser's checks, in its order.
        let read = match s.get(i) {
            Some(b'{' | b'[') => return self.read_container(),
            _ if self.values >= self.max_values => return false,
            Some(b'"') => string(s, i, nodes),
            Some(b'-' | b'0'..=b'9') => number(s, i, nodes),
            Some(b't') => literal(s, i, b"true", Kind::Bool, true, nodes),
            Some(b'f') => literal(s, i, b"false", Kind::Bool, false, nodes),
            Some(b'n') => literal(s, i, b"null", Kind::Null, false, nodes),
            _ => return false,
        };
        match read {
            Ok(end) => {
                self.values += 1;
                self.i = end;
                true
            }
            Err(_) => false,
        }
    }

    fn read_container(&mut self) -> bool {
        let mut nodes = std::mem::take(&mut self.whole.nodes);
        nodes.clear();
        let mut p = Parser {
            s: self.s,
            nodes,
            max_depth: self.max_depth.saturating_sub(self.depth),
            max_values: self.max_values.saturating_sub(self.values),
        };
        let read = p.value(self.i);
        self.values += p.nodes.len();
        self.whole.nodes = p.nodes;
        match read {
            Ok(end) => {
                self.i = end;
                true
            }
            Err(_) => false,
        }
    }

    /// Enters the object or array that is next (`{` or `[`, as [`Stream::peek`] showed).
    #[inline]
    pub fn open(&mut self) -> bool {
        if self.depth >= self.max_depth || self.values >= self.max_values {
            return false;
        }
        self.depth += 1;
        self.values += 1;
        self.i = ws(self.s, self.i + 1);
        true
    }

    /// The next member of the open object, the `k`th (from 0): its name, with the reader at its
    /// value.
    #[inline(always)]
    pub fn member(&mut self, k: usize) -> Step<'a> {
        let s = self.s;
        let mut i = ws(s, self.i);
        match s.get(i) {
            Some(b'}') => {
                self.i = i + 1;
                self.depth = self.depth.saturating_sub(1);
                return Step::End;
            }
            Some(b',') if k > 0 => i = ws(s, i + 1),
            Some(b'"') if k == 0 => {}
            _ => return Step::Stop,
        }
        if s.get(i) != Some(&b'"') {
            return Step::Stop;
        }
        let start = i + 1;
        let mut j = plain_run(s, start);
        if s.get(j) != Some(&b'"') {
            // Near the end of the text the word-wise run stops early: finish it a byte at a
            // time.
            while s
                .get(j)
                .is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20)
            {
                j += 1;
            }
            if s.get(j) != Some(&b'"') {
                return Step::Stop;
            }
        }
        let i = ws(s, j + 1);
        if s.get(i) != Some(&b':') {
            return Step::Stop;
        }
        self.values += 1;
        self.i = ws(s, i + 1);
        Step::Member(&s[start..j])
    }

    /// Whether the open array has a `k`th item (from 0), with the reader at it; `None` when
    /// the walk stops.
    #[inline(always)]
    pub fn item(&mut self, k: usize) -> Option<bool> {
        let s = self.s;
        let i = ws(s, self.i);
        match s.get(i) {
            Some(b']') => {
                self.i = i + 1;
                self.depth = self.depth.saturating_sub(1);
                Some(false)
            }
            Some(b',') if k > 0 => {
                self.i = ws(s, i + 1);
                Some(true)
            }
            Some(_) if k == 0 => Some(true),
            _ => None,
        }
    }

    /// Whether the text ends after the value read (whitespace aside).
    pub fn finish(&self) -> bool {
        self.depth == 0 && ws(self.s, self.i) == self.s.len()
    }
}

/// The length of `s` in Unicode code points.
#[inline]
pub fn chars(s: &str) -> usize {
    if s.is_ascii() {
        // A word at a time in the standard library; most strings are ASCII.
        s.len()
    } else {
        s.bytes().filter(|&b| (b as i8) >= -0x40).count()
    }
}

/// The names of an object's members that its schema does not declare, to refuse a name given
/// twice (a validator and an upstream that read different copies would see different
/// documents). Declared names are told apart by a bit each in the generated code.
#[derive(Debug, Default)]
pub struct Names<'a> {
    few: [&'a [u8]; 8],
    n: usize,
}

impl<'a> Names<'a> {
    /// Notes `name`; `false` when it was seen before, or when there are too many to compare
    /// cheaply (the parser then decides).
    #[inline]
    pub fn add(&mut self, name: &'a [u8]) -> bool {
        if self.n == self.few.len() || self.few[..self.n].contains(&name) {
            return false;
        }
        self.few[self.n] = name;
        self.n += 1;
        true
    }
}

/// A member name at `i` (its opening quote), the `:` after it and the whitespace around it: the
/// position of the member's value.
#[inline(always)]
fn key(s: &[u8], i: usize, nodes: &mut Vec<Node>) -> Result<usize, SyntaxError> {
    if s.get(i) != Some(&b'"') {
        return fail(i, "expected a member name in double quotes");
    }
    let i = ws(s, string(s, i, nodes)?);
    if s.get(i) != Some(&b':') {
        return fail(i, "expected `:` after a member name");
    }
    Ok(ws(s, i + 1))
}

fn literal(
    s: &[u8],
    i: usize,
    word: &[u8],
    kind: Kind,
    flag: bool,
    nodes: &mut Vec<Node>,
) -> Result<usize, SyntaxError> {
    if !s[i..].starts_with(word) {
        return fail(i, "expected a JSON value");
    }
    nodes.push(Node {
        kind,
        flag,
        a: 0,
        b: 0,
    });
    Ok(i + word.len())
}

/// The first byte at or after `j` that may end a plain run of string bytes (a quote, a
/// backslash or a control character), found eight bytes at a time; near the end of the text,
/// where a whole word does not fit, the first byte not looked at.
#[inline(always)]
fn plain_run(s: &[u8], mut j: usize) -> usize {
    while let Some(chunk) = s.get(j..j + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let special = has_less_than_0x20(w) | has_byte(w, b'"') | has_byte(w, b'\\');
        if special != 0 {
            return j + (special.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    j
}

/// The string whose opening quote is at `i`: its node pushed, the position after its closing
/// quote returned. Plain strings end here; one with an escape, or too close to the end of the
/// text for a whole word, goes on in [`string_rest`].
#[inline(always)]
fn string(s: &[u8], i: usize, nodes: &mut Vec<Node>) -> Result<usize, SyntaxError> {
    let (end, node) = string_node(s, i)?;
    nodes.push(node);
    Ok(end)
}

/// The string whose opening quote is at `i`: the position after its closing quote, and its
/// node.
#[inline(always)]
fn string_node(s: &[u8], i: usize) -> Result<(usize, Node), SyntaxError> {
    let start = i + 1;
    let j = plain_run(s, start);
    if s.get(j) == Some(&b'"') {
        let node = Node {
            kind: Kind::Str,
            flag: false,
            a: start as u32,
            b: j as u64,
        };
        return Ok((j + 1, node));
    }
    string_rest(s, start, j)
}

/// The rest of a string from `j` on (the string began at `start`), past escapes and up to its
/// end.
#[inline(never)]
fn string_rest(s: &[u8], start: usize, mut j: usize) -> Result<(usize, Node), SyntaxError> {
    let mut escaped = false;
    loop {
        j = plain_run(s, j);
        let Some(&b) = s.get(j) else {
            return fail(j, "unterminated string");
        };
        match b {
            b'"' => break,
            b'\\' => {
                escaped = true;
                match s.get(j + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                    Some(b'u') => {
                        let hex = s.get(j + 2..j + 6);
                        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                            return fail(j, "invalid `\\u` escape");
                        }
                        j += 6;
                    }
                    _ => return fail(j, "invalid escape"),
                }
            }
            0..=0x1F => return fail(j, "control character in a string"),
            _ => j += 1,
        }
    }
    let node = Node {
        kind: Kind::Str,
        flag: escaped,
        a: start as u32,
        b: j as u64,
    };
    Ok((j + 1, node))
}

/// The number that starts at `i`: its node pushed, the position after it returned. Inlined
/// into the document loop, where most numbers are read.
#[inline(always)]
fn number(s: &[u8], start: usize, nodes: &mut Vec<Node>) -> Result<usize, SyntaxError> {
    let (end, node) = number_value(s, start)?;
    nodes.push(node);
    Ok(end)
}

/// The number that starts at `i`: the position after it, and its node.
#[inline(always)]
fn number_value(s: &[u8], start: usize) -> Result<(usize, Node), SyntaxError> {
    let mut i = start;
    let negative = s.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    // The digits are gathered as they are scanned: most numbers need no second pass. The
    // mantissa wraps past 19 digits, but is then not used (such numbers go to the standard
    // library below).
    let mut mantissa = 0u64;
    // Digits kept in the mantissa: a lone `0` is none. Zeros that lead a fraction count: they
    // cannot overflow it, and only send a rare long fraction the slow way.
    let mut kept = match s.get(i) {
        Some(b'0') => {
            i += 1;
            0
        }
        Some(b'1'..=b'9') => {
            let first = i;
            i = digits(s, i, &mut mantissa);
            i - first
        }
        _ => return fail(i, "invalid number"),
    };
    let mut float = false;
    let mut fraction = 0usize;
    if s.get(i) == Some(&b'.') {
        float = true;
        i += 1;
        if !s.get(i).is_some_and(u8::is_ascii_digit) {
            return fail(i, "invalid number");
        }
        let from = i;
        i = digits(s, i, &mut mantissa);
        fraction = i - from;
        kept += fraction;
    }
    let mut exact = true;
    if matches!(s.get(i), Some(b'e' | b'E')) {
        float = true;
        exact = false;
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !s.get(i).is_some_and(u8::is_ascii_digit) {
            return fail(i, "invalid number");
        }
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    // Exactly the value when every digit was kept and, for a fraction, both the digits and
    // the power of ten are exact in an `f64` (one correctly rounded division: Clinger's fast
    // path). Anything else goes to the standard library's parser.
    let quick = if !exact || kept > 18 {
        None
    } else if !float {
        let v = mantissa as i64;
        Some(Node::int(if negative { -v } else { v }))
    } else if mantissa < 1 << 53 && fraction <= 22 {
        let v = mantissa as f64 / POWERS_OF_TEN[fraction];
        Some(Node::float(if negative { -v } else { v }))
    } else {
        None
    };
    let node = match quick {
        Some(node) => node,
        // The bytes are ASCII digits and signs, so this cannot fail to be UTF-8.
        None => match number_node(std::str::from_utf8(&s[start..i]).unwrap_or("0"), float) {
            Some(node) => node,
            None => return fail(i, "number out of range"),
        },
    };
    Ok((i, node))
}

/// The run of ASCII digits from `i`, each taken into `mantissa` (wrapping): the position after
/// it.
#[inline(always)]
fn digits(s: &[u8], mut i: usize, mantissa: &mut u64) -> usize {
    let mut m = *mantissa;
    while let Some(&b) = s.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        m = m.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    *mantissa = m;
    i
}

/// Refuses the object at `obj` (its `}` at `at`) when two of its members have the same name.
fn check_duplicates(s: &[u8], nodes: &[Node], obj: usize, at: usize) -> Result<(), SyntaxError> {
    let n = nodes[obj].a as usize;
    if n < 2 {
        return Ok(());
    }
    // The names' spans, found by stepping over each member's value; few names fit in place.
    let mut few = [(0u32, 0u32); 16];
    let mut many = Vec::new();
    let mut any_escaped = false;
    let mut k = obj + 1;
    for m in 0..n {
        let name = nodes[k];
        any_escaped |= name.flag;
        let span = (name.a, name.b as u32);
        match few.get_mut(m) {
            Some(slot) => *slot = span,
            None => many.push(span),
        }
        let value = nodes[k + 1];
        k = match value.kind {
            Kind::Array | Kind::Object => value.b as usize,
            _ => k + 2,
        };
    }
    let raw = |(a, b): (u32, u32)| &s[a as usize..b as usize];
    let dup = if n <= 16 && !any_escaped {
        // Each name against those before it, lengths first.
        let few = &few[..n];
        (1..n).any(|i| {
            let (a, b) = few[i];
            few[..i]
                .iter()
                .any(|&(c, d)| d - c == b - a && raw((c, d)) == raw((a, b)))
        })
    } else {
        let mut names: Vec<Cow<'_, str>> = few
            .iter()
            .take(n)
            .chain(many.iter())
            .map(|&span| {
                let text = std::str::from_utf8(raw(span)).unwrap_or("");
                if any_escaped {
                    Cow::Owned(unescape(text))
                } else {
                    Cow::Borrowed(text)
                }
            })
            .collect();
        names.sort_unstable();
        names.windows(2).any(|w| w[0] == w[1])
    };
    if dup {
        return fail(at, "an object repeats a member name");
    }
    Ok(())
}

/// The node of a number whose JSON text is `text` (`float` when it has a fraction or an
/// exponent): an `i64` when it is a whole number that fits one, else an `f64`. Numbers too large
/// for `f64` are `None`, refused rather than turned into infinity (upstream parsers refuse them
/// too).
fn number_node(text: &str, float: bool) -> Option<Node> {
    if !float {
        if let Ok(v) = text.parse::<i64>() {
            return Some(Node::int(v));
        }
    }
    let v = text.parse::<f64>().ok().filter(|v| v.is_finite())?;
    Some(Node::float(v))
}

/// `10^n` for the powers an `f64` holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Appends `s` to `out` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    if needs_escape(s.as_bytes()) {
        escape_into(s, |piece| out.push_str(piece));
    } else {
        out.push_str(s);
    }
    out.push('"');
}

/// Appends `s` to `out` as a JSON string literal, escaped as [`push_json_string`] escapes it.
pub(crate) fn push_json_bytes(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    if needs_escape(s.as_bytes()) {
        escape_into(s, |piece| out.extend_from_slice(piece.as_bytes()));
    } else {
        out.extend_from_slice(s.as_bytes());
    }
    out.push(b'"');
}

/// Whether a JSON string needs an escape to hold `s`: a quote, a backslash or a control
/// character. Whole words are looked at without a branch each, so most strings, which need
/// none, cost about an instruction a byte.
#[inline]
fn needs_escape(s: &[u8]) -> bool {
    let mut words = s.chunks_exact(8);
    let mut special = 0;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        special |= has_less_than_0x20(w) | has_byte(w, b'"') | has_byte(w, b'\\');
    }
    special != 0 || !words.remainder().iter().all(|&b| PLAIN[usize::from(b)])
}

/// The bytes a JSON string holds as they are: all but `"`, `\` and control characters.
static PLAIN: [bool; 256] = crate::path::byte_class(0x20, 0xff, b"\"\\");

/// `s` as the inside of a JSON string, in pieces: runs of bytes a string holds as they are,
/// found eight at a time, and the escapes between them (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, else `\u00XX` for control characters), as serde_json writes them.
fn escape_into(s: &str, mut emit: impl FnMut(&str)) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    loop {
        let mut at = plain_run(bytes, plain);
        while bytes.get(at).is_some_and(|&b| PLAIN[usize::from(b)]) {
            at += 1;
        }
        // Every byte that needs escaping is ASCII, so `at` is on a character boundary.
        emit(&s[plain..at]);
        let Some(&b) = bytes.get(at) else {
            return;
        };
        let mut code = [b'\\', b'u', b'0', b'0', 0, 0];
        emit(match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            _ => {
                code[4] = b"0123456789abcdef"[usize::from(b >> 4)];
                code[5] = b"0123456789abcdef"[usize::from(b & 15)];
                std::str::from_utf8(&code).unwrap_or("\\ufffd")
            }
        });
        plain = at + 1;
    }
}

/// Walks the value at the reader's position as a generated streaming check does: objects and
/// arrays member by member, strings and numbers read as values, anything else read whole (for
/// the tests and the fuzz target, which compare what it accepts with what the parser does).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn walk(r: &mut Stream<'_>) -> bool {
    match r.peek() {
        b'{' => {
            if !r.open() {
                return false;
            }
            let mut names = Names::default();
            let mut k = 0;
            loop {
                match r.member(k) {
                    Step::Member(name) => {
                        if !names.add(name) || !walk(r) {
                            return false;
                        }
                    }
                    Step::End => return true,
                    Step::Stop => return false,
                }
                k += 1;
            }
        }
        b'[' => {
            if !r.open() {
                return false;
            }
            let mut k = 0;
            loop {
                match r.item(k) {
                    Some(true) if walk(r) => k += 1,
                    Some(true) | None => return false,
                    Some(false) => return true,
                }
            }
        }
        _ => r.skip(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut texts: Vec<String> = (0u8..0x80)
            .map(|b| format!("ab{}cdefghij", b as char))
            .collect();
        texts.extend(
            [
                "",
                "é",
                "plain text of some length",
                "\"\\\"",
                "a\u{7f}b\u{2028}c",
            ]
            .map(String::from),
        );
        // Specials at every place around the eight-byte words, and runs of them.
        for at in 0..20 {
            for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
                let mut t = "x".repeat(at);
                t.push(special);
                t.push_str(&"é".repeat(at % 5));
                t.push(special);
                texts.push(t);
            }
        }
        for t in texts {
            let want = serde_json::to_string(&t).unwrap();
            let mut text = String::new();
            push_json_string(&mut text, &t);
            assert_eq!(text, want, "{t:?}");
            let mut bytes = b"x".to_vec();
            push_json_bytes(&mut bytes, &t);
            assert_eq!(&bytes[1..], want.as_bytes(), "{t:?}");
        }
    }

    #[test]
    fn strings_made_directly_or_as_text_read_back_the_same() {
        for value in [
            "",
            "plain",
            "é 日本",
            "quote \" back \\ nl \n tab \t",
            "\u{1}\u{1f}x\u{7f}",
        ] {
            let mut text = String::new();
            push_json_string(&mut text, value);
            let parsed = Doc::parse_owned(text.clone()).expect(&text);
            assert_eq!(parsed.as_str(0).as_deref(), Some(value), "{text}");
            let made = Doc::string(Cow::Borrowed(value));
            assert_eq!(made.kind(0), Kind::Str);
            assert_eq!(made.as_str(0).as_deref(), Some(value));
            assert!(made.str_eq(0, value));
            assert_eq!(made.str_chars(0), value.chars().count());
            assert!(made.equal(0, &parsed, 0));
            assert_eq!(made.hash(0), parsed.hash(0));
            assert_eq!(made.text(0), parsed.text(0), "{text}");
        }
        let long = "x".repeat(50);
        assert_eq!(
            Doc::string(Cow::Borrowed(&long)).text(0),
            format!("\"{}…\"", "x".repeat(40))
        );
    }

    #[test]
    fn numbers_made_directly_read_as_parsed_ones() {
        for text in [
            "0",
            "-0",
            "42",
            "-7",
            "1.5",
            "1e3",
            "12345678901234567890",
            "2.5E-3",
        ] {
            let made = Doc::number(text).expect(text);
            let parsed = Doc::parse_str(text).expect(text);
            assert_eq!(made.kind(0), parsed.kind(0), "{text}");
            assert!(made.equal(0, &parsed, 0), "{text}");
            assert_eq!(made.as_f64(0), parsed.as_f64(0), "{text}");
        }
        for not in ["1e400", "", "-", "01", "1.", "1x", " 1", "+1"] {
            assert!(Doc::number(not).is_none(), "{not}");
        }
        assert!(Doc::parse_str("1e400").is_err());
    }

    #[test]
    fn numbers_read_while_scanning_equal_the_standard_librarys() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut texts: Vec<String> = [
            "0.1",
            "0.3",
            "-0.0",
            "0.000001",
            "9007199254740993.5",
            "123456789012345678",
            "1234567890123456789",
            "-9223372036854775808",
            "9223372036854775808",
            "0.1234567890123456789",
            "1.0000000000000000000001",
            "4.35",
            "1e22",
            "17.99",
            // Digits that wrap a 64-bit mantissa to 0, and to a small number.
            "18446744073709551616",
            "36893488147419103232",
            "18446744073709551617.5",
            "0.0000000000000000001",
            "0.000000000000000000000001",
            "16.990000000000002",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..50_000 {
            let whole = next() % 10u64.pow((next() % 19) as u32);
            let places = (next() % 24) as usize;
            let fraction = next() % 10u64.pow(places.min(19) as u32);
            let sign = if next() % 2 == 0 { "-" } else { "" };
            texts.push(if places == 0 {
                format!("{sign}{whole}")
            } else {
                format!("{sign}{whole}.{fraction:0places$}")
            });
        }
        for text in &texts {
            let d = Doc::parse_str(text).expect(text);
            match text.parse::<i64>() {
                Ok(v) => assert_eq!(d.as_i64(0), Some(v), "{text}"),
                Err(_) => {
                    let want = text.parse::<f64>().unwrap();
                    assert_eq!(d.kind(0), Kind::Float, "{text}");
                    assert_eq!(
                        d.as_f64(0).map(f64::to_bits),
                        Some(want.to_bits()),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn strings_count_code_points_whatever_their_bytes() {
        let doc = Doc::parse_str(r#"["abc", "", "é", "añb€😀", "\u00e9x", 1]"#).unwrap();
        let counts: Vec<usize> = doc.items(0).map(|i| doc.str_chars(i)).collect();
        assert_eq!(counts, [3, 0, 1, 5, 2, 0]);
    }

    #[test]
    fn parses_and_walks() {
        let d = Doc::parse(br#"{"a": [1, 2.5, "x\n"], "b": {"c": null}, "d": true}"#).unwrap();
        assert_eq!(d.kind(0), Kind::Object);
        assert_eq!(d.len(0), 3);
        let a = d.get(0, "a").unwrap();
        let items: Vec<u32> = d.items(a).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(d.as_i64(items[0]), Some(1));
        assert_eq!(d.as_f64(items[1]), Some(2.5));
        assert_eq!(d.as_str(items[2]).unwrap(), "x\n");
        let b = d.get(0, "b").unwrap();
        assert_eq!(d.kind(d.get(b, "c").unwrap()), Kind::Null);
        assert_eq!(d.as_bool(d.get(0, "d").unwrap()), Some(true));
        assert_eq!(d.pointer_of(items[2]), "/a/2");
        assert_eq!(d.pointer_of(d.get(b, "c").unwrap()), "/b/c");
    }

    #[test]
    fn refuses_bad_json() {
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"{\"a\":1,}",
            b"01",
            b"1.",
            b"\"\x01\"",
            b"{\"a\":1,\"a\":2}",
            b"[1] x",
            b"nul",
            b"\"\\x\"",
            b"\xff",
            b"",
        ] {
            assert!(
                Doc::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(Doc::parse(deep.as_bytes()).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(Doc::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn repeated_member_names_are_found_whatever_their_length_and_place() {
        let names = [
            "a",
            "abcdefg",
            "abcdefgh",
            "abcdefgX",
            "abcdefgh_abcdefgh",
            "abcdefgX_abcdefgh",
            "abcdefgh_abcdefgX",
            "\\u0061",
        ];
        for members in [3, 16, 17] {
            for (i, name) in names.iter().enumerate() {
                // Distinct names padded with others, then the same with `name` given twice.
                let mut list: Vec<String> =
                    (0..members - 1).map(|m| format!("filler-{m}")).collect();
                list.insert(members / 2, name.to_string());
                let text = |list: &[String]| {
                    let body: Vec<String> = list.iter().map(|k| format!("\"{k}\": {i}")).collect();
                    format!("{{{}}}", body.join(", "))
                };
                assert!(Doc::parse_str(&text(&list)).is_ok(), "{}", text(&list));
                let last = list.len() - 1;
                list[last] = if *name == "\\u0061" {
                    "a".into()
                } else {
                    name.to_string()
                };
                let err = Doc::parse_str(&text(&list)).expect_err(&text(&list));
                assert_eq!(err.message, "an object repeats a member name");
            }
        }
        let distinct = r#"{"abcdefgh1": 1, "abcdefgh2": 2, "bcdefgh1": 3, "abcdefg": 4}"#;
        assert!(Doc::parse_str(distinct).is_ok());
    }

    /// Renders a parsed node back to a `serde_json::Value`, for comparison.
    fn to_value(d: &Doc<'_>, i: u32) -> serde_json::Value {
        match d.kind(i) {
            Kind::Null => serde_json::Value::Null,
            Kind::Bool => serde_json::Value::Bool(d.as_bool(i).unwrap()),
            Kind::Int => serde_json::json!(d.as_i64(i).unwrap()),
            Kind::Float => serde_json::json!(d.as_f64(i).unwrap()),
            Kind::Str => serde_json::Value::String(d.as_str(i).unwrap().into_owned()),
            Kind::Array => serde_json::Value::Array(d.items(i).map(|x| to_value(d, x)).collect()),
            Kind::Object => serde_json::Value::Object(
                d.members(i)
                    .map(|(k, v)| (d.as_str(k).unwrap().into_owned(), to_value(d, v)))
                    .collect(),
            ),
        }
    }

    /// Equality with numbers compared as numbers (`-0` is `0`), to the last bit or two: serde_json
    /// does not round long decimals exactly, Rust's float parser does.
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match (a, b) {
            (V::Number(x), V::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
            }
            (V::Array(x), V::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
            }
            (V::Object(x), V::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
            }
            _ => a == b,
        }
    }

    fn streams(text: &str, depth: usize, values: usize) -> bool {
        let mut r = Stream::new(text, depth, values);
        walk(&mut r) && r.finish()
    }

    #[test]
    fn the_stream_accepts_only_what_the_parser_accepts() {
        let cases = [
            (
                r#"{"a": 1, "b": [true, null, "x"], "c": {"d": -1.5e3}}"#,
                true,
            ),
            ("  {\n\t\"a\" :\r [ 1 ,2 ] , \"b\":{} }  ", true),
            ("[]", true),
            ("[ ]", true),
            ("{ }", true),
            (r#""just a string""#, true),
            ("12", true),
            (r#"{"a": 1, "a": 2}"#, false),
            (r#"{"a": {"b": 1, "b": 2}}"#, false),
            (r#"[{"b": 1, "b": 2}]"#, false),
            (r#"{"a": 1,}"#, false),
            ("[1,]", false),
            ("[1 2]", false),
            (r#"{"a" 1}"#, false),
            (r#"{"a": 1} x"#, false),
            (r#"{"a": 01}"#, false),
            ("{", false),
            ("[", false),
            ("", false),
            (r#"{"a":"#, false),
            (r#"{"a"#, false),
            (r#"{"a\u0062": 1}"#, true),
            (r#"{"ab": 1, "a\u0062": 2}"#, false),
        ];
        for (text, valid) in cases {
            let parsed = Doc::parse_str(text).is_ok();
            assert_eq!(parsed, valid, "{text}");
            let streamed = streams(text, MAX_DEPTH, usize::MAX);
            assert!(!streamed || parsed, "the stream accepts {text:?}");
            // Escaped member names are left to the parser; every other valid text streams.
            if valid && !text.contains('\\') {
                assert!(streamed, "the stream refuses {text:?}");
            }
        }
    }

    #[test]
    fn the_stream_counts_depth_and_values_as_the_parser_does() {
        let texts = [
            r#"{"a": [1, {"b": [2, 3]}], "c": "x"}"#,
            "[[[[1]]], [[2]]]",
            r#"{"a": {"b": {"c": {}}}}"#,
            "[1, 2, 3, 4, 5, 6]",
            r#""s""#,
        ];
        for text in texts {
            for depth in 0..6 {
                for values in 0..16 {
                    let parsed = Doc::parse_with_limits(text.as_bytes(), depth, values).is_ok();
                    assert_eq!(
                        streams(text, depth, values),
                        parsed,
                        "{text} at depth {depth}, values {values}"
                    );
                }
            }
        }
    }

    #[test]
    fn agrees_with_serde_json_on_random_texts() {
        // Pieces that make valid and invalid JSON alike, with specials at every offset of the
        // eight-byte scan.
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\"abcdefgh\"",
            "\"a\\\"b\"",
            "\"\\u00e9x\"",
            "\"\\ud83d\\ude00\"",
            "\"é日本\"",
            "1",
            "-0",
            "1.5e3",
            "01",
            "1.",
            "true",
            "fals",
            "null",
            " ",
            "\n",
            "\"\t\"",
            "\"\\q\"",
            "\"k\"",
            "\"k\":",
            "12345678901234567890",
            "\"0123456\\n\"",
            "\"01234567\"",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let n = 1 + next() % 12;
            let text: String = (0..n)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let ours = Doc::parse(text.as_bytes());
            assert!(
                !streams(&text, MAX_DEPTH, usize::MAX) || ours.is_ok(),
                "the stream accepts {text:?}"
            );
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            match (&ours, &theirs) {
                (Ok(d), Ok(v)) => {
                    accepted += 1;
                    assert!(
                        same(&to_value(d, 0), v),
                        "{text}: {:?} vs {v:?}",
                        to_value(d, 0)
                    );
                }
                (Err(_), Ok(_)) => {
                    // Only duplicate member names may be refused where serde_json accepts.
                    assert_eq!(
                        ours.as_ref().err().map(|e| e.message),
                        Some("an object repeats a member name"),
                        "{text}"
                    );
                }
                (Ok(_), Err(e)) => panic!("accepted what serde_json refuses ({e}): {text}"),
                (Err(_), Err(_)) => {}
            }
        }
        assert!(
            accepted > 1000,
            "only {accepted} valid texts were generated"
        );
    }

    #[test]
    fn numbers_and_equality() {
        let d = Doc::parse(b"[1, 1.0, 1e0, 12345678901234567890, -0, \"\\u00e9\", \"\xc3\xa9\"]")
            .unwrap();
        let v: Vec<u32> = d.items(0).collect();
        assert!(d.is_integer(v[1]) && d.is_integer(v[2]) && d.is_integer(v[3]));
        assert!(d.equal(v[0], &d, v[1]));
        assert!(d.equal(v[5], &d, v[6]));
        assert_eq!(d.hash(v[5]), d.hash(v[6]));
        assert_eq!(d.str_chars(v[6]), 1);
        assert_eq!(d.str_chars(v[5]), 1);
        let surrogate = Doc::parse(br#""\ud83d\ude00""#).unwrap();
        assert_eq!(surrogate.as_str(0).unwrap(), "\u{1F600}");
        assert_eq!(surrogate.str_chars(0), 1);
    }
}
