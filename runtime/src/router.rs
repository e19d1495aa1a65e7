//! What the generated route decision tree returns, and the helpers it calls.
//!
//! The tree itself is generated code: one function per node of a trie over the normalised path
//! segments. At each node, literal children are tried first (dispatched on the segment's length,
//! then its text), then segments that mix text and parameters, then a parameter; a branch that
//! finds nothing gives way to the next. At the end of the path a `match` on the method decides.
//! Parameters are captured by position, borrowed from the request path, and named afterwards
//! from the matched route's static list, so a lookup allocates nothing (but for a greedy
//! parameter over several segments, whose value is joined).

use std::borrow::Cow;

/// The outcome of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The index of the matched route.
    Found(usize),
    /// The path matched but not the method; the value of the `Allow` header.
    MethodNotAllowed(&'static str),
    /// No route has this path.
    NotFound,
}

/// Path parameter values captured by a lookup, in template order.
///
/// A greedy parameter (`{proxy+}`, the last segment of its template) takes every remaining
/// segment, joined with `/`: the only value that is not borrowed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params<'a> {
    values: smallvec::SmallVec<[Cow<'a, str>; 8]>,
    /// The index of the greedy value, if the route has one.
    greedy: Option<usize>,
}

impl<'a> Params<'a> {
    /// The values, in template order.
    pub fn values(&self) -> &[Cow<'a, str>] {
        &self.values
    }

    /// Empties the set for reuse.
    pub fn clear(&mut self) {
        self.values.clear();
        self.greedy = None;
    }

    /// How many values are captured.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Forgets values captured after `len` (a branch that did not match).
    pub fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        if self.greedy.is_some_and(|g| g >= len) {
            self.greedy = None;
        }
    }

    /// Captures one value.
    pub fn push(&mut self, value: &'a str) {
        self.values.push(Cow::Borrowed(value));
    }

    /// Captures the remaining segments (at least one) as the greedy value.
    pub fn push_rest(&mut self, segments: &[&'a str]) {
        self.greedy = Some(self.values.len());
        self.values.push(match segments {
            [one] => Cow::Borrowed(*one),
            _ => Cow::Owned(segments.join("/")),
        });
    }

    /// The values with the names of the route that matched.
    pub fn named(&self, names: &'static [&'static str]) -> PathParams<'_> {
        PathParams {
            names,
            values: &self.values,
            greedy: self.greedy,
        }
    }
}

/// Path parameters by name.
#[derive(Debug, Clone, Copy)]
pub struct PathParams<'a> {
    names: &'static [&'static str],
    values: &'a [Cow<'a, str>],
    greedy: Option<usize>,
}

impl<'a> PathParams<'a> {
    /// No parameters.
    pub fn empty() -> PathParams<'a> {
        PathParams {
            names: &[],
            values: &[],
            greedy: None,
        }
    }

    /// The value of a parameter.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.values.get(i))
            .map(|v| v.as_ref())
    }

    /// Whether `name` is the greedy parameter (its value holds `/` between segments).
    pub fn is_greedy(&self, name: &str) -> bool {
        self.greedy
            .and_then(|g| self.names.get(g))
            .is_some_and(|n| *n == name)
    }

    /// (name, value) pairs in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'a str)> + '_ {
        self.names
            .iter()
            .copied()
            .zip(self.values.iter().map(|v| v.as_ref()))
    }
}

/// One part of a segment that mixes literal text and parameters (`{name}.{ext}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Lit(&'static str),
    /// A parameter (non-empty).
    Param,
}

/// Matches a mixed segment; on success captures its parameters. A parameter extends to the
/// first occurrence of the literal that follows it (at least one character).
pub fn match_mixed<'a>(segment: &'a str, parts: &[Part], params: &mut Params<'a>) -> bool {
    let mark = params.len();
    let mut rest = segment;
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Lit(l) => match rest.strip_prefix(l) {
                Some(r) => rest = r,
                None => {
                    params.truncate(mark);
                    return false;
                }
            },
            Part::Param => {
                let value = match parts.get(i + 1) {
                    Some(Part::Lit(l)) => {
                        let skip = rest.chars().next().map_or(0, char::len_utf8);
                        match rest[skip..].find(l) {
                            Some(at) => &rest[..skip + at],
                            None => {
                                params.truncate(mark);
                                return false;
                            }
                        }
                    }
                    _ => rest,
                };
                if value.is_empty() {
                    params.truncate(mark);
                    return false;
                }
                params.push(value);
                rest = &rest[value.len()..];
            }
        }
    }
    if !rest.is_empty() {
        params.truncate(mark);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_segments() {
        let parts = [Part::Param, Part::Lit("."), Part::Param];
        let mut p = Params::default();
        assert!(match_mixed("report.tar.gz", &parts, &mut p));
        let named = p.named(&["name", "ext"]);
        assert_eq!(
            (named.get("name"), named.get("ext")),
            (Some("report"), Some("tar.gz"))
        );
        let mut p = Params::default();
        assert!(!match_mixed(".gz", &parts, &mut p));
        assert!(!match_mixed("noext", &parts, &mut p));
        assert!(p.is_empty(), "a failed match captures nothing");
        let v = [Part::Lit("v"), Part::Param];
        let mut p = Params::default();
        assert!(match_mixed("v2", &v, &mut p));
        assert_eq!(p.named(&["major"]).get("major"), Some("2"));
        assert!(!match_mixed("v", &v, &mut Params::default()));
        assert!(match_mixed("vé", &v, &mut Params::default()));
    }

    #[test]
    fn greedy_values_join_the_rest() {
        let mut p = Params::default();
        p.push("users");
        p.push_rest(&["a", "b c", "d"]);
        let named = p.named(&["kind", "proxy"]);
        assert_eq!(named.get("proxy"), Some("a/b c/d"));
        assert!(named.is_greedy("proxy") && !named.is_greedy("kind"));
        p.truncate(1);
        assert!(!p.named(&["kind", "proxy"]).is_greedy("proxy"));
        p.push_rest(&["one"]);
        assert_eq!(p.named(&["kind", "proxy"]).get("proxy"), Some("one"));
    }
}
