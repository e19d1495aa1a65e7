//! Small builders for positioned trees: the AWS import writes new nodes that point back at the
//! text they came from, so every later diagnostic still has a line and column.

use crate::load::node::{Entry, Node, Pos, Value};

/// A string node.
pub(crate) fn string(pos: Pos, s: impl Into<String>) -> Node {
    Node::new(Value::String(s.into()), pos)
}

/// A boolean node.
pub(crate) fn boolean(pos: Pos, b: bool) -> Node {
    Node::new(Value::Bool(b), pos)
}

/// An integer node.
pub(crate) fn int(pos: Pos, n: u64) -> Node {
    Node::new(Value::Number(n.into()), pos)
}

/// An array node.
pub(crate) fn array(pos: Pos, items: Vec<Node>) -> Node {
    Node::new(Value::Array(items), pos)
}

/// A mapping node from `(key, value)` pairs; every key takes the position of its value.
pub(crate) fn object(pos: Pos, entries: Vec<(&str, Node)>) -> Node {
    Node::new(
        Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    key_pos: v.pos,
                    value: v,
                })
                .collect(),
        ),
        pos,
    )
}

/// Sets `key` in a mapping node (replacing an entry of that name), or does nothing on another
/// kind of node.
pub(crate) fn set(node: &mut Node, key: &str, value: Node) {
    if let Value::Object(entries) = &mut node.value {
        match entries.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = value,
            None => entries.push(Entry {
                key: key.to_string(),
                key_pos: value.pos,
                value,
            }),
        }
    }
}

/// The member `key` of a mapping, created empty (at `pos`) if it is missing.
pub(crate) fn member<'a>(node: &'a mut Node, key: &str, pos: Pos) -> Option<&'a mut Node> {
    let Value::Object(entries) = &mut node.value else {
        return None;
    };
    let i = match entries.iter().position(|e| e.key == key) {
        Some(i) => i,
        None => {
            entries.push(Entry {
                key: key.to_string(),
                key_pos: pos,
                value: Node::new(Value::Object(Vec::new()), pos),
            });
            entries.len() - 1
        }
    };
    Some(&mut entries[i].value)
}

/// Removes `key` from a mapping; returns its entry.
pub(crate) fn remove(node: &mut Node, key: &str) -> Option<Entry> {
    let Value::Object(entries) = &mut node.value else {
        return None;
    };
    let i = entries.iter().position(|e| e.key == key)?;
    Some(entries.remove(i))
}

/// A string, number or boolean as text (AWS exports write `statusCode` both ways).
pub(crate) fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The tree as YAML text (block style; strings quoted where a plain scalar could be read as
/// something else), for `gwgen import-aws`.
pub(crate) fn to_yaml(node: &Node) -> String {
    let mut out = String::new();
    match &node.value {
        Value::Object(e) if !e.is_empty() => write_map(&mut out, e, 0),
        Value::Array(i) if !i.is_empty() => write_seq(&mut out, i, 0),
        _ => {
            out.push_str(&scalar(node));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, entries: &[Entry], indent: usize) {
    for (n, e) in entries.iter().enumerate() {
        if n > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&quoted(&e.key));
        out.push(':');
        write_value(out, &e.value, indent);
    }
}

fn write_seq(out: &mut String, items: &[Node], indent: usize) {
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match &item.value {
            Value::Object(e) if !e.is_empty() => write_map(out, e, indent + 2),
            Value::Array(i) if !i.is_empty() => write_seq(out, i, indent + 2),
            _ => {
                out.push_str(&scalar(item));
                out.push('\n');
            }
        }
    }
}

/// After `key:`: a scalar on the same line, or a nested block on the next ones.
fn write_value(out: &mut String, value: &Node, indent: usize) {
    match &value.value {
        Value::Object(e) if !e.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            write_map(out, e, indent + 2);
        }
        Value::Array(i) if !i.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            write_seq(out, i, indent + 2);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(value));
            out.push('\n');
        }
    }
}

fn scalar(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a YAML scalar: plain when it can only be read back as that string, else in
/// double quotes with JSON's escapes (which YAML reads the same).
fn quoted(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ' | '(' | ')' | ',')
        })
        && !s.ends_with(' ')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "nan" | "inf"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}
