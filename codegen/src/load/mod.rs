//! Loading: spec files into positioned trees, external `$ref`s followed, references resolved.
//!
//! This module owns reading files and resolving references. It knows nothing of OpenAPI beyond
//! where `$ref` may not stand (inside example data), and it never fails outright: problems become
//! diagnostics and the caller decides what to do.

pub mod json;
pub mod node;
pub mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use crate::diag::{Code, Diagnostics};
use node::{split_pointer, Node, Pos, Value};

/// Documents nested deeper than this are refused (the loaders stay iterative or bounded below it).
pub const MAX_DEPTH: usize = 1000;

/// The index of a loaded file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub usize);

/// One loaded file.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as shown in diagnostics.
    pub path: PathBuf,
    /// The path used to read it (canonical where possible), for de-duplication.
    pub real_path: PathBuf,
    /// The text.
    pub text: String,
    /// The parsed tree (`null` when it did not parse).
    pub root: Node,
    /// Whether `root` was rewritten after parsing (a Swagger 2.0 document converted, API
    /// Gateway extensions lowered), so that it no longer spells `text`.
    pub rewritten: bool,
}

/// Every file of a spec: the root first, then the files its references reach.
#[derive(Debug, Default)]
pub struct Sources {
    /// The files, indexed by [`FileId`].
    pub files: Vec<SourceFile>,
    by_real_path: HashMap<PathBuf, FileId>,
    /// Absolute `$id`s of schemas, to resolve references by id.
    ids: HashMap<String, (FileId, String)>,
}

/// Where a reference leads.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The file.
    pub file: FileId,
    /// The node.
    pub node: &'a Node,
    /// Its JSON pointer in `file`, when a reference was followed to reach it (and the reference
    /// used a pointer); `None` for the node the caller started from.
    pub pointer: Option<String>,
}

/// Why a reference could not be followed.
#[derive(Debug, Clone, PartialEq)]
pub enum RefError {
    /// It points at nothing; the string says why.
    Unresolved(String),
    /// It points at another host; gwgen does not fetch.
    Remote(String),
    /// A chain of bare references loops.
    Cycle(Vec<String>),
}

/// Keys under which a mapping holds example data, where `$ref` is not a reference.
fn is_data_key(key: &str) -> bool {
    matches!(
        key,
        "example" | "examples" | "const" | "enum" | "default" | "value"
    )
}

impl Sources {
    /// Loads `path` and, transitively, every file its `$ref`s name. Problems go to `diags`.
    pub fn load(path: &Path, diags: &mut Diagnostics) -> Sources {
        let mut sources = Sources::default();
        let mut queue = vec![(path.to_path_buf(), None::<(FileId, Pos, String)>)];
        while let Some((p, referrer)) = queue.pop() {
            let real = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if sources.by_real_path.contains_key(&real) {
                continue;
            }
            let text = match std::fs::read(&p) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(_) => {
                        let (file, pos, ptr) = referrer
                            .as_ref()
                            .map(|(f, pos, ptr)| {
                                (sources.files[f.0].path.clone(), *pos, ptr.clone())
                            })
                            .unwrap_or((p.clone(), Pos::default(), String::new()));
                        diags.report(
                            Code::Syntax,
                            &file,
                            pos,
                            &ptr,
                            format!("`{}` is not UTF-8 text", p.display()),
                            None,
                        );
                        continue;
                    }
                },
                Err(e) => {
                    // A referenced file that cannot be read is reported where it is referenced,
                    // by the check that resolves the reference.
                    if referrer.is_none() {
                        diags.report(
                            Code::Io,
                            &p,
                            Pos::default(),
                            "",
                            format!("cannot read `{}`: {e}", p.display()),
                            None,
                        );
                    }
                    continue;
                }
            };
            let id = FileId(sources.files.len());
            let mut root = parse_text(&p, &text, diags);
            absolutize(&mut root, None);
            sources.by_real_path.insert(real.clone(), id);
            sources.files.push(SourceFile {
                path: p.clone(),
                real_path: real,
                text,
                root,
                rewritten: false,
            });
            // Find the files this one references, and the `$id`s it declares.
            let mut refs = Vec::new();
            let mut ids = Vec::new();
            collect_refs(
                &sources.files[id.0].root,
                &mut String::new(),
                &mut refs,
                &mut ids,
            );
            for (uri, ptr) in ids {
                sources.ids.entry(uri).or_insert((id, ptr));
            }
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            for (target, pos, ptr) in refs {
                let file_part = target.split('#').next().unwrap_or("");
                if file_part.is_empty() || is_remote(file_part) {
                    continue;
                }
                let next = normalize(&dir.join(percent_decode(file_part)));
                queue.push((next, Some((id, pos, ptr))));
            }
        }
        sources
    }

    /// Builds sources from in-memory text (for tests and build scripts that already hold it).
    pub fn from_text(path: &Path, text: String, diags: &mut Diagnostics) -> Sources {
        let mut root = parse_text(path, &text, diags);
        absolutize(&mut root, None);
        let mut sources = Sources::default();
        sources.by_real_path.insert(path.to_path_buf(), FileId(0));
        let mut ids = Vec::new();
        collect_refs(&root, &mut String::new(), &mut Vec::new(), &mut ids);
        for (uri, ptr) in ids {
            sources.ids.entry(uri).or_insert((FileId(0), ptr));
        }
        sources.files.push(SourceFile {
            path: path.to_path_buf(),
            real_path: path.to_path_buf(),
            text,
            root,
            rewritten: false,
        });
        sources
    }

    /// Schema resources declared by an absolute `$id` inside a document (not at its root): their
    /// URI, file and JSON pointer.
    pub fn embedded_ids(&self) -> Vec<(&str, (FileId, &str))> {
        let mut ids: Vec<_> = self
            .ids
            .iter()
            .filter(|(_, (_, ptr))| !ptr.is_empty())
            .map(|(uri, (file, ptr))| (uri.as_str(), (*file, ptr.as_str())))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The root file's tree.
    pub fn root(&self) -> &Node {
        &self.files[0].root
    }

    /// A file.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    /// Follows one reference written in file `from`.
    pub fn resolve(&self, from: FileId, reference: &str) -> Result<Target<'_>, RefError> {
        let (file_part, fragment) = match reference.split_once('#') {
            Some((f, frag)) => (f, frag),
            None => (reference, ""),
        };
        let (file, fragment) = if let Some((id, ptr)) = self.ids.get(file_part) {
            // A reference by `$id`: the fragment is relative to that schema.
            if fragment.is_empty() || fragment.starts_with('/') {
                let node = self.files[id.0]
                    .root
                    .pointer(split_pointer(ptr))
                    .ok_or_else(|| {
                        RefError::Unresolved(format!("`{reference}` points at nothing"))
                    })?;
                let fragment = percent_decode(fragment);
                let node = node.pointer(split_pointer(&fragment)).ok_or_else(|| {
                    RefError::Unresolved(format!("`{reference}` points at nothing"))
                })?;
                return Ok(Target {
                    file: *id,
                    node,
                    pointer: Some(format!("{ptr}{fragment}")),
                });
            }
            (*id, fragment.to_string())
        } else if file_part.is_empty() {
            (from, fragment.to_string())
        } else if is_remote(file_part) {
            return Err(RefError::Remote(format!(
                "`{reference}` is a remote reference; gwgen does not fetch over the network"
            )));
        } else {
            let dir = self.files[from.0]
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let path = normalize(&dir.join(percent_decode(file_part)));
            let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
            match self.by_real_path.get(&real) {
                Some(id) => (*id, fragment.to_string()),
                None => {
                    return Err(RefError::Unresolved(format!(
                        "`{reference}`: file `{}` could not be loaded",
                        path.display()
                    )))
                }
            }
        };
        let root = &self.files[file.0].root;
        let fragment = percent_decode(&fragment);
        let node = if fragment.is_empty() {
            Some(root)
        } else if fragment.starts_with('/') {
            root.pointer(split_pointer(&fragment))
        } else {
            find_anchor(root, &fragment)
        };
        let pointer = (fragment.is_empty() || fragment.starts_with('/')).then(|| fragment.clone());
        match node {
            Some(node) => Ok(Target {
                file,
                node,
                pointer,
            }),
            None => Err(RefError::Unresolved(format!(
                "`{reference}` points at nothing"
            ))),
        }
    }

    /// Follows `node` through any chain of bare references (`{$ref: …}` objects) to the node that
    /// defines something. `strict_alias` treats a `$ref` with siblings as a reference too (OpenAPI
    /// 3.0 semantics, and Reference Objects everywhere); otherwise such a node is a definition.
    pub fn deref<'a>(&'a self, file: FileId, node: &'a Node) -> Result<Target<'a>, RefError> {
        let mut current = Target {
            file,
            node,
            pointer: None,
        };
        let mut seen: HashSet<(FileId, *const Node)> = HashSet::new();
        let mut chain = Vec::new();
        while let Some(reference) = current.node.get("$ref").and_then(Node::as_str) {
            if !seen.insert((current.file, current.node as *const Node)) {
                chain.push(reference.to_string());
                return Err(RefError::Cycle(chain));
            }
            chain.push(reference.to_string());
            current = self.resolve(current.file, reference)?;
        }
        Ok(current)
    }
}

fn parse_text(path: &Path, text: &str, diags: &mut Diagnostics) -> Node {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{');
    let result = if is_json {
        json::parse(text, MAX_DEPTH)
    } else {
        yaml::parse(text, MAX_DEPTH).map(|(node, warnings)| {
            for w in warnings {
                diags.report(Code::YamlNotice, path, w.pos, "", w.message, None);
            }
            node
        })
    };
    match result {
        Ok(node) => node,
        Err(e) => {
            diags.report(Code::Syntax, path, e.pos, "", e.message, None);
            Node::new(Value::Null, Pos::default())
        }
    }
}

/// Makes every `$ref` inside a schema resource (an object with an absolute `$id`) absolute
/// against that `$id`, as JSON Schema 2020-12 resolves it: in
/// `{"$id": "https://schemas.example/tree", "$ref": "#/$defs/node"}` the reference means
/// `https://schemas.example/tree#/$defs/node`, not the document's own `#/$defs/node`. The `$id`
/// is registered when the file is loaded, so the absolute form resolves to the right node.
fn absolutize(node: &mut Node, base: Option<&str>) {
    match &mut node.value {
        Value::Object(entries) => {
            let own = entries
                .iter()
                .find_map(|e| match (&*e.key, &e.value.value) {
                    ("$id", Value::String(s)) if s.contains(':') => {
                        Some(s.trim_end_matches('#').to_string())
                    }
                    ("$id", Value::String(s)) => base.map(|b| join(b, s.trim_end_matches('#'))),
                    _ => None,
                });
            let base = own.as_deref().or(base);
            for e in entries.iter_mut() {
                match (e.key.as_str(), &mut e.value.value) {
                    ("$ref" | "$dynamicRef", Value::String(r)) => {
                        if let Some(b) = base {
                            if !r.contains(':') {
                                *r = join(b, r);
                            }
                        }
                    }
                    ("example" | "examples" | "const" | "enum" | "default", _) => {}
                    _ => absolutize(&mut e.value, base),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                absolutize(item, base);
            }
        }
        _ => {}
    }
}

/// `reference` resolved against the absolute URI `base` (RFC 3986 §5.2, for the forms schemas
/// use: a fragment, an absolute path, or a relative path).
fn join(base: &str, reference: &str) -> String {
    let base = base.split('#').next().unwrap_or(base);
    if reference.is_empty() {
        return base.to_string();
    }
    if reference.starts_with('#') {
        return format!("{base}{reference}");
    }
    // The scheme and authority, then the path.
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    if reference.starts_with('/') {
        return format!("{}{reference}", &base[..path_start]);
    }
    let dir_end = base
        .rfind('/')
        .filter(|i| *i >= path_start)
        .map_or(base.len(), |i| i + 1);
    let dir = &base[..dir_end];
    if dir.ends_with('/') {
        format!("{dir}{reference}")
    } else {
        format!("{dir}/{reference}")
    }
}

/// Collects `$ref` strings (with position and pointer) and absolute `$id`s, skipping example data.
fn collect_refs(
    node: &Node,
    ptr: &mut String,
    refs: &mut Vec<(String, Pos, String)>,
    ids: &mut Vec<(String, String)>,
) {
    match &node.value {
        Value::Object(entries) => {
            for e in entries {
                let len = ptr.len();
                node::push_segment(ptr, &e.key);
                match (e.key.as_str(), &e.value.value) {
                    ("$ref", Value::String(s)) => refs.push((s.clone(), e.value.pos, ptr.clone())),
                    ("$id", Value::String(s)) if s.contains(':') => {
                        ids.push((s.trim_end_matches('#').to_string(), ptr[..len].to_string()))
                    }
                    (k, _) if is_data_key(k) => {}
                    _ => collect_refs(&e.value, ptr, refs, ids),
                }
                ptr.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = ptr.len();
                node::push_index(ptr, i);
                collect_refs(item, ptr, refs, ids);
                ptr.truncate(len);
            }
        }
        _ => {}
    }
}

fn find_anchor<'a>(root: &'a Node, name: &str) -> Option<&'a Node> {
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.get("$anchor").and_then(Node::as_str) == Some(name) {
            return Some(n);
        }
        match &n.value {
            Value::Object(entries) => stack.extend(entries.iter().map(|e| &e.value)),
            Value::Array(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    None
}

fn is_remote(s: &str) -> bool {
    let scheme = s.split(':').next().unwrap_or("");
    s.contains(':')
        && !scheme.is_empty()
        && scheme.len() > 1
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
}

/// Decodes `%XX` escapes (references are URIs).
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes `.` and `..` lexically, so the same file reached two ways is shown one way.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}
