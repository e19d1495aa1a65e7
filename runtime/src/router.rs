//! What the generated route decision tree returns, and the helpers it calls.
//!
//! The tree itself is generated code: a `match` over the normalised segments, literal segments
//! before parameters at each position, then a `match` over the method. This module only holds
//! the types it fills in.

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

/// Path parameters captured by a lookup, as (wire name, decoded value).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    items: Vec<(&'static str, String)>,
}

impl Params {
    /// Empties the set for reuse.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Records one parameter.
    pub fn push(&mut self, name: &'static str, value: &str) {
        self.items.push((name, value.to_string()));
    }

    /// The value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All parameters in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.items.iter().map(|(n, v)| (*n, v.as_str()))
    }
}

/// One part of a segment that mixes literal text and parameters (`{name}.{ext}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Lit(&'static str),
    /// A parameter (non-empty).
    Param(&'static str),
}

/// Matches a mixed segment; on success records its parameters. A parameter extends to the first
/// occurrence of the literal that follows it.
pub fn match_mixed(segment: &str, parts: &[Part], params: &mut Params) -> bool {
    let mut rest = segment;
    let mut captured: Vec<(&'static str, &str)> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        match parts[i] {
            Part::Lit(l) => match rest.strip_prefix(l) {
                Some(r) => rest = r,
                None => return false,
            },
            Part::Param(name) => {
                let value = match parts.get(i + 1) {
                    Some(Part::Lit(l)) => {
                        // At least one character, then up to the literal.
                        let skip = rest.chars().next().map_or(0, char::len_utf8);
                        match rest[skip..].find(l) {
                            Some(at) => &rest[..skip + at],
                            None => return false,
                        }
                    }
                    _ => rest,
                };
                if value.is_empty() {
                    return false;
                }
                captured.push((name, value));
                rest = &rest[value.len()..];
            }
        }
        i += 1;
    }
    if !rest.is_empty() {
        return false;
    }
    for (n, v) in captured {
        params.push(n, v);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_segments() {
        let parts = [Part::Param("name"), Part::Lit("."), Part::Param("ext")];
        let mut p = Params::default();
        assert!(match_mixed("report.tar.gz", &parts, &mut p));
        assert_eq!(
            (p.get("name"), p.get("ext")),
            (Some("report"), Some("tar.gz"))
        );
        let mut p = Params::default();
        assert!(!match_mixed(".gz", &parts, &mut p));
        assert!(!match_mixed("noext", &parts, &mut p));
        let v = [Part::Lit("v"), Part::Param("major")];
        let mut p = Params::default();
        assert!(match_mixed("v2", &v, &mut p));
        assert_eq!(p.get("major"), Some("2"));
        assert!(!match_mixed("v", &v, &mut Params::default()));
    }
}
