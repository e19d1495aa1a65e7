//! The document tree every loader produces: JSON-like values that remember where they stood.
//!
//! Both the JSON and the YAML loader build this tree, so every later stage can point at a
//! line and column without knowing which syntax the spec was written in.

use std::fmt;

/// A position in a source file: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

/// One value of a loaded document, with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts.
    pub pos: Pos,
}

/// A key of a mapping, with its own position (diagnostics about keys point at the key).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key's text.
    pub key: String,
    /// Where the key starts.
    pub key_pos: Pos,
    /// The value under the key.
    pub value: Node,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` / `~`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, kept exact where it fits `serde_json::Number`.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A sequence.
    Array(Vec<Node>),
    /// A mapping, in source order. Duplicate keys are reported by the loader and the last wins.
    Object(Vec<Entry>),
}

impl Node {
    /// Creates a node.
    pub fn new(value: Value, pos: Pos) -> Self {
        Node { value, pos }
    }

    /// The member `key` of a mapping (the last one if the key repeats).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(entries) => entries
                .iter()
                .rev()
                .find(|e| e.key == key)
                .map(|e| &e.value),
            _ => None,
        }
    }

    /// The entry `key` of a mapping, with its key position.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Object(entries) => entries.iter().rev().find(|e| e.key == key),
            _ => None,
        }
    }

    /// The entries of a mapping, or an empty slice.
    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Object(entries) => entries,
            _ => &[],
        }
    }

    /// The items of a sequence, or an empty slice.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Array(items) => items,
            _ => &[],
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as `f64`, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match &self.value {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Whether this is a mapping.
    pub fn is_object(&self) -> bool {
        matches!(self.value, Value::Object(_))
    }

    /// The name of the node's JSON type, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Follows a JSON pointer (`/a/b/0`, already split and unescaped) from this node.
    pub fn pointer<I, S>(&self, segments: I) -> Option<&Node>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut node = self;
        for seg in segments {
            let seg = seg.as_ref();
            node = match &node.value {
                Value::Object(_) => node.get(seg)?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Converts to a `serde_json::Value` (positions are dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Number(n.clone()),
            Value::String(s) => J::String(s.clone()),
            Value::Array(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Object(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The deepest nesting below this node (a scalar is 0), computed without recursion.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 0usize)];
        while let Some((node, d)) = stack.pop() {
            max = max.max(d);
            match &node.value {
                Value::Array(items) => stack.extend(items.iter().map(|n| (n, d + 1))),
                Value::Object(entries) => stack.extend(entries.iter().map(|e| (&e.value, d + 1))),
                _ => {}
            }
        }
        max
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Appends one escaped JSON-pointer segment (`~` → `~0`, `/` → `~1`) to `ptr`.
pub fn push_segment(ptr: &mut String, seg: &str) {
    ptr.push('/');
    if !seg.bytes().any(|b| b == b'~' || b == b'/') {
        ptr.push_str(seg);
        return;
    }
    for c in seg.chars() {
        match c {
            '~' => ptr.push_str("~0"),
            '/' => ptr.push_str("~1"),
            c => ptr.push(c),
        }
    }
}

/// The lines of a source text as the loaders count them: `\n`, `\r\n` and a lone `\r` each end
/// a line (YAML's line breaks), so line numbers in diagnostics and snippets agree.
pub fn source_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\n', '\r']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                (!s.is_empty()).then_some(s)
            }
        }
    })
}

/// Appends an array index segment to `ptr`.
pub fn push_index(ptr: &mut String, i: usize) {
    use std::fmt::Write as _;
    let _ = write!(ptr, "/{i}");
}

/// Splits a JSON pointer (`/a/b~1c`) into unescaped segments. `""` is the root.
pub fn split_pointer(ptr: &str) -> Vec<String> {
    if ptr.is_empty() {
        return Vec::new();
    }
    ptr.strip_prefix('/')
        .unwrap_or(ptr)
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}
