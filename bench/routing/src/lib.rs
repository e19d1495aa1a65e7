//! Route trees generated from GitHub's routes (see build.rs), for the routing benchmark.
#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/index.rs"));

/// A concrete request path for a template: every `{param}` becomes a value.
pub fn sample_path(template: &str, salt: usize) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).unwrap_or(rest.len() - 1);
        out.push_str(&format!("v{salt}"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}
