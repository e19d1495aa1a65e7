//! Every Rust identifier gwgen makes from spec text is made here.
//!
//! Spec names are untrusted: they may be keywords, contain quotes or `*/`, be empty, start with a
//! digit, be non-ASCII, or collide after case conversion. The functions below turn any string
//! into a plain ASCII snake-case identifier that is not a keyword and not one of the generator's
//! own local names, and make names unique within a scope.

use std::collections::HashSet;

/// Rust keywords (strict, reserved and weak ones that matter) plus `gen`.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield", "union",
];

/// Names the generated code uses for its own locals and items.
const RESERVED: &[&str] = &[
    "request", "response", "state", "ctx", "result", "config", "app", "router", "body", "params",
    "main",
];

/// Converts any string into a snake-case identifier (ASCII letters, digits, `_`).
pub fn snake_case(raw: &str) -> String {
    let mut out = String::new();
    let mut prev_lower_or_digit = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower_or_digit && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower_or_digit = false;
        }
    }
    let trimmed = out.trim_matches('_').to_string();
    let mut name = if trimmed.is_empty() {
        "unnamed".to_string()
    } else {
        trimmed
    };
    if name.as_bytes()[0].is_ascii_digit() {
        name.insert(0, 'n');
        name.insert(1, '_');
    }
    if KEYWORDS.contains(&name.as_str()) || RESERVED.contains(&name.as_str()) {
        name.push('_');
    }
    name
}

/// Hands out unique names within one scope.
#[derive(Debug, Default)]
pub struct Scope {
    used: HashSet<String>,
}

impl Scope {
    /// A unique snake-case name for `raw` in this scope (`name`, `name_2`, `name_3`, …).
    pub fn name(&mut self, raw: &str) -> String {
        let base = snake_case(raw);
        if self.used.insert(base.clone()) {
            return base;
        }
        (2..)
            .map(|i| format!("{}_{i}", base.trim_end_matches('_')))
            .find(|n| self.used.insert(n.clone()))
            .unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names() {
        assert_eq!(snake_case("type"), "type_");
        assert_eq!(snake_case("self"), "self_");
        assert_eq!(snake_case("getUserByID"), "get_user_by_id");
        assert_eq!(snake_case("\"]; fn x(){"), "fn_x");
        assert_eq!(snake_case("*/"), "unnamed");
        assert_eq!(snake_case("2fa"), "n_2fa");
        assert_eq!(snake_case("café-ünï"), "caf_n");
        assert_eq!(snake_case("request"), "request_");
    }

    #[test]
    fn collisions_become_unique() {
        let mut s = Scope::default();
        assert_eq!(s.name("userId"), "user_id");
        assert_eq!(s.name("user_id"), "user_id_2");
        assert_eq!(s.name("user-id"), "user_id_3");
    }
}
