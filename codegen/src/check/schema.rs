//! Checks on one Schema Object's own keywords: `type`, `pattern`s, and contradictions that are
//! cheap to see. Subschemas are reached by the structure walk, which calls this for each.

use std::collections::HashMap;
use std::path::Path;

use crate::diag::{Code, Diagnostics};
use crate::load::node::{push_segment, Node, Value};
use crate::pattern::{translate, PatternError};
use crate::Version;

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// Checks schema keywords, remembering the verdict on each distinct pattern.
#[derive(Default)]
pub(crate) struct SchemaChecker {
    patterns: HashMap<String, Option<PatternError>>,
}

struct At<'a> {
    file: &'a Path,
    ptr: &'a str,
    diags: &'a mut Diagnostics,
}

impl At<'_> {
    fn report(&mut self, code: Code, node: &Node, key: &str, msg: String, hint: Option<String>) {
        let mut ptr = self.ptr.to_string();
        if !key.is_empty() {
            push_segment(&mut ptr, key);
        }
        self.diags
            .report(code, self.file, node.pos, &ptr, msg, hint);
    }
}

impl SchemaChecker {
    pub(crate) fn check_keywords(
        &mut self,
        schema: &Node,
        version: Version,
        file: &Path,
        ptr: &str,
        diags: &mut Diagnostics,
    ) {
        let mut at = At { file, ptr, diags };
        if let Some(t) = schema.get("type") {
            check_type(t, version, &mut at);
        }
        if let Some(p) = schema.get("pattern") {
            match p.as_str() {
                Some(s) => self.check_pattern(s, p, "pattern", &mut at),
                None => at.report(
                    Code::WrongType,
                    p,
                    "pattern",
                    format!("`pattern` must be a string, found {}", p.kind()),
                    None,
                ),
            }
        }
        if let Some(pp) = schema.get("patternProperties") {
            for e in pp.entries() {
                let mut key_node = e.value.clone();
                key_node.pos = e.key_pos;
                let key = format!(
                    "patternProperties/{}",
                    e.key.replace('~', "~0").replace('/', "~1")
                );
                self.check_pattern(&e.key, &key_node, &key, &mut at);
            }
        }
        if let Some(e) = schema.get("enum") {
            match &e.value {
                Value::Array(items) if items.is_empty() => at.report(
                    Code::Unsatisfiable,
                    e,
                    "enum",
                    "`enum` is empty, so no value is allowed".into(),
                    None,
                ),
                Value::Array(_) => {}
                _ => at.report(
                    Code::WrongType,
                    e,
                    "enum",
                    format!("`enum` must be an array, found {}", e.kind()),
                    None,
                ),
            }
        }
        let num = |k: &str| schema.get(k).and_then(Node::as_f64);
        for (lo, hi) in [
            ("minLength", "maxLength"),
            ("minItems", "maxItems"),
            ("minProperties", "maxProperties"),
            ("minContains", "maxContains"),
        ] {
            if let (Some(a), Some(b)) = (num(lo), num(hi)) {
                if a > b {
                    let node = schema.get(lo).unwrap_or(schema);
                    at.report(
                        Code::Unsatisfiable,
                        node,
                        lo,
                        format!("`{lo}` ({a}) is greater than `{hi}` ({b})"),
                        None,
                    );
                }
            }
        }
        // Numeric bounds, in either dialect.
        let mut lower: Option<(f64, bool)> = num("minimum").map(|v| (v, false));
        let mut upper: Option<(f64, bool)> = num("maximum").map(|v| (v, false));
        match version {
            Version::V30 => {
                if schema.get("exclusiveMinimum").and_then(Node::as_bool) == Some(true) {
                    lower = lower.map(|(v, _)| (v, true));
                }
                if schema.get("exclusiveMaximum").and_then(Node::as_bool) == Some(true) {
                    upper = upper.map(|(v, _)| (v, true));
                }
            }
            Version::V31 => {
                if let Some(v) = num("exclusiveMinimum") {
                    if lower.is_none_or(|(l, _)| v >= l) {
                        lower = Some((v, true));
                    }
                }
                if let Some(v) = num("exclusiveMaximum") {
                    if upper.is_none_or(|(u, _)| v <= u) {
                        upper = Some((v, true));
                    }
                }
            }
        }
        if let (Some((l, lx)), Some((u, ux))) = (lower, upper) {
            if l > u || (l == u && (lx || ux)) {
                at.report(Code::Unsatisfiable, schema, "", format!("the lower bound ({l}) is not below the upper bound ({u}), so no number is allowed"), None);
            }
        }
        if let Some(m) = schema.get("multipleOf") {
            if m.as_f64().is_some_and(|v| v <= 0.0) {
                at.report(
                    Code::InvalidValue,
                    m,
                    "multipleOf",
                    "`multipleOf` must be greater than 0".into(),
                    None,
                );
            }
        }
        if version == Version::V31 {
            if let (Some(req), Some(props)) = (schema.get("required"), schema.get("properties")) {
                for r in req.items() {
                    if let Some(name) = r.as_str() {
                        if props.get(name).and_then(Node::as_bool) == Some(false) {
                            at.report(
                                Code::Unsatisfiable,
                                r,
                                "required",
                                format!("property `{name}` is required but its schema is `false`"),
                                None,
                            );
                        }
                    }
                }
            }
        }
    }

    fn check_pattern(&mut self, pattern: &str, node: &Node, key: &str, at: &mut At<'_>) {
        let verdict = self
            .patterns
            .entry(pattern.to_string())
            .or_insert_with(|| translate(pattern).err())
            .clone();
        match verdict {
            None => {}
            Some(PatternError::Invalid(why)) => at.report(
                Code::InvalidPattern,
                node,
                key,
                format!("`{pattern}` is not a valid ECMA-262 regular expression: {why}"),
                None,
            ),
            Some(PatternError::Unsupported(why)) => at.report(
                Code::UnsupportedPattern,
                node,
                key,
                format!("`{pattern}` cannot be matched by the gateway: {why}"),
                Some("rewrite it without lookaround or backreferences".into()),
            ),
        }
    }
}

fn check_type(t: &Node, version: Version, at: &mut At<'_>) {
    let ok_name = |s: &str| TYPES.contains(&s) && !(version == Version::V30 && s == "null");
    match &t.value {
        Value::String(s) if ok_name(s) => {}
        Value::String(s) => {
            let hint = if version == Version::V30 && s == "null" {
                Some("OpenAPI 3.0 uses `nullable: true` instead".to_string())
            } else {
                crate::diag::did_you_mean(s, TYPES.iter().copied())
            };
            at.report(
                Code::InvalidSchemaType,
                t,
                "type",
                format!("`{s}` is not a JSON Schema type"),
                hint,
            )
        }
        Value::Array(items) if version == Version::V31 => {
            if items.is_empty() {
                at.report(
                    Code::Unsatisfiable,
                    t,
                    "type",
                    "`type` is an empty list, so no value is allowed".into(),
                    None,
                );
            }
            for item in items {
                if !item.as_str().is_some_and(ok_name) {
                    at.report(
                        Code::InvalidSchemaType,
                        item,
                        "type",
                        "every entry of `type` must be a JSON Schema type name".into(),
                        None,
                    );
                }
            }
        }
        _ => at.report(
            Code::InvalidSchemaType,
            t,
            "type",
            format!(
                "`type` must be {}, found {}",
                if version == Version::V30 {
                    "a string in OpenAPI 3.0"
                } else {
                    "a string or an array of strings"
                },
                t.kind()
            ),
            None,
        ),
    }
}
