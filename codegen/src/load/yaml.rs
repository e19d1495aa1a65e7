//! A YAML reader that builds the positioned [`Node`] tree from `saphyr-parser` events.
//!
//! It applies the YAML 1.2 core schema to plain scalars, resolves anchors and aliases, and
//! applies merge keys (`<<`). It uses an explicit stack, bounds nesting, and bounds the total
//! size that aliases may expand to, so neither deep nor "billion laughs" input can exhaust the
//! stack or memory.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::json::SyntaxError;
use super::node::{Entry, Node, Pos, Value};

/// How many nodes aliases may copy in one document before the loader refuses it.
const MAX_ALIAS_EXPANSION: usize = 2_000_000;

/// A non-fatal finding of the YAML reader (duplicate keys, extra documents).
#[derive(Debug, Clone, PartialEq)]
pub struct YamlWarning {
    /// What is wrong.
    pub message: String,
    /// Where.
    pub pos: Pos,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        pos: Pos,
        anchor: usize,
        key: Option<(String, Pos)>,
        merges: Vec<Node>,
    },
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line() as u32,
        col: span.start.col() as u32 + 1,
    }
}

/// Parses the first document of `text`.
pub fn parse(text: &str, max_depth: usize) -> Result<(Node, Vec<YamlWarning>), SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut warnings = Vec::new();
    let mut expanded = 0usize;
    let mut root: Option<Node> = None;

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            message: if e.info().contains("recursion limit") {
                "nesting deeper than the YAML reader allows for flow collections (`[…]`, `{…}`); use block style".to_string()
            } else {
                e.info().to_string()
            },
            pos: Pos {
                line: e.marker().line() as u32,
                col: e.marker().col() as u32 + 1,
            },
        })?;
        let pos = pos_of(&span);
        let done: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if root.is_some() {
                    warnings.push(YamlWarning {
                        message: "only the first YAML document of a file is read".into(),
                        pos,
                    });
                    break;
                }
                None
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = stack.last_mut()
                {
                    *key = Some((text.into_owned(), pos));
                    if anchor > 0 {
                        anchors.insert(anchor, Node::new(Value::Null, pos));
                    }
                    None
                } else {
                    let tag = tag.map(|t| t.suffix.clone());
                    Some((Node::new(scalar(&text, style, tag.as_deref()), pos), anchor))
                }
            }
            Event::Alias(id) => {
                let Some(node) = anchors.get(&id) else {
                    return Err(SyntaxError {
                        message: "alias to an unknown anchor".into(),
                        pos,
                    });
                };
                expanded += count_nodes(node);
                if expanded > MAX_ALIAS_EXPANSION {
                    return Err(SyntaxError {
                        message: format!(
                            "aliases expand to more than {MAX_ALIAS_EXPANSION} nodes; refusing the document"
                        ),
                        pos,
                    });
                }
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = stack.last_mut()
                {
                    match node.as_str() {
                        Some(s) => *key = Some((s.to_string(), pos)),
                        None => {
                            return Err(SyntaxError {
                                message: "only scalar mapping keys are supported".into(),
                                pos,
                            })
                        }
                    }
                    None
                } else {
                    Some((node.clone(), 0))
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if let Some(Frame::Map { key: None, .. }) = stack.last() {
                    return Err(SyntaxError {
                        message: "only scalar mapping keys are supported".into(),
                        pos,
                    });
                }
                if stack.len() >= max_depth {
                    return Err(SyntaxError {
                        message: format!("nesting deeper than {max_depth} levels"),
                        pos,
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        pos,
                        anchor,
                    }
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        pos,
                        anchor,
                        key: None,
                        merges: Vec::new(),
                    }
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, pos, anchor }) => {
                    Some((Node::new(Value::Array(items), pos), anchor))
                }
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    mut entries,
                    pos,
                    anchor,
                    merges,
                    ..
                }) => {
                    apply_merges(&mut entries, merges, &mut warnings);
                    Some((Node::new(Value::Object(entries), pos), anchor))
                }
                _ => None,
            },
        };
        let Some((node, anchor)) = done else { continue };
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merges,
                ..
            }) => {
                let Some((k, key_pos)) = key.take() else {
                    continue;
                };
                if k == "<<" {
                    merges.push(node);
                } else {
                    if let Some(old) = entries.iter().position(|e| e.key == k) {
                        warnings.push(YamlWarning {
                            message: format!("duplicate key `{k}`; the last one wins"),
                            pos: key_pos,
                        });
                        entries.remove(old);
                    }
                    entries.push(Entry {
                        key: k,
                        key_pos,
                        value: node,
                    });
                }
            }
        }
    }
    Ok((
        root.unwrap_or_else(|| Node::new(Value::Null, Pos { line: 1, col: 1 })),
        warnings,
    ))
}

/// Merge keys: entries of the merged mappings fill in keys the mapping does not set itself;
/// earlier merged mappings win over later ones.
fn apply_merges(entries: &mut Vec<Entry>, merges: Vec<Node>, warnings: &mut Vec<YamlWarning>) {
    for merge in merges {
        let sources: Vec<Node> = match merge.value {
            Value::Object(_) => vec![merge],
            Value::Array(items) => items,
            _ => {
                warnings.push(YamlWarning {
                    message: "a merge key (`<<`) takes a mapping or a list of mappings".into(),
                    pos: merge.pos,
                });
                continue;
            }
        };
        for source in sources {
            if let Value::Object(src) = source.value {
                for e in src {
                    if !entries.iter().any(|x| x.key == e.key) {
                        entries.push(e);
                    }
                }
            }
        }
    }
}

fn count_nodes(node: &Node) -> usize {
    let mut n = 0;
    let mut stack = vec![node];
    while let Some(x) = stack.pop() {
        n += 1;
        match &x.value {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(entries) => stack.extend(entries.iter().map(|e| &e.value)),
            _ => {}
        }
    }
    n
}

/// The YAML 1.2 core schema for plain scalars; quoted and block scalars are strings.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = core_number(text) {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn core_number(text: &str) -> Option<serde_json::Number> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Into::into);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Into::into);
    }
    let digits = text.trim_start_matches(['-', '+']);
    if digits.is_empty() {
        return None;
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        let t = text.trim_start_matches('+');
        return t
            .parse::<i64>()
            .map(Into::into)
            .ok()
            .or_else(|| t.parse::<u64>().ok().map(Into::into))
            .or_else(|| t.parse::<f64>().ok().and_then(serde_json::Number::from_f64));
    }
    let valid_float = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if valid_float {
        if let Ok(f) = text.trim_start_matches('+').parse::<f64>() {
            return serde_json::Number::from_f64(f);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_and_positions() {
        let (doc, _) = parse("a: 1\nb: '1'\nc: [x, ~, true, 1.5]\n200: ok\n", 64).unwrap();
        assert_eq!(doc.get("a").unwrap().as_f64(), Some(1.0));
        assert_eq!(doc.get("b").unwrap().as_str(), Some("1"));
        let c = doc.get("c").unwrap();
        assert_eq!(c.pos, Pos { line: 3, col: 4 });
        assert_eq!(c.items()[1].value, Value::Null);
        assert_eq!(doc.entry("200").unwrap().key_pos, Pos { line: 4, col: 1 });
    }

    #[test]
    fn anchors_and_merge_keys() {
        let src = "base: &b {x: 1, y: 2}\nder:\n  <<: *b\n  y: 3\nlist: [*b]\n";
        let (doc, _) = parse(src, 64).unwrap();
        let der = doc.get("der").unwrap();
        assert_eq!(der.get("x").unwrap().as_f64(), Some(1.0));
        assert_eq!(der.get("y").unwrap().as_f64(), Some(3.0));
        assert_eq!(
            doc.get("list").unwrap().items()[0]
                .get("y")
                .unwrap()
                .as_f64(),
            Some(2.0)
        );
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            src.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        assert!(parse(&src, 64).unwrap_err().message.contains("aliases"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(50_000);
        assert!(parse(&src, 300).is_err());
    }

    #[test]
    fn duplicate_keys_warn() {
        let (doc, w) = parse("a: 1\na: 2\n", 8).unwrap();
        assert_eq!(doc.get("a").unwrap().as_f64(), Some(2.0));
        assert_eq!(w.len(), 1);
    }
}
