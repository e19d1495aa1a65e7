//! Rendering diagnostics for people (rustc-like, with a source snippet) and for machines
//! (JSON, SARIF 2.1.0, GitHub Actions workflow commands).

use std::fmt::Write as _;

use crate::diag::{Diagnostic, Severity, CATALOGUE};
use crate::load::Sources;

/// An output format of `gwgen check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// rustc-like text with snippets.
    Human,
    /// A JSON array of `{severity, code, message, file, line, column, pointer, hint}`.
    Json,
    /// SARIF 2.1.0.
    Sarif,
    /// GitHub Actions `::error file=…,line=…,col=…::` lines.
    Github,
}

/// Renders `diags` in `format`. `sources` provide the snippets of the human format.
pub fn render(diags: &[Diagnostic], sources: &[&Sources], format: Format) -> String {
    match format {
        Format::Human => human(diags, sources),
        Format::Json => json(diags),
        Format::Sarif => sarif(diags),
        Format::Github => github(diags),
    }
}

/// Finds the source line of each diagnostic. Diagnostics come sorted by file and position, so
/// the cursor moves forward through each file once: rendering costs one pass over the files
/// that have diagnostics, not one pass per diagnostic.
struct LineCursor<'a> {
    sources: &'a [&'a Sources],
    file: Option<&'a std::path::Path>,
    lines: Box<dyn Iterator<Item = &'a str> + 'a>,
    /// The 1-based number of the line `lines` yields next.
    next: usize,
    last: Option<(usize, &'a str)>,
}

impl<'a> LineCursor<'a> {
    fn new(sources: &'a [&'a Sources]) -> Self {
        LineCursor {
            sources,
            file: None,
            lines: Box::new(std::iter::empty()),
            next: 1,
            last: None,
        }
    }

    fn line(&mut self, d: &Diagnostic) -> Option<&'a str> {
        let want = d.pos.line as usize;
        if want == 0 {
            return None;
        }
        if let Some((n, text)) = self.last {
            if n == want && self.file == Some(d.file.as_path()) {
                return Some(text);
            }
        }
        if self.file != Some(d.file.as_path()) || want < self.next {
            let file = self
                .sources
                .iter()
                .flat_map(|s| s.files.iter())
                .find(|f| f.path == d.file)?;
            self.file = Some(file.path.as_path());
            self.lines = Box::new(crate::load::node::source_lines(&file.text));
            self.next = 1;
            self.last = None;
        }
        let text = self.lines.nth(want - self.next)?;
        self.next = want + 1;
        self.last = Some((want, text));
        Some(text)
    }
}

fn human(diags: &[Diagnostic], sources: &[&Sources]) -> String {
    let mut out = String::new();
    let mut cursor = LineCursor::new(sources);
    for d in diags {
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            d.severity.as_str(),
            d.code.as_str(),
            d.message
        );
        let _ = writeln!(
            out,
            "  --> {}:{}:{}",
            d.file.display(),
            d.pos.line,
            d.pos.col
        );
        if let Some(line) = cursor.line(d) {
            let num = d.pos.line.to_string();
            let pad = " ".repeat(num.len());
            // Long lines (minified JSON) are cut around the column.
            // Up to 60 characters either side of the column are shown; one more tells whether
            // the line goes on.
            let chars: Vec<char> = line
                .chars()
                .take((d.pos.col as usize).saturating_add(61))
                .collect();
            let col = (d.pos.col as usize).saturating_sub(1).min(chars.len());
            let start = col.saturating_sub(60);
            let end = (col + 60).min(chars.len());
            let shown: String = chars[start..end]
                .iter()
                .map(|c| if c.is_control() { ' ' } else { *c })
                .collect();
            let prefix = if start > 0 { "…" } else { "" };
            let _ = writeln!(out, " {pad} |");
            let _ = writeln!(
                out,
                " {num} | {prefix}{shown}{}",
                if end < chars.len() { "…" } else { "" }
            );
            let caret_at = col - start + prefix.chars().count();
            let _ = writeln!(out, " {pad} | {}^", " ".repeat(caret_at));
        }
        if !d.pointer.is_empty() {
            let _ = writeln!(out, "  = at: {}", d.pointer);
        }
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "  = help: {h}");
        }
        out.push('\n');
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    if !diags.is_empty() {
        let _ = writeln!(
            out,
            "{errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    out
}

fn record(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "severity": d.severity,
        "code": d.code.as_str(),
        "message": d.message,
        "file": d.file.display().to_string(),
        "line": d.pos.line,
        "column": d.pos.col,
        "pointer": d.pointer,
        "hint": d.hint,
    })
}

fn json(diags: &[Diagnostic]) -> String {
    let all: Vec<_> = diags.iter().map(record).collect();
    let mut s = serde_json::to_string_pretty(&all).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

fn sarif(diags: &[Diagnostic]) -> String {
    let rules: Vec<_> = CATALOGUE
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.code,
                "name": c.title,
                "shortDescription": { "text": c.title },
                "fullDescription": { "text": c.help },
                "defaultConfiguration": { "level": c.severity.as_str() },
                "helpUri": format!("https://github.com/gwgen/gwgen/blob/main/docs/diagnostics.md#{}", c.code.to_lowercase()),
            })
        })
        .collect();
    let results: Vec<_> = diags
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if let Some(h) = &d.hint {
                text.push_str(" (");
                text.push_str(h);
                text.push(')');
            }
            serde_json::json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": CATALOGUE.iter().position(|c| c.code == d.code.as_str()),
                "level": d.severity.as_str(),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": d.file.display().to_string().replace('\\', "/") },
                        "region": { "startLine": d.pos.line.max(1), "startColumn": d.pos.col.max(1) }
                    },
                    "logicalLocations": [{ "fullyQualifiedName": d.pointer, "kind": "member" }]
                }]
            })
        })
        .collect();
    let doc = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "gwgen",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/gwgen/gwgen",
                "rules": rules,
            }},
            "results": results,
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// Escapes per the GitHub Actions workflow-command rules.
fn gh_escape(s: &str, property: bool) -> String {
    let mut out = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

fn github(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut msg = d.message.clone();
        if let Some(h) = &d.hint {
            msg.push_str(" (");
            msg.push_str(h);
            msg.push(')');
        }
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},title={}::{}",
            gh_escape(&d.file.display().to_string(), true),
            d.pos.line,
            d.pos.col,
            gh_escape(d.code.as_str(), true),
            gh_escape(&msg, false)
        );
    }
    out
}

/// The catalogue of codes as Markdown (the body of `docs/diagnostics.md`).
pub fn catalogue_markdown() -> String {
    let mut out = String::from("# Diagnostic codes\n\n<!-- Generated from codegen/src/diag.rs by `gwgen explain --all`; a test keeps it in step. -->\n\nEvery problem `gwgen check` reports has a stable code. Errors make `gwgen check` exit 1 (the\ngateway would be wrong or could not be built); warnings do not, unless `--deny-warnings` is given.\n\n| code | severity | title |\n|---|---|---|\n");
    for c in CATALOGUE {
        let _ = writeln!(
            out,
            "| [{}](#{}) | {} | {} |",
            c.code,
            c.code.to_lowercase(),
            c.severity.as_str(),
            c.title
        );
    }
    for c in CATALOGUE {
        let _ = write!(
            out,
            "\n## {}\n\n**{}** ({})\n\n{}\n",
            c.code,
            c.title,
            c.severity.as_str(),
            c.help
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escaping() {
        assert_eq!(gh_escape("50% a\r\nb", false), "50%25 a%0D%0Ab");
        assert_eq!(gh_escape("a:b,c", true), "a%3Ab%2Cc");
    }
}
