//! API Gateway mapping templates (Velocity, VTL) compiled to the gateway's JSON templates.
//!
//! The references that carry data are translated: `$input.params('x')` and
//! `$input.params().path.x`, `$input.json('$.a.b')`, `$input.path('$.a')`, `$input.body`,
//! `$context.…`, `$stageVariables.…`, and `$util.escapeJavaScript`/`urlEncode`/`base64Encode`
//! around them. A reference inside a JSON string becomes text in that string (escaped as JSON
//! when rendered); one outside a string inserts the value as JSON.
//!
//! A template without blocks becomes a JSON template. One with `#if`/`#elseif`/`#else`/`#end`
//! or `#foreach` becomes a text template, with `{% if %}` and `{% for %}` blocks; `#set` of a
//! place in the body names it, and comments are dropped. Anything else of Velocity (other
//! directives, `#set` of other values, variables of the template's own, comparisons of order,
//! method calls) is refused with its line: a template is carried over exactly or not at all.

/// Where each declared parameter of the operation is, for `$input.params('name')`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Places {
    /// Path parameters (the path template's names).
    pub path: Vec<String>,
    /// Declared query parameters.
    pub query: Vec<String>,
    /// Declared header parameters.
    pub header: Vec<String>,
    /// What `$input.json`, `$input.path` and `$input.body` read: `request.body` in a request
    /// template, `response.body` (the integration's answer) in a response template; `None`
    /// where there is no body to read (a mock's answer), and they are refused.
    pub body: Option<&'static str>,
    /// Variables a template set to a place in the body (`#set($root = $input.path('$'))`):
    /// name, and the expression of that place. A `#foreach` variable names itself.
    pub aliases: Vec<(String, String)>,
    /// How many `#foreach` blocks the text is inside (`$foreach.…` is read in one only).
    pub loops: usize,
}

impl Places {
    /// The template name of `$input.params('name')`. API Gateway looks in the path, the query
    /// string and the headers in turn; a gateway template reads one place, so it is the path
    /// when the template has the name, else a header the operation declares, else the query
    /// string (declared or not).
    fn lookup(&self, name: &str) -> String {
        if self.path.iter().any(|p| p == name) {
            format!("request.path.{name}")
        } else if self.header.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            format!("request.header.{name}")
        } else {
            format!("request.query.{name}")
        }
    }
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Compiled {
    /// JSON whose strings are gateway templates.
    Json(serde_json::Value),
    /// Text without references, kept as written.
    Text(String),
    /// A gateway text template (`body.text`), for a template with `#if` or `#foreach`.
    Template(String),
}

/// Why a template cannot be carried over: the line within the template, and the reason.
pub(crate) type Refusal = (usize, String);

/// A block of Velocity the text is inside.
enum Block {
    If,
    Foreach,
}

/// Compiles the template `text`.
pub(crate) fn compile(text: &str, places: &Places) -> Result<Compiled, Refusal> {
    let mut places = places.clone();
    let places = &mut places;
    let chars: Vec<char> = text.chars().collect();
    // Both forms are written as the text is read: a JSON template (references quoted as
    // strings), and a gateway text template (used when the template has blocks).
    let mut out = String::with_capacity(text.len() + 16);
    let mut tpl = String::with_capacity(text.len() + 16);
    let mut blocks: Vec<Block> = Vec::new();
    let mut had_blocks = false;
    let mut in_string = false;
    let mut line = 1;
    let mut refs = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                out.push(c);
                tpl.push(c);
                i += 1;
            }
            '\\' if in_string => {
                out.push(c);
                tpl.push(c);
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                    tpl.push(n);
                }
                i += 2;
            }
            '"' => {
                in_string = !in_string;
                out.push(c);
                tpl.push(c);
                i += 1;
            }
            '#' if chars.get(i + 1) == Some(&'#') => {
                // A line comment: up to the end of the line.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '#' if chars.get(i + 1) == Some(&'*') => {
                // A block comment: its lines are kept, so lines still count as written.
                let Some(end) = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '#')
                else {
                    return Err((line, "a `#*` comment is not closed by `*#`".into()));
                };
                for _ in chars[i..end].iter().filter(|c| **c == '\n') {
                    line += 1;
                    out.push('\n');
                    tpl.push('\n');
                }
                i = end + 2;
            }
            '#' if chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '{') =>
            {
                let braced = chars[i + 1] == '{';
                let from = i + 1 + usize::from(braced);
                let word: String = chars[from..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                let mut next = from + word.len();
                if braced {
                    if chars.get(next) != Some(&'}') {
                        return Err((line, "a `#{…}` directive is not closed".into()));
                    }
                    next += 1;
                }
                match word.as_str() {
                    // `#set($name = $input.path('…'))` names a place in the body.
                    "set" if !in_string => match set_alias(&chars, next, places) {
                        Some(after) => i = after,
                        None => {
                            return Err((
                                line,
                                "`#set` is carried over only to name a place in the body (`#set($root = $input.path('$'))`)".into(),
                            ))
                        }
                    },
                    "if" | "elseif" => {
                        if word == "elseif" && !matches!(blocks.last(), Some(Block::If)) {
                            return Err((line, "`#elseif` outside `#if`".into()));
                        }
                        let (cond, after) = condition(&chars, next, places).map_err(|m| (line, m))?;
                        if word == "if" {
                            blocks.push(Block::If);
                            tpl.push_str(&format!("{{% if {cond} %}}"));
                        } else {
                            tpl.push_str(&format!("{{% elif {cond} %}}"));
                        }
                        had_blocks = true;
                        i = after;
                    }
                    "else" => {
                        if !matches!(blocks.last(), Some(Block::If)) {
                            return Err((line, "`#else` outside `#if`".into()));
                        }
                        tpl.push_str("{% else %}");
                        i = next;
                    }
                    "end" => {
                        match blocks.pop() {
                            Some(Block::Foreach) => {
                                places.loops -= 1;
                                places.aliases.pop();
                            }
                            Some(Block::If) => {}
                            None => return Err((line, "`#end` closes no block".into())),
                        }
                        tpl.push_str("{% end %}");
                        i = next;
                    }
                    "foreach" => {
                        let (name, list, after) =
                            foreach_head(&chars, next, places).map_err(|m| (line, m))?;
                        tpl.push_str(&format!("{{% for {name} in {list} %}}"));
                        places.aliases.push((name.clone(), name));
                        places.loops += 1;
                        blocks.push(Block::Foreach);
                        had_blocks = true;
                        i = after;
                    }
                    "include" | "parse" | "stop" | "break" | "define" | "macro" | "evaluate"
                    | "set" => {
                        return Err((
                            line,
                            format!("the Velocity directive `#{word}` is not carried over"),
                        ))
                    }
                    // Not a directive (`"#fff"`): Velocity writes it as it is.
                    _ => {
                        out.push(c);
                        tpl.push(c);
                        i += 1;
                    }
                }
            }
            '$' if starts_reference(&chars, i) => {
                let (expr, next) = reference(&chars, i, places).map_err(|m| (line, m))?;
                refs += 1;
                if in_string {
                    // Inside a string, Velocity renders text: a missing value is empty and a
                    // number stays in the string.
                    out.push_str(&format!("{{{{ {expr} | text }}}}"));
                } else {
                    out.push_str(&format!("\"{{{{ {expr} }}}}\""));
                }
                tpl.push_str(&format!("{{{{ {expr} }}}}"));
                i = next;
            }
            '{' if matches!(chars.get(i + 1), Some('{' | '%')) => {
                return Err((
                    line,
                    format!("`{{{}` would be read as a gateway template", chars[i + 1]),
                ));
            }
            _ => {
                out.push(c);
                tpl.push(c);
                i += 1;
            }
        }
    }
    if !blocks.is_empty() {
        return Err((line, "a `#if` or `#foreach` is not closed by `#end`".into()));
    }
    if had_blocks {
        return match crate::transform::text_template(&tpl) {
            Ok(_) => Ok(Compiled::Template(tpl)),
            Err(e) => Err((
                tpl[..e.offset.min(tpl.len())].matches('\n').count() + 1,
                e.message,
            )),
        };
    }
    if text.trim().is_empty() {
        return Ok(Compiled::Text(String::new()));
    }
    match serde_json::from_str::<serde_json::Value>(&out) {
        Ok(v) => Ok(Compiled::Json(v)),
        Err(_) if refs == 0 => Ok(Compiled::Text(text.to_string())),
        Err(e) => Err((
            e.line(),
            "the template is not JSON once its references are placed".into(),
        )),
    }
}

/// Reads `($name in REFERENCE)` from `chars[j]` (after `#foreach`): the name, the list's
/// expression, and where the text goes on.
fn foreach_head(
    chars: &[char],
    mut j: usize,
    places: &Places,
) -> Result<(String, String, usize), String> {
    let bad = || "expected `#foreach($name in $list)`".to_string();
    let skip = |j: &mut usize| {
        while chars.get(*j).is_some_and(|c| c.is_whitespace()) {
            *j += 1;
        }
    };
    let (name, after) = open_variable(chars, j).ok_or_else(bad)?;
    j = after;
    if chars.get(j) != Some(&'i') || chars.get(j + 1) != Some(&'n') {
        return Err(bad());
    }
    j += 2;
    skip(&mut j);
    if chars.get(j) != Some(&'$') {
        return Err(bad());
    }
    let (list, next) = reference(chars, j, places)?;
    j = next;
    skip(&mut j);
    if chars.get(j) != Some(&')') {
        return Err(bad());
    }
    if [
        "loop",
        "request",
        "response",
        "context",
        "stageVariables",
        "foreach",
    ]
    .contains(&name.as_str())
    {
        return Err(format!(
            "`${name}` as a loop's variable is not carried over: rename it"
        ));
    }
    if list.contains('|') {
        return Err("a `#foreach` over a function's result is not carried over".into());
    }
    Ok((name, list, j + 1))
}

/// Reads a condition `( … )` from `chars[j]` (after `#if` or `#elseif`): the gateway's
/// condition, and where the text goes on.
fn condition(chars: &[char], mut j: usize, places: &Places) -> Result<(String, usize), String> {
    while chars.get(j).is_some_and(|c| *c == ' ') {
        j += 1;
    }
    if chars.get(j) != Some(&'(') {
        return Err("expected `(` and a condition".into());
    }
    j += 1;
    let mut out = String::new();
    let mut depth = 0;
    loop {
        let Some(&c) = chars.get(j) else {
            return Err("a condition is not closed by `)`".into());
        };
        let two: String = chars[j..(j + 2).min(chars.len())].iter().collect();
        match c {
            ')' if depth == 0 => {
                return Ok((out.split_whitespace().collect::<Vec<_>>().join(" "), j + 1))
            }
            '(' | ')' => {
                depth += if c == '(' { 1 } else { -1 };
                out.push(c);
                j += 1;
            }
            _ if c.is_whitespace() => {
                out.push(' ');
                j += 1;
            }
            _ if two == "&&" || two == "||" => {
                out.push_str(if two == "&&" { " and " } else { " or " });
                j += 2;
            }
            _ if two == "==" || two == "!=" => {
                out.push_str(&format!(" {two} "));
                j += 2;
            }
            '!' => {
                out.push_str(" not ");
                j += 1;
            }
            '>' | '<' => return Err("comparisons of order (`<`, `>`) are not carried over".into()),
            '"' | '\'' => {
                let end = chars[j + 1..]
                    .iter()
                    .position(|x| *x == c)
                    .map(|p| j + 1 + p)
                    .ok_or("a quoted string is not closed")?;
                let inner: String = chars[j + 1..end].iter().collect();
                if inner.contains(['$', '#', '\\', '"', '\'']) {
                    return Err(
                        "a string with references or escapes in a condition is not carried over"
                            .into(),
                    );
                }
                out.push_str(&format!("\"{inner}\""));
                j = end + 1;
            }
            '$' => {
                let (expr, next) = reference(chars, j, places)?;
                if expr.contains('|') {
                    return Err("a function's result in a condition is not carried over".into());
                }
                out.push_str(&format!(" {expr} "));
                j = next;
            }
            _ if c.is_ascii_alphanumeric() || c == '-' || c == '.' => {
                let word: String = chars[j..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '-' || **c == '.')
                    .collect();
                let token = match word.as_str() {
                    "and" | "or" | "not" | "true" | "false" | "null" => word.clone(),
                    "eq" => "==".into(),
                    "ne" => "!=".into(),
                    w if w.parse::<f64>().is_ok() => word.clone(),
                    _ => return Err(format!("`{word}` in a condition is not carried over")),
                };
                out.push_str(&format!(" {token} "));
                j += word.chars().count();
            }
            _ => return Err(format!("`{c}` in a condition is not carried over")),
        }
    }
}

/// Reads `( $name ` from `chars[j]` (after `#set` or `#foreach`): the variable's name, and
/// where the text goes on after it and the blanks that follow.
fn open_variable(chars: &[char], mut j: usize) -> Option<(String, usize)> {
    let skip = |j: &mut usize| {
        while chars.get(*j).is_some_and(|c| c.is_whitespace()) {
            *j += 1;
        }
    };
    skip(&mut j);
    if chars.get(j) != Some(&'(') {
        return None;
    }
    j += 1;
    skip(&mut j);
    if chars.get(j) != Some(&'$') {
        return None;
    }
    let start = j + 1;
    j = start;
    while chars
        .get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
    {
        j += 1;
    }
    let name: String = chars[start..j].iter().collect();
    skip(&mut j);
    (!name.is_empty()).then_some((name, j))
}

/// Reads `($name = REFERENCE)` from `chars[j]` (after `#set`) where the reference is a place in
/// the body, and records the alias; returns where the text goes on.
fn set_alias(chars: &[char], j: usize, places: &mut Places) -> Option<usize> {
    let skip = |j: &mut usize| {
        while chars.get(*j).is_some_and(|c| c.is_whitespace()) {
            *j += 1;
        }
    };
    let (name, mut j) = open_variable(chars, j)?;
    if chars.get(j) != Some(&'=') {
        return None;
    }
    j += 1;
    skip(&mut j);
    let (expr, next) = reference(chars, j, places).ok()?;
    let body = places.body?;
    if !(expr == body || expr.starts_with(&format!("{body}./"))) {
        return None;
    }
    j = next;
    skip(&mut j);
    if chars.get(j) != Some(&')') {
        return None;
    }
    places.aliases.retain(|(n, _)| *n != name);
    places.aliases.push((name, expr));
    Some(j + 1)
}

fn starts_reference(chars: &[char], i: usize) -> bool {
    let mut j = i + 1;
    if chars.get(j) == Some(&'!') {
        j += 1;
    }
    if chars.get(j) == Some(&'{') {
        j += 1;
    }
    chars.get(j).is_some_and(|c| c.is_ascii_alphabetic())
}

/// Reads one reference starting at `chars[i] == '$'`: its template expression, and where the
/// text goes on.
fn reference(chars: &[char], i: usize, places: &Places) -> Result<(String, usize), String> {
    let mut j = i + 1;
    if chars.get(j) == Some(&'!') {
        j += 1;
    }
    let braced = chars.get(j) == Some(&'{');
    if braced {
        j += 1;
    }
    // Segments: names, with an optional call `('arg')` or `()`.
    let mut segs: Vec<(String, Option<Vec<Arg>>)> = Vec::new();
    loop {
        let start = j;
        while chars
            .get(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        {
            j += 1;
        }
        if start == j {
            break;
        }
        // A `-` only continues a name when more of the name follows.
        while j > start && chars[j - 1] == '-' {
            j -= 1;
        }
        let name: String = chars[start..j].iter().collect();
        let mut call = None;
        if chars.get(j) == Some(&'(') {
            let (args, next) = call_args(chars, j + 1, places)?;
            call = Some(args);
            j = next;
        }
        segs.push((name, call));
        if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
            j += 1;
        } else {
            break;
        }
    }
    if braced {
        if chars.get(j) != Some(&'}') {
            return Err("a `${…}` reference is not closed".into());
        }
        j += 1;
    }
    let shown = || {
        segs.iter()
            .map(|(n, c)| {
                if c.is_some() {
                    format!("{n}(…)")
                } else {
                    n.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    };
    let expr = translate(&segs, places)
        .ok_or_else(|| format!("the reference `${}` is not carried over", shown()))?;
    Ok((expr, j))
}

/// An argument of a call: a quoted string, or a nested reference (already translated).
enum Arg {
    Text(String),
    Expr(String),
}

fn call_args(chars: &[char], mut j: usize, places: &Places) -> Result<(Vec<Arg>, usize), String> {
    let mut args = Vec::new();
    loop {
        while chars.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        match chars.get(j) {
            Some(')') => return Ok((args, j + 1)),
            Some(',') => j += 1,
            Some(q @ ('\'' | '"')) => {
                let q = *q;
                let start = j + 1;
                let end = chars[start..]
                    .iter()
                    .position(|c| *c == q)
                    .map(|p| start + p)
                    .ok_or("a quoted argument is not closed")?;
                args.push(Arg::Text(chars[start..end].iter().collect()));
                j = end + 1;
            }
            Some('$') => {
                let (expr, next) = reference(chars, j, places)?;
                args.push(Arg::Expr(expr));
                j = next;
            }
            _ => return Err("a call's argument is neither a quoted string nor a reference".into()),
        }
    }
}

/// `$.a.b[0]` (JSONPath as API Gateway takes it) as a JSON pointer (`/a/b/0`).
fn json_pointer(path: &str) -> Option<String> {
    let rest = path.trim().strip_prefix('$')?;
    let mut out = String::new();
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    let flush = |name: &mut String, out: &mut String| {
        if !name.is_empty() {
            out.push('/');
            out.push_str(&name.replace('~', "~0").replace('/', "~1"));
            name.clear();
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut name, &mut out),
            '[' => {
                flush(&mut name, &mut out);
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                let inner = inner.trim_matches(['\'', '"']);
                if inner.is_empty() || inner.contains('*') {
                    return None;
                }
                name.push_str(inner);
                flush(&mut name, &mut out);
            }
            '*' | '?' | '@' | '(' => return None,
            _ => name.push(c),
        }
    }
    flush(&mut name, &mut out);
    Some(out)
}

fn text_arg(call: &Option<Vec<Arg>>) -> Option<&str> {
    match call.as_deref() {
        Some([Arg::Text(t)]) => Some(t),
        _ => None,
    }
}

/// The gateway template expression of a reference.
fn translate(segs: &[(String, Option<Vec<Arg>>)], places: &Places) -> Option<String> {
    let names: Vec<&str> = segs.iter().map(|(n, _)| n.as_str()).collect();
    match names.as_slice() {
        ["input", "params"] => {
            let name = text_arg(&segs[1].1)?;
            Some(places.lookup(name))
        }
        ["input", "params", place, name] if matches!(segs[1].1.as_deref(), Some([])) => {
            let place = match *place {
                "path" => "path",
                "querystring" => "query",
                "header" => "header",
                _ => return None,
            };
            Some(format!("request.{place}.{name}"))
        }
        // `$input.json` (JSON text) and `$input.path` (the value): the gateway's templates
        // insert a value as JSON outside strings and as text inside them, as Velocity does.
        ["input", "json" | "path"] => {
            let body = places.body?;
            let pointer = json_pointer(text_arg(&segs[1].1)?)?;
            Some(if pointer.is_empty() {
                body.to_string()
            } else {
                format!("{body}.{pointer}")
            })
        }
        ["input", "body"] if segs[1].1.is_none() => places.body.map(str::to_string),
        ["stageVariables", name] if segs[1].1.is_none() => Some(format!("stageVariables.{name}")),
        // Where the innermost `#foreach` is.
        ["foreach", field] if places.loops > 0 && segs[1].1.is_none() => Some(
            match *field {
                "hasNext" => "(not loop.last)",
                "count" => "loop.index",
                "index" => "loop.index0",
                "first" => "loop.first",
                "last" => "loop.last",
                _ => return None,
            }
            .to_string(),
        ),
        ["velocityCount"] if places.loops > 0 => Some("loop.index".into()),
        ["velocityHasNext"] if places.loops > 0 => Some("(not loop.last)".into()),
        ["context", rest @ ..] if segs.iter().all(|(_, c)| c.is_none()) => {
            let expr = match rest {
                [one @ ("requestId" | "stage" | "httpMethod" | "resourcePath" | "path")] => {
                    format!("context.{one}")
                }
                ["identity", f @ ("sourceIp" | "apiKeyId")] => format!("context.identity.{f}"),
                ["authorizer", "claims", name] => format!("context.authorizer.claims.{name}"),
                ["authorizer", "principalId"] => "context.authorizer.principalId".into(),
                ["authorizer", name] => format!("context.authorizer.context.{name}"),
                _ => return None,
            };
            Some(expr)
        }
        ["util", f] => {
            let inner = match segs[1].1.as_deref() {
                Some([Arg::Expr(e)]) => e.clone(),
                _ => return None,
            };
            let filter = match *f {
                // Values are escaped as JSON wherever they land, which is what
                // `escapeJavaScript` is used for inside a JSON string.
                "escapeJavaScript" => return Some(inner),
                "urlEncode" => "url-encode",
                "base64Encode" => "base64",
                _ => return None,
            };
            Some(format!("{inner} | {filter}"))
        }
        [alias, rest @ ..] => {
            // A variable `#set` to a place in the body, and members below it.
            let (_, base) = places.aliases.iter().find(|(n, _)| n == alias)?;
            if segs.iter().any(|(_, call)| call.is_some()) {
                return None;
            }
            let mut expr = base.clone();
            if !rest.is_empty() && !expr.contains("./") {
                expr.push('.');
            }
            for name in rest {
                expr.push('/');
                expr.push_str(&name.replace('~', "~0").replace('/', "~1"));
            }
            Some(expr)
        }
        [] => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn places() -> Places {
        Places {
            path: vec!["data".into()],
            query: vec!["q".into()],
            header: vec!["h1".into()],
            body: Some("request.body"),
            aliases: Vec::new(),
            loops: 0,
        }
    }

    #[test]
    fn blocks_become_a_text_template() {
        let answer = Places {
            body: Some("response.body"),
            ..places()
        };
        // The DynamoDB scan mapping of AWS's tutorials.
        let c = compile(
            "#set($inputRoot = $input.path('$'))\n{\n  \"pets\": [\n#foreach($elem in $inputRoot.Items) ## each pet\n    {\"id\": \"$elem.id.S\", \"n\": $foreach.count}#if($foreach.hasNext),#end\n#end\n  ]\n#if($input.params('q') == \"x\" && !$context.stage)\n  , \"q\": \"$input.params('q')\"\n#elseif($input.params('q') != '')#else #end\n}",
            &answer,
        )
        .unwrap();
        let Compiled::Template(t) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            t,
            "\n{\n  \"pets\": [\n{% for elem in response.body./Items %} \n    {\"id\": \"{{ elem./id/S }}\", \"n\": {{ loop.index }}}{% if (not loop.last) %},{% end %}\n{% end %}\n  ]\n{% if request.query.q == \"x\" and not context.stage %}\n  , \"q\": \"{{ request.query.q }}\"\n{% elif request.query.q != \"\" %}{% else %} {% end %}\n}"
        );
        assert!(crate::transform::text_template(&t).is_ok());
        // Lines still count as written, and what is not carried over is refused at its line.
        for (text, line, needle) in [
            ("{\n#if($input.params('q') > 1)1#end}", 2, "order"),
            (
                "{\n\n#foreach($x in $input.path('$.a'))\n$x.size()#end}",
                4,
                "not carried over",
            ),
            (
                "[#foreach($x in $input.path('$.a'))]",
                1,
                "not closed by `#end`",
            ),
            ("#end", 1, "closes no block"),
            ("#else", 1, "outside `#if`"),
            ("#*\n\n*#\n#macro(a)#end", 4, "#macro"),
            ("\"$foreach.count\"", 1, "not carried over"),
            (
                "[#foreach($x in $input.path('$.a'))\"$x#end]",
                1,
                "does not end where it began",
            ),
            ("#if($input.params('q'))\"#end", 1, "different places"),
            ("#if($input.params('q') == \"$x\")#end", 1, "references"),
        ] {
            let (l, why) = compile(text, &answer).expect_err(text);
            assert!(why.contains(needle), "{text}: {why}");
            assert_eq!(l, line, "{text}: {why}");
        }
        // `#` that starts no directive is text, as Velocity writes it.
        assert_eq!(
            compile("{\"c\": \"#fff\"}", &answer).unwrap(),
            Compiled::Json(json!({"c": "#fff"}))
        );
    }

    #[test]
    fn references_become_templates() {
        let c = compile(
            r#"{"echo": "$input.params('data')", "q": "$util.escapeJavaScript($input.params('q'))", "m": $input.json('$.message'), "id": "$context.requestId"}"#,
            &places(),
        )
        .unwrap();
        assert_eq!(
            c,
            Compiled::Json(json!({
                "echo": "{{ request.path.data | text }}",
                "q": "{{ request.query.q | text }}",
                "m": "{{ request.body./message }}",
                "id": "{{ context.requestId | text }}",
            }))
        );
        let c = compile(
            r#"{"k": "$input.params().header.h1", "b": "${stageVariables.x}"}"#,
            &places(),
        )
        .unwrap();
        assert_eq!(
            c,
            Compiled::Json(
                json!({"k": "{{ request.header.h1 | text }}", "b": "{{ stageVariables.x | text }}"})
            )
        );
    }

    #[test]
    fn static_text_is_kept_and_directives_are_refused_with_their_line() {
        assert_eq!(
            compile("json 400 response template", &places()).unwrap(),
            Compiled::Text("json 400 response template".into())
        );
        assert_eq!(
            compile("", &places()).unwrap(),
            Compiled::Text(String::new())
        );
        let (line, why) = compile("{\n  \"a\": 1\n}\n#set($x = 1)", &places()).unwrap_err();
        assert_eq!(line, 4);
        assert!(why.contains("#set"), "{why}");
        let (line, why) = compile("{\"a\": \"$inputRoot.Item\"}", &places()).unwrap_err();
        assert_eq!(line, 1);
        assert!(why.contains("inputRoot"), "{why}");
        assert!(compile("{\"a\": \"$context.accountId\"}", &places()).is_err());
        // A response template reads the integration's answer; a mock's has none.
        let answer = Places {
            body: Some("response.body"),
            ..places()
        };
        assert_eq!(
            compile("{\"a\": $input.json('$.x')}", &answer).unwrap(),
            Compiled::Json(json!({"a": "{{ response.body./x }}"}))
        );
        let mock = Places {
            body: None,
            ..places()
        };
        assert!(compile("{\"a\": $input.json('$.x')}", &mock).is_err());
        assert!(compile("{\"a\": \"{{ request.path.x }}\"}", &places()).is_err());
    }

    #[test]
    fn set_names_a_place_in_the_body() {
        let answer = Places {
            body: Some("response.body"),
            ..places()
        };
        let c = compile(
            "#set($inputRoot = $input.path('$'))\n{\"id\": \"$inputRoot.Item.id.S\", \"all\": $inputRoot}",
            &answer,
        )
        .unwrap();
        assert_eq!(
            c,
            Compiled::Json(json!({
                "id": "{{ response.body./Item/id/S | text }}",
                "all": "{{ response.body }}",
            }))
        );
        let c = compile("#set($x = $input.path('$.a'))\n{\"b\": $x.b}", &answer).unwrap();
        assert_eq!(c, Compiled::Json(json!({"b": "{{ response.body./a/b }}"})));
        // Other uses of #set, and variables never set, are refused.
        assert!(compile("#set($x = 1)\n{}", &answer).is_err());
        assert!(compile("#set($x = $context.stage)\n{}", &answer).is_err());
        assert!(compile("{\"a\": \"$y.b\"}", &answer).is_err());
    }

    #[test]
    fn json_paths_become_pointers() {
        assert_eq!(json_pointer("$").as_deref(), Some(""));
        assert_eq!(json_pointer("$.a.b[0]").as_deref(), Some("/a/b/0"));
        assert_eq!(json_pointer("$['x/y']").as_deref(), Some("/x~1y"));
        assert_eq!(json_pointer("$.a[*]"), None);
    }
}
