//! What generated validators call: the error collector, annotation sets for `unevaluated*`,
//! number and string helpers, formats, and the parsers that turn parameters and form bodies into
//! documents the same validators check.

pub mod format;
pub mod input;

use std::borrow::Cow;

use smallvec::SmallVec;

pub use crate::json::{chars, Doc, Kind, Names, Step, Stream};

/// Stop collecting after this many violations (a hostile body cannot make the answer huge).
pub const MAX_VIOLATIONS: usize = 100;

/// One violation: where in the request, which keyword, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A JSON pointer into the body (`/items/2/qty`), or `query/limit`, `header/x-id`, …
    pub pointer: String,
    /// The schema keyword that failed (`minimum`, `required`, …).
    pub keyword: &'static str,
    /// What is wrong, in words.
    pub message: String,
}

/// Type bits for [`has_type`] and generated `type` checks.
pub mod ty {
    /// `null`.
    pub const NULL: u8 = 1;
    /// `boolean`.
    pub const BOOLEAN: u8 = 2;
    /// `integer`.
    pub const INTEGER: u8 = 4;
    /// `number`.
    pub const NUMBER: u8 = 8;
    /// `string`.
    pub const STRING: u8 = 16;
    /// `array`.
    pub const ARRAY: u8 = 32;
    /// `object`.
    pub const OBJECT: u8 = 64;
}

/// The state of one validation: where violations go, and whether anyone is listening.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The violations found so far.
    pub errors: Vec<Violation>,
    /// Above zero inside `anyOf`/`oneOf`/`not`/`if`, where only validity matters.
    quiet: u32,
    /// Prefix for pointers (`query/limit`); empty for bodies.
    prefix: Cow<'static, str>,
}

impl Ctx {
    /// A collector for a body (pointers start at the body's root).
    pub fn new() -> Ctx {
        Ctx::default()
    }

    /// Sets the pointer prefix for what follows (`query/limit`).
    pub fn at(&mut self, prefix: impl Into<Cow<'static, str>>) {
        self.prefix = prefix.into();
    }

    /// Records a violation at node `at`. Returns true when the caller should stop: in quiet mode
    /// (only validity matters) or once enough violations are collected.
    #[cold]
    pub fn fail(
        &mut self,
        d: &Doc<'_>,
        at: u32,
        keyword: &'static str,
        message: impl FnOnce() -> String,
    ) -> bool {
        if self.quiet > 0 {
            return true;
        }
        if self.errors.len() < MAX_VIOLATIONS {
            let mut pointer = self.prefix.to_string();
            pointer.push_str(&d.pointer_of(at));
            self.errors.push(Violation {
                pointer,
                keyword,
                message: message(),
            });
        }
        self.errors.len() >= MAX_VIOLATIONS
    }

    /// Records a violation with a fixed message (see [`Ctx::fail`]).
    #[cold]
    pub fn report(
        &mut self,
        d: &Doc<'_>,
        at: u32,
        keyword: &'static str,
        message: &'static str,
    ) -> bool {
        self.fail(d, at, keyword, || message.to_string())
    }

    /// Records a `type` violation: expected the types of `mask`.
    #[cold]
    pub fn report_type(&mut self, d: &Doc<'_>, at: u32, mask: u8) -> bool {
        self.fail(d, at, "type", || {
            format!("expected {}, got {}", type_names(mask), kind_name(d, at))
        })
    }

    /// Records an `enum`/`const` violation: "VALUE is not one of …".
    #[cold]
    pub fn report_value(
        &mut self,
        d: &Doc<'_>,
        at: u32,
        keyword: &'static str,
        relation: &'static str,
        allowed: &'static str,
    ) -> bool {
        self.fail(d, at, keyword, || {
            format!("{} {relation} {allowed}", d.text(at))
        })
    }

    /// Whether violations are being discarded (inside an applicator that only needs a yes/no).
    #[inline]
    pub fn is_quiet(&self) -> bool {
        self.quiet > 0
    }

    /// Runs `f` with violations discarded, returning its verdict.
    #[inline]
    pub fn quietly(&mut self, f: impl FnOnce(&mut Ctx) -> bool) -> bool {
        self.quiet += 1;
        let ok = f(self);
        self.quiet -= 1;
        ok
    }

    /// Whether violations were found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Which members or items of one instance were evaluated (for `unevaluatedProperties` and
/// `unevaluatedItems`), by position.
#[derive(Debug, Default, Clone)]
pub struct Eval {
    bits: SmallVec<[u64; 2]>,
}

impl Eval {
    /// Marks position `k`.
    #[inline]
    pub fn mark(&mut self, k: usize) {
        let w = k / 64;
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        self.bits[w] |= 1 << (k % 64);
    }

    /// Marks positions `0..n`.
    pub fn mark_to(&mut self, n: usize) {
        for k in 0..n {
            self.mark(k);
        }
    }

    /// Whether position `k` is marked.
    #[inline]
    pub fn has(&self, k: usize) -> bool {
        self.bits
            .get(k / 64)
            .is_some_and(|w| w & (1 << (k % 64)) != 0)
    }

    /// Adds another set.
    pub fn merge(&mut self, other: &Eval) {
        if self.bits.len() < other.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= b;
        }
    }
}

/// Marks `k` in an optional annotation set.
#[inline]
pub fn mark(ev: &mut Option<&mut Eval>, k: usize) {
    if let Some(e) = ev {
        e.mark(k);
    }
}

/// Merges `from` into an optional annotation set.
#[inline]
pub fn merge(ev: &mut Option<&mut Eval>, from: &Eval) {
    if let Some(e) = ev {
        e.merge(from);
    }
}

/// Whether node `i` has one of the types in `mask` (integers count as numbers; `1.0` is an
/// integer).
#[inline]
pub fn has_type(d: &Doc<'_>, i: u32, mask: u8) -> bool {
    let bit = match d.kind(i) {
        Kind::Null => ty::NULL,
        Kind::Bool => ty::BOOLEAN,
        Kind::Int => return mask & (ty::INTEGER | ty::NUMBER) != 0,
        Kind::Float => {
            if mask & ty::NUMBER != 0 {
                return true;
            }
            return mask & ty::INTEGER != 0 && d.is_integer(i);
        }
        Kind::Str => ty::STRING,
        Kind::Array => ty::ARRAY,
        Kind::Object => ty::OBJECT,
    };
    mask & bit != 0
}

/// Names the types of a mask, for messages.
pub fn type_names(mask: u8) -> String {
    let names = [
        (ty::NULL, "null"),
        (ty::BOOLEAN, "boolean"),
        (ty::INTEGER, "integer"),
        (ty::NUMBER, "number"),
        (ty::STRING, "string"),
        (ty::ARRAY, "array"),
        (ty::OBJECT, "object"),
    ];
    names
        .iter()
        .filter(|(b, _)| mask & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The JSON type name of node `i`, for messages.
pub fn kind_name(d: &Doc<'_>, i: u32) -> &'static str {
    match d.kind(i) {
        Kind::Null => "null",
        Kind::Bool => "boolean",
        Kind::Int => "integer",
        Kind::Float if d.is_integer(i) => "integer",
        Kind::Float => "number",
        Kind::Str => "string",
        Kind::Array => "array",
        Kind::Object => "object",
    }
}

/// `multipleOf`, decided exactly on the decimal numbers the two operands are (their shortest
/// round-trip digits, which are the digits the JSON text gave for up to 17 significant ones):
/// `x / m` must be an integer. Integers take a fast path.
#[inline]
pub fn multiple_of(x: f64, m: f64) -> bool {
    if x.fract() == 0.0 && m.fract() == 0.0 && x.abs() < 9.0e15 && m.abs() < 9.0e15 && m != 0.0 {
        return (x as i64) % (m as i64) == 0;
    }
    decimal_multiple(x, m)
}

/// The digits and exponent of a finite `f64`'s shortest decimal form: `x = digits · 10^exp`.
fn decimal(x: f64) -> Option<(u128, i32)> {
    if !x.is_finite() {
        return None;
    }
    let text = format!("{:e}", x.abs());
    let (mantissa, exp) = text.split_once('e')?;
    let mut exp: i32 = exp.parse().ok()?;
    let mut digits: u128 = 0;
    let mut seen_point = false;
    for b in mantissa.bytes() {
        match b {
            b'.' => seen_point = true,
            b'0'..=b'9' => {
                digits = digits * 10 + u128::from(b - b'0');
                if seen_point {
                    exp -= 1;
                }
            }
            _ => return None,
        }
    }
    Some((digits, exp))
}

#[cold]
fn decimal_multiple(x: f64, m: f64) -> bool {
    let (Some((a, ea)), Some((b, eb))) = (decimal(x), decimal(m)) else {
        return false;
    };
    if a == 0 {
        return true;
    }
    if b == 0 {
        return false;
    }
    // x / m = (a / b) · 10^e; a and b have at most 17 digits each.
    let e = ea - eb;
    if e >= 0 {
        // b must divide a · 10^e: multiply modulo b, one power of ten at a time.
        let mut r = a % b;
        for _ in 0..e.min(2000) {
            if r == 0 {
                break;
            }
            r = (r * 10) % b;
        }
        r == 0
    } else {
        // b · 10^-e must divide a, which is below 10^17.
        let Some(d) = 10u128
            .checked_pow(e.unsigned_abs())
            .and_then(|p| p.checked_mul(b))
        else {
            return false;
        };
        a % d == 0
    }
}

/// Whether all items of the array at `i` are distinct (JSON equality), in O(n log n).
pub fn unique_items(d: &Doc<'_>, i: u32) -> bool {
    let items: Vec<u32> = d.items(i).collect();
    if items.len() < 2 {
        return true;
    }
    if items.len() <= 8 {
        return (0..items.len())
            .all(|a| (a + 1..items.len()).all(|b| !d.equal(items[a], d, items[b])));
    }
    let mut hashed: Vec<(u64, u32)> = items.iter().map(|&x| (d.hash(x), x)).collect();
    hashed.sort_unstable();
    let mut start = 0;
    while start < hashed.len() {
        let mut end = start + 1;
        while end < hashed.len() && hashed[end].0 == hashed[start].0 {
            end += 1;
        }
        for a in start..end {
            for b in a + 1..end {
                if d.equal(hashed[a].1, d, hashed[b].1) {
                    return false;
                }
            }
        }
        start = end;
    }
    true
}

/// A constant (`enum` member or `const`) parsed once from its JSON text.
pub struct Constant {
    text: &'static str,
    doc: std::sync::OnceLock<Option<Doc<'static>>>,
}

impl std::fmt::Debug for Constant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text)
    }
}

impl Constant {
    /// A constant from JSON text the generator wrote.
    pub const fn new(text: &'static str) -> Constant {
        Constant {
            text,
            doc: std::sync::OnceLock::new(),
        }
    }

    /// Whether node `i` equals this constant.
    pub fn matches(&self, d: &Doc<'_>, i: u32) -> bool {
        self.doc
            .get_or_init(|| Doc::parse_str(self.text).ok())
            .as_ref()
            .is_some_and(|c| d.equal(i, c, 0))
    }

    /// The JSON text.
    pub fn text(&self) -> &'static str {
        self.text
    }
}

#[cfg(feature = "patterns")]
/// A pattern, compiled on first use. The generator already translated it from ECMA-262 and
/// checked that it compiles, so the fallback (a pattern that matches nothing) is unreachable.
/// A pattern the generator found to be runs of ASCII bytes ([`Runs`]) is matched by walking
/// them instead, with no regex built.
pub struct Pattern {
    source: &'static str,
    translated: &'static str,
    runs: Option<Runs>,
    re: std::sync::OnceLock<Option<regex::Regex>>,
}

/// One part of an anchored pattern: a set of ASCII bytes (bit `b` for byte `b`), taken at
/// least `min` and at most `max` times.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// The bytes it takes.
    pub class: u128,
    /// The fewest it takes.
    pub min: u32,
    /// The most it takes (`u32::MAX`: no bound).
    pub max: u32,
}

/// The most runs a pattern of runs may have.
pub const RUNS_MAX: usize = 32;

/// Runs, with a table of which runs take each byte (bit `i` for run `i`), made when the program
/// is compiled: a byte costs one lookup.
#[derive(Debug)]
pub struct Runs {
    runs: &'static [Run],
    takes: [u32; 256],
}

impl Runs {
    /// The runs and their table; at most [`RUNS_MAX`] (more: none is ever taken).
    pub const fn new(runs: &'static [Run]) -> Runs {
        let mut takes = [0u32; 256];
        let mut i = 0;
        while i < runs.len() && i < RUNS_MAX {
            let mut b = 0;
            while b < 128 {
                if runs[i].class >> b & 1 == 1 {
                    takes[b] |= 1 << i;
                }
                b += 1;
            }
            i += 1;
        }
        Runs { runs, takes }
    }

    /// Whether `s` is, whole, the runs one after another, each taken as far as it goes. The
    /// generator only makes runs for which that is the pattern's own answer.
    pub fn matches(&self, s: &str) -> bool {
        if self.runs.len() > RUNS_MAX {
            return false;
        }
        let bytes = s.as_bytes();
        let mut at = 0usize;
        for (i, run) in self.runs.iter().enumerate() {
            let bit = 1u32 << i;
            let start = at;
            let end = at.saturating_add(run.max as usize).min(bytes.len());
            while at < end && self.takes[usize::from(bytes[at])] & bit != 0 {
                at += 1;
            }
            if at - start < run.min as usize {
                return false;
            }
        }
        at == bytes.len()
    }
}

#[cfg(feature = "patterns")]
impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.source)
    }
}

#[cfg(feature = "patterns")]
impl Pattern {
    /// A pattern: the spec's text (for messages) and its translation for the `regex` crate.
    pub const fn new(source: &'static str, translated: &'static str) -> Pattern {
        Pattern {
            source,
            translated,
            runs: None,
            re: std::sync::OnceLock::new(),
        }
    }

    /// A pattern that is `runs`, matched by [`Runs::matches`].
    pub const fn runs(
        source: &'static str,
        translated: &'static str,
        runs: &'static [Run],
    ) -> Pattern {
        Pattern {
            source,
            translated,
            runs: Some(Runs::new(runs)),
            re: std::sync::OnceLock::new(),
        }
    }

    /// Whether `s` matches somewhere (patterns are not anchored).
    #[inline]
    pub fn is_match(&self, s: &str) -> bool {
        if let Some(runs) = &self.runs {
            return runs.matches(s);
        }
        self.re
            .get_or_init(|| {
                regex::RegexBuilder::new(self.translated)
                    .size_limit(1 << 24)
                    .build()
                    .ok()
            })
            .as_ref()
            .is_some_and(|re| re.is_match(s))
    }

    /// The spec's pattern text.
    pub fn source(&self) -> &'static str {
        self.source
    }
}

/// Formats a number for a message without a trailing `.0` on integers.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiples() {
        assert!(multiple_of(10.0, 2.0));
        assert!(!multiple_of(7.0, 2.0));
        assert!(multiple_of(0.0075, 0.0001));
        assert!(!multiple_of(0.00751, 0.0001));
        assert!(multiple_of(4.5, 1.5));
        assert!(!multiple_of(1e308, 0.123456789));
        assert!(!multiple_of(2.589_041_988_477_783_3e-42, 0.25));
        assert!(!multiple_of(1e-300, 0.5));
        assert!(multiple_of(0.0, 0.25));
        assert!(multiple_of(1e300, 0.5));
        assert!(multiple_of(-7.5, 2.5));
        assert!(!multiple_of(7.5, 2.0));
        assert!(multiple_of(19.99, 0.01));
        assert!(multiple_of(1070468.14, 0.01));
        assert!(!multiple_of(0.3, 0.2));
    }

    #[test]
    fn uniqueness() {
        let d = Doc::parse(
            b"[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, {\"a\": 1, \"b\": 2}, {\"b\": 2, \"a\": 1.0}]",
        )
        .unwrap();
        assert!(!unique_items(&d, 0));
        let d = Doc::parse(b"[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, true, \"1\"]").unwrap();
        assert!(unique_items(&d, 0));
    }
}
