//! The schema compiler: JSON Schemas into Rust functions that validate a parsed request.
//!
//! Every schema location becomes one function `fn sN(d, i, c, ev) -> bool` that checks node `i`
//! of document `d`, records violations in `c`, and marks evaluated members or items in `ev` (for
//! `unevaluatedProperties`/`unevaluatedItems`). References are resolved here, at generation time,
//! with the `referencing` crate (base URIs, `$id`, anchors, `$dynamicRef` over the dynamic scope
//! the compilation walks), so the gateway resolves nothing per request. Spec text reaches the
//! output only as literals: property names, patterns, constants and messages.
//!
//! Dialects: OpenAPI 3.1 is JSON Schema 2020-12; OpenAPI 3.0 is its own draft-4 subset with
//! `nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum`, and `$ref` that replaces its
//! siblings. `readOnly` properties are refused in requests and `writeOnly` ones in responses.

use std::collections::{BTreeSet, HashMap, HashSet};

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};
use referencing::{Draft, Registry, Resolver};
use serde_json::{Map, Value};

mod stream;

/// Which schema language a schema is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAPI 3.0's Schema Object (draft-4 based).
    Oas30,
    /// JSON Schema draft 4 itself (for the draft-4 test suite).
    Draft4,
    /// JSON Schema 2020-12 (OpenAPI 3.1).
    Draft2020,
}

impl Dialect {
    fn draft(self) -> Draft {
        match self {
            Dialect::Oas30 | Dialect::Draft4 => Draft::Draft4,
            Dialect::Draft2020 => Draft::Draft202012,
        }
    }
    fn legacy(self) -> bool {
        self != Dialect::Draft2020
    }
}

/// Which way data flows (what `readOnly`/`writeOnly` mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Neither is enforced.
    Neutral,
    /// A request: `readOnly` properties are refused.
    Request,
    /// A response: `writeOnly` properties are refused.
    Response,
}

/// How to compile.
#[derive(Debug, Clone)]
pub struct Options {
    /// The dialect of schemas without `$schema`.
    pub dialect: Dialect,
    /// Assert `format` (the default for gateways); off, `format` is an annotation.
    pub formats: bool,
    /// `readOnly`/`writeOnly` handling.
    pub direction: Direction,
    /// Prefix of generated function names.
    pub prefix: String,
    /// Build the code; without it schemas are only analysed (references resolved, patterns
    /// translated, loops found), which is all `gwgen check` needs.
    pub emit: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dialect: Dialect::Draft2020,
            formats: true,
            direction: Direction::Neutral,
            prefix: "s".into(),
            emit: true,
        }
    }
}

/// A schema that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Where: `uri#pointer`.
    pub location: String,
    /// Why.
    pub message: String,
    /// Whether it is a `$dynamicRef` that only run-time scope could resolve.
    pub dynamic: bool,
}

/// What compiled output needs from the runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Patterns (the runtime's `patterns` feature).
    pub patterns: bool,
}

struct Job<'r> {
    id: usize,
    value: &'r Value,
    resolver: Resolver<'r>,
    dialect: Dialect,
    location: String,
}

/// Compiles schemas held in one registry.
pub struct Compiler<'r> {
    registry: &'r Registry<'r>,
    opts: Options,
    fns: Vec<Option<TokenStream>>,
    memo: HashMap<(usize, Vec<String>), usize>,
    /// Small schemas by their text (annotations left out), base URI, dialect and scope: the many
    /// `{type: string}` of a large spec become one function.
    by_text: HashMap<(String, String, Dialect, Vec<String>), usize>,
    queue: Vec<Job<'r>>,
    patterns: Vec<(String, String)>,
    pattern_ids: HashMap<String, usize>,
    consts: Vec<String>,
    const_ids: HashMap<String, usize>,
    /// Calls that stay on the same instance (`$ref`, `allOf`, …): a cycle of them never ends.
    in_place: Vec<(usize, usize, String)>,
    errors: Vec<CompileError>,
    dynamic: bool,
    tracking: bool,
    needs: Needs,
    /// Every schema queued, by function id (what the streaming checks are made from).
    jobs: Vec<Job<'r>>,
    /// Function id → its streaming check's id, if it has one.
    streams: HashMap<usize, Option<usize>>,
    /// Quick checks of parameter values, by schema (`None`: the schema has none).
    scalars: HashMap<usize, Option<usize>>,
    stream_fns: Vec<TokenStream>,
}

fn scan(v: &Value, found: &mut BTreeSet<&'static str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match k.as_str() {
                    "$dynamicRef" => {
                        found.insert("dynamic");
                    }
                    "unevaluatedProperties" | "unevaluatedItems" => {
                        found.insert("unevaluated");
                    }
                    _ => {}
                }
                scan(x, found);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| scan(x, found)),
        _ => {}
    }
}

/// Keywords that make compilation do more work, found by scanning the documents once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Some schema uses `$dynamicRef` (functions are then specialised per dynamic scope).
    pub dynamic: bool,
    /// Some schema uses `unevaluatedProperties`/`unevaluatedItems` (annotations are tracked).
    pub unevaluated: bool,
}

impl Features {
    /// Scans documents.
    pub fn scan<'v>(docs: impl IntoIterator<Item = &'v Value>) -> Features {
        let mut found = BTreeSet::new();
        for d in docs {
            scan(d, &mut found);
        }
        Features {
            dynamic: found.contains("dynamic"),
            unevaluated: found.contains("unevaluated"),
        }
    }
}

/// The key of the placeholder document that stands for a resource gwgen does not have (it never
/// fetches): a reference that lands on it is a compile error.
const UNREACHABLE: &str = "x-gwgen-unresolved";

struct Unreachable;

impl referencing::Retrieve for Unreachable {
    fn retrieve(
        &self,
        uri: &referencing::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Ok(serde_json::json!({ UNREACHABLE: uri.as_str() }))
    }
}

/// Builds a registry from documents keyed by URI.
pub fn registry<'a>(docs: &'a [(String, Value)], dialect: Dialect) -> Result<Registry<'a>, String> {
    let mut b = Registry::new()
        .draft(dialect.draft())
        .retriever(Unreachable);
    for (uri, doc) in docs {
        b = b
            .add(uri.as_str(), doc)
            .map_err(|e| format!("`{uri}`: {e}"))?;
    }
    b.prepare().map_err(|e| e.to_string())
}

impl<'r> Compiler<'r> {
    /// A compiler over `registry`, for schemas that use `features`.
    pub fn new(registry: &'r Registry<'r>, features: Features, opts: Options) -> Self {
        Compiler {
            registry,
            opts,
            fns: Vec::new(),
            memo: HashMap::new(),
            by_text: HashMap::new(),
            queue: Vec::new(),
            patterns: Vec::new(),
            pattern_ids: HashMap::new(),
            consts: Vec::new(),
            const_ids: HashMap::new(),
            in_place: Vec::new(),
            errors: Vec::new(),
            dynamic: features.dynamic,
            tracking: features.unevaluated,
            needs: Needs::default(),
            jobs: Vec::new(),
            streams: HashMap::new(),
            scalars: HashMap::new(),
            stream_fns: Vec::new(),
        }
    }

    /// The function name of id `n`.
    pub fn fn_ident(&self, n: usize) -> Ident {
        format_ident!("{}{}", self.opts.prefix, n)
    }

    /// Compiles the schema at `uri` (`base#/pointer` or `base#anchor`), returning its function id.
    pub fn entry(&mut self, uri: &str) -> Result<usize, CompileError> {
        let (base, fragment) = uri.split_once('#').unwrap_or((uri, ""));
        let base_uri = referencing::uri::from_str(base).map_err(|e| CompileError {
            location: uri.into(),
            message: e.to_string(),
            dynamic: false,
        })?;
        let resolver = self.registry.resolver(base_uri);
        let resolved = resolver
            .lookup(&format!("#{fragment}"))
            .map_err(|e| CompileError {
                location: uri.into(),
                message: format!("cannot resolve the schema: {e}"),
                dynamic: false,
            })?;
        let (value, resolver, draft) = resolved.into_inner();
        let dialect = self.dialect_for(draft);
        let id = self.schema(value, resolver, dialect, uri.to_string());
        self.drain();
        Ok(id)
    }

    fn dialect_for(&self, draft: Draft) -> Dialect {
        match draft {
            Draft::Draft4 if self.opts.dialect == Dialect::Oas30 => Dialect::Oas30,
            Draft::Draft4 | Draft::Draft6 | Draft::Draft7 => Dialect::Draft4,
            _ if self.opts.dialect == Dialect::Oas30 => Dialect::Oas30,
            _ => Dialect::Draft2020,
        }
    }

    fn drain(&mut self) {
        while let Some(job) = self.queue.pop() {
            let body = self.body(&job);
            self.fns[job.id] = Some(body);
        }
    }

    /// The function id for `value` reached with `resolver`, queued for compilation if new.
    fn schema(
        &mut self,
        value: &'r Value,
        resolver: Resolver<'r>,
        dialect: Dialect,
        location: String,
    ) -> usize {
        let scope_key = if self.dynamic {
            let mut seen = Vec::new();
            let mut all: Vec<String> = resolver
                .dynamic_scope()
                .iter()
                .map(|u| u.as_str().to_string())
                .collect();
            all.reverse();
            all.push(resolver.base_uri().as_str().to_string());
            for u in all {
                if !seen.contains(&u) {
                    seen.push(u);
                }
            }
            seen
        } else {
            Vec::new()
        };
        let text_key = small_text(value).map(|t| {
            (
                t,
                resolver.base_uri().as_str().to_string(),
                dialect,
                scope_key.clone(),
            )
        });
        let key = (value as *const Value as usize, scope_key);
        if let Some(&id) = self.memo.get(&key) {
            return id;
        }
        if let Some(&id) = text_key.as_ref().and_then(|k| self.by_text.get(k)) {
            self.memo.insert(key, id);
            return id;
        }
        let id = self.fns.len();
        self.fns.push(None);
        self.memo.insert(key, id);
        if let Some(k) = text_key {
            self.by_text.insert(k, id);
        }
        self.jobs.push(Job {
            id,
            value,
            resolver: resolver.clone(),
            dialect,
            location: location.clone(),
        });
        self.queue.push(Job {
            id,
            value,
            resolver,
            dialect,
            location,
        });
        id
    }

    fn error(&mut self, location: &str, message: String, dynamic: bool) {
        self.errors.push(CompileError {
            location: location.to_string(),
            message,
            dynamic,
        });
    }

    /// The errors so far.
    pub fn errors(&self) -> &[CompileError] {
        &self.errors
    }

    /// What the output needs from the runtime.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    fn pattern(&mut self, location: &str, source: &str) -> Option<Ident> {
        if let Some(&n) = self.pattern_ids.get(source) {
            return Some(format_ident!("{}P{}", self.opts.prefix.to_uppercase(), n));
        }
        match crate::pattern::translate(source) {
            Ok(t) => {
                if let Err(e) = regex::RegexBuilder::new(&t).size_limit(1 << 24).build() {
                    self.error(
                        location,
                        format!("the pattern `{source}` is too large to match in linear time: {e}"),
                        false,
                    );
                    return None;
                }
                let n = self.patterns.len();
                self.patterns.push((source.to_string(), t));
                self.pattern_ids.insert(source.to_string(), n);
                self.needs.patterns = true;
                Some(format_ident!("{}P{}", self.opts.prefix.to_uppercase(), n))
            }
            Err(e) => {
                let why = match e {
                    crate::pattern::PatternError::Invalid(m) => {
                        format!("is not an ECMA-262 regular expression: {m}")
                    }
                    crate::pattern::PatternError::Unsupported(m) => {
                        format!("cannot be matched in linear time: {m}")
                    }
                };
                self.error(location, format!("the pattern `{source}` {why}"), false);
                None
            }
        }
    }

    fn constant(&mut self, v: &Value) -> Ident {
        let text = v.to_string();
        if let Some(&n) = self.const_ids.get(&text) {
            return format_ident!("{}C{}", self.opts.prefix.to_uppercase(), n);
        }
        let n = self.consts.len();
        self.consts.push(text.clone());
        self.const_ids.insert(text, n);
        format_ident!("{}C{}", self.opts.prefix.to_uppercase(), n)
    }

    /// An expression: whether node `i` equals `v`.
    fn equals(&mut self, v: &Value) -> TokenStream {
        match v {
            Value::Null => quote! { d.kind(i) == rt::v::Kind::Null },
            Value::Bool(b) => quote! { d.as_bool(i) == Some(#b) },
            Value::String(s) => {
                let s = Literal::string(s);
                quote! { d.str_eq(i, #s) }
            }
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {
                let f = Literal::f64_unsuffixed(n.as_f64().unwrap_or(0.0));
                quote! { d.as_f64(i) == Some(#f) }
            }
            _ => {
                let c = self.constant(v);
                quote! { #c.matches(d, i) }
            }
        }
    }

    /// Follows a reference from `job`, returning the function id of its target.
    fn reference(&mut self, job: &Job<'r>, reference: &str, keyword: &str) -> Option<usize> {
        let location = format!("{}/{keyword}", job.location);
        match job.resolver.lookup(reference) {
            Ok(resolved) => {
                let target_location = match reference.split_once('#') {
                    Some((_, frag)) => {
                        format!("{}#{frag}", resolved.resolver().base_uri().as_str())
                    }
                    None => resolved.resolver().base_uri().as_str().to_string(),
                };
                let (value, resolver, draft) = resolved.into_inner();
                if let Some(uri) = value.get(UNREACHABLE).and_then(Value::as_str) {
                    self.error(
                        &location,
                        format!("`{reference}` leads to `{uri}`, which is not part of the spec (gwgen never fetches)"),
                        false,
                    );
                    return None;
                }
                let dialect = if job.dialect == Dialect::Oas30 {
                    Dialect::Oas30
                } else {
                    self.dialect_for(draft)
                };
                Some(self.schema(value, resolver, dialect, target_location))
            }
            Err(e) => {
                self.error(
                    &location,
                    format!("`{reference}` cannot be resolved: {e}"),
                    keyword == "$dynamicRef",
                );
                None
            }
        }
    }

    fn sub(&mut self, job: &Job<'r>, value: &'r Value, path: &str) -> usize {
        let location = format!("{}/{}", job.location, path);
        // A subschema with its own `$id` is a resource: it moves the base URI.
        let resolver = if value.is_object() {
            let r = job.dialect.draft().create_resource_ref(value);
            job.resolver
                .in_subresource(r)
                .unwrap_or_else(|_| job.resolver.clone())
        } else {
            job.resolver.clone()
        };
        self.schema(value, resolver, job.dialect, location)
    }

    /// A call to a subschema on node `at`, with annotation set `ev`, that fails this schema.
    fn call(&self, id: usize, at: TokenStream, ev: TokenStream) -> TokenStream {
        let f = self.fn_ident(id);
        quote! {
            if !#f(d, #at, c, #ev) {
                ok = false;
                if c.is_quiet() { return false; }
            }
        }
    }

    /// The analysis without code: every reference, subschema and pattern, as `body` reaches them.
    fn visit(&mut self, job: &Job<'r>) {
        let Value::Object(o) = job.value else { return };
        let legacy = job.dialect.legacy();
        let in_place =
            |c: &mut Self, id: usize| c.in_place.push((job.id, id, job.location.clone()));
        for kw in ["$ref", "$dynamicRef"] {
            if kw == "$dynamicRef" && legacy {
                continue;
            }
            if let Some(Value::String(r)) = o.get(kw) {
                if let Some(id) = self.reference(job, r, kw) {
                    in_place(self, id);
                }
                if legacy {
                    return;
                }
            }
        }
        if let Some(Value::String(p)) = o.get("pattern") {
            let loc = format!("{}/pattern", job.location);
            self.pattern(&loc, p);
        }
        let mut kws: Vec<(&str, bool)> = vec![
            ("not", true),
            ("additionalProperties", false),
            ("propertyNames", false),
            ("contains", false),
        ];
        if legacy {
            kws.push(("additionalItems", false));
        } else {
            kws.extend([
                ("if", true),
                ("then", true),
                ("else", true),
                ("unevaluatedItems", false),
                ("unevaluatedProperties", false),
            ]);
        }
        for (kw, place) in kws {
            if let Some(v) = o.get(kw) {
                let id = self.sub(job, v, kw);
                if place {
                    in_place(self, id);
                }
            }
        }
        for kw in ["allOf", "anyOf", "oneOf"] {
            for (k, v) in o
                .get(kw)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let id = self.sub(job, v, &format!("{kw}/{k}"));
                in_place(self, id);
            }
        }
        let list_kw = if legacy { "items" } else { "prefixItems" };
        match o.get("items") {
            Some(Value::Array(_)) if legacy => {}
            Some(v) => {
                self.sub(job, v, "items");
            }
            None => {}
        }
        if let Some(Value::Array(list)) = o.get(list_kw) {
            for (k, v) in list.iter().enumerate() {
                self.sub(job, v, &format!("{list_kw}/{k}"));
            }
        }
        for kw in [
            "properties",
            "patternProperties",
            "dependentSchemas",
            "dependencies",
        ] {
            for (k, v) in o.get(kw).and_then(Value::as_object).into_iter().flatten() {
                if kw == "patternProperties" {
                    let loc = format!("{}/patternProperties", job.location);
                    self.pattern(&loc, k);
                }
                if kw == "dependencies" && (!legacy || v.is_array()) {
                    continue;
                }
                let id = self.sub(job, v, &format!("{kw}/{}", esc(k)));
                if kw == "dependentSchemas" || kw == "dependencies" {
                    in_place(self, id);
                }
            }
        }
    }

    fn body(&mut self, job: &Job<'r>) -> TokenStream {
        if !self.opts.emit {
            self.visit(job);
            return quote! {};
        }
        let name = self.fn_ident(job.id);
        let checks = match job.value {
            Value::Bool(true) => quote! {},
            Value::Bool(false) => quote! {
                ok = false;
                if c.fail(d, i, "false", || "no value is allowed here".to_string()) { return false; }
            },
            Value::Object(o) => self.object_schema(job, o),
            _ => {
                self.error(
                    &job.location,
                    "a schema must be an object or a boolean".into(),
                    false,
                );
                quote! {}
            }
        };
        quote! {
            #[allow(unused_variables, unused_mut, clippy::all)]
            pub(crate) fn #name(d: &rt::v::Doc<'_>, i: u32, c: &mut rt::v::Ctx, mut ev: Option<&mut rt::v::Eval>) -> bool {
                let mut ok = true;
                #checks
                ok
            }
        }
    }

    /// Fails with a fixed message.
    fn fail_lit(kw: &str, msg: &Literal) -> TokenStream {
        let kw = Literal::string(kw);
        quote! {
            ok = false;
            if c.report(d, i, #kw, #msg) { return false; }
        }
    }

    /// Fails through a runtime reporter (`c.report_type(…)`), which returns whether to stop.
    fn fail_call(report: TokenStream) -> TokenStream {
        quote! {
            ok = false;
            if #report { return false; }
        }
    }

    fn fail(kw: &str, msg: TokenStream) -> TokenStream {
        let kw = Literal::string(kw);
        quote! {
            ok = false;
            if c.fail(d, i, #kw, || #msg) { return false; }
        }
    }

    fn object_schema(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let legacy = job.dialect.legacy();
        // Draft 4 and OpenAPI 3.0: `$ref` replaces everything beside it.
        if legacy {
            if let Some(Value::String(r)) = o.get("$ref") {
                return match self.reference(job, r, "$ref") {
                    Some(id) => {
                        self.in_place.push((job.id, id, job.location.clone()));
                        self.call(id, quote! { i }, quote! { ev.as_deref_mut() })
                    }
                    None => quote! {},
                };
            }
        }
        let unevaluated = !legacy
            && (o.contains_key("unevaluatedProperties") || o.contains_key("unevaluatedItems"));
        let out = vec![
            self.generic_checks(job, o),
            self.number_checks(job, o),
            self.string_checks(job, o),
            self.array_checks(job, o),
            self.object_checks(job, o),
            self.applicators(job, o),
        ];
        if !unevaluated {
            return quote! { #(#out)* };
        }
        let tail = self.unevaluated(job, o);
        quote! {
            let mut le = rt::v::Eval::default();
            let mut outer = ev;
            {
                let mut ev: Option<&mut rt::v::Eval> = Some(&mut le);
                #(#out)*
            }
            let mut ev: Option<&mut rt::v::Eval> = None;
            #tail
            if ok { rt::v::merge(&mut outer, &le); }
        }
    }

    fn generic_checks(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let mut out = Vec::new();
        let nullable =
            job.dialect == Dialect::Oas30 && o.get("nullable") == Some(&Value::Bool(true));
        if o.contains_key("type") {
            let mut mask = type_mask(o);
            if nullable {
                mask |= 1;
            }
            let m = Literal::u8_unsuffixed(mask);
            let fail = Self::fail_call(quote! { c.report_type(d, i, #m) });
            out.push(quote! { if !rt::v::has_type(d, i, #m) { #fail } });
        }
        let null_ok = if nullable {
            quote! { d.kind(i) == rt::v::Kind::Null || }
        } else {
            quote! {}
        };
        if let Some(Value::Array(values)) = o.get("enum").filter(|v| {
            v.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
        }) {
            // All strings: one lookup of the text, one `match`.
            let lits = values.iter().filter_map(Value::as_str).map(Literal::string);
            let shown = Literal::string(&summarize(&Value::Array(values.clone())));
            let fail =
                Self::fail_call(quote! { c.report_value(d, i, "enum", "is not one of", #shown) });
            out.push(quote! {
                let known = match d.as_str(i) {
                    Some(s) => matches!(s.as_ref(), #(#lits)|*),
                    None => false,
                };
                if !(#null_ok known) { #fail }
            });
        } else if let Some(Value::Array(values)) = o.get("enum") {
            let mut tests: Vec<TokenStream> = values.iter().map(|v| self.equals(v)).collect();
            if tests.is_empty() {
                tests.push(quote! { false });
            }
            let shown = Literal::string(&summarize(&Value::Array(values.clone())));
            let fail =
                Self::fail_call(quote! { c.report_value(d, i, "enum", "is not one of", #shown) });
            out.push(quote! { if !(#null_ok #(#tests)||*) { #fail } });
        }
        if let Some(v) = o.get("const") {
            let test = self.equals(v);
            let shown = Literal::string(&summarize(v));
            let fail = Self::fail_call(quote! { c.report_value(d, i, "const", "is not", #shown) });
            out.push(quote! { if !(#test) { #fail } });
        }
        quote! { #(#out)* }
    }

    fn number_checks(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let legacy = job.dialect.legacy();
        let num = |k: &str| o.get(k).and_then(Value::as_f64).filter(|f| f.is_finite());
        let mut checks = Vec::new();
        let bound = |kw: &str, op: &str, x: f64| -> TokenStream {
            let lit = Literal::f64_unsuffixed(x);
            let (test, words) = match op {
                ">=" => (quote! { x >= #lit }, "at least"),
                ">" => (quote! { x > #lit }, "greater than"),
                "<=" => (quote! { x <= #lit }, "at most"),
                _ => (quote! { x < #lit }, "less than"),
            };
            let msg = Literal::string(&format!("must be {words} {}", fmt_num(x)));
            let fail = Self::fail_lit(kw, &msg);
            quote! { if !(#test) { #fail } }
        };
        for (kw, op, x) in bounds(o, legacy) {
            checks.push(bound(kw, op, x));
        }
        if let Some(m) = num("multipleOf").filter(|m| *m > 0.0) {
            let lit = Literal::f64_unsuffixed(m);
            let msg = Literal::string(&format!("must be a multiple of {}", fmt_num(m)));
            let fail = Self::fail_lit("multipleOf", &msg);
            checks.push(quote! { if !rt::v::multiple_of(x, #lit) { #fail } });
        }
        if self.opts.formats {
            match o.get("format").and_then(Value::as_str) {
                Some("int32") => {
                    let fail =
                        Self::fail_lit("format", &Literal::string("must be a 32-bit integer"));
                    checks.push(quote! { if !rt::v::format::int32(x) { #fail } });
                }
                Some("int64") => {
                    let fail =
                        Self::fail_lit("format", &Literal::string("must be a 64-bit integer"));
                    checks.push(quote! { if !rt::v::format::int64(x) { #fail } });
                }
                _ => {}
            }
        }
        if checks.is_empty() {
            return quote! {};
        }
        quote! { if let Some(x) = d.as_f64(i) { #(#checks)* } }
    }

    fn string_checks(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let mut len_checks = Vec::new();
        let count = |k: &str| {
            o.get(k)
                .and_then(Value::as_f64)
                .filter(|f| *f >= 0.0)
                .map(|f| f as u64)
        };
        if let Some(n) = count("minLength") {
            let lit = Literal::usize_unsuffixed(n as usize);
            let msg = Literal::string(&format!("must be at least {n} character{} long", plural(n)));
            let fail = Self::fail_lit("minLength", &msg);
            len_checks.push(quote! { if n < #lit { #fail } });
        }
        if let Some(n) = count("maxLength") {
            let lit = Literal::usize_unsuffixed(n as usize);
            let msg = Literal::string(&format!("must be at most {n} character{} long", plural(n)));
            let fail = Self::fail_lit("maxLength", &msg);
            len_checks.push(quote! { if n > #lit { #fail } });
        }
        let mut text_checks = Vec::new();
        if let Some(Value::String(p)) = o.get("pattern") {
            let loc = format!("{}/pattern", job.location);
            if let Some(id) = self.pattern(&loc, p) {
                let msg = Literal::string(&format!("must match the pattern `{}`", truncate(p, 80)));
                let fail = Self::fail_lit("pattern", &msg);
                text_checks.push(quote! { if !#id.is_match(&s) { #fail } });
            }
        }
        if self.opts.formats {
            if let Some(f) = o.get("format").and_then(Value::as_str) {
                if let Some(func) = string_format(f) {
                    let msg = Literal::string(&format!("must be a valid `{f}`"));
                    let fail = Self::fail_lit("format", &msg);
                    text_checks.push(quote! { if !rt::v::format::#func(&s) { #fail } });
                }
            }
        }
        if len_checks.is_empty() && text_checks.is_empty() {
            return quote! {};
        }
        let len = if len_checks.is_empty() {
            quote! {}
        } else {
            quote! { let n = d.str_chars(i); #(#len_checks)* }
        };
        let text = if text_checks.is_empty() {
            quote! {}
        } else {
            quote! { if let Some(s) = d.as_str(i) { #(#text_checks)* } }
        };
        quote! { if d.kind(i) == rt::v::Kind::Str { #len #text } }
    }

    fn array_checks(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let legacy = job.dialect.legacy();
        let mut checks = Vec::new();
        let count = |k: &str| {
            o.get(k)
                .and_then(Value::as_f64)
                .filter(|f| *f >= 0.0)
                .map(|f| f as usize)
        };
        if let Some(n) = count("minItems") {
            let lit = Literal::usize_unsuffixed(n);
            let msg = Literal::string(&format!("must have at least {n} item{}", plural(n as u64)));
            let fail = Self::fail_lit("minItems", &msg);
            checks.push(quote! { if d.len(i) < #lit { #fail } });
        }
        if let Some(n) = count("maxItems") {
            let lit = Literal::usize_unsuffixed(n);
            let msg = Literal::string(&format!("must have at most {n} item{}", plural(n as u64)));
            let fail = Self::fail_lit("maxItems", &msg);
            checks.push(quote! { if d.len(i) > #lit { #fail } });
        }
        if o.get("uniqueItems") == Some(&Value::Bool(true)) {
            let fail = Self::fail_lit("uniqueItems", &Literal::string("must not repeat an item"));
            checks.push(quote! { if !rt::v::unique_items(d, i) { #fail } });
        }
        // Positional items: `prefixItems` (2020-12) or array-valued `items` (draft 4).
        let (prefix, rest, rest_kw): (Option<&'r Vec<Value>>, Option<&'r Value>, &str) = if legacy {
            match o.get("items") {
                Some(Value::Array(a)) => (Some(a), o.get("additionalItems"), "additionalItems"),
                Some(v) => (None, Some(v), "items"),
                None => (None, None, "items"),
            }
        } else {
            (
                match o.get("prefixItems") {
                    Some(Value::Array(a)) => Some(a),
                    _ => None,
                },
                o.get("items"),
                "items",
            )
        };
        let prefix_kw = if legacy { "items" } else { "prefixItems" };
        let mut np = 0usize;
        if let Some(list) = prefix {
            np = list.len();
            let mut arms = Vec::new();
            for (k, s) in list.iter().enumerate() {
                let id = self.sub(job, s, &format!("{prefix_kw}/{k}"));
                let call = self.call(id, quote! { x }, quote! { None });
                let kl = Literal::usize_unsuffixed(k);
                arms.push(quote! { #kl => { #call } });
            }
            let npl = Literal::usize_unsuffixed(np);
            checks.push(quote! {
                for (k, x) in d.items(i).enumerate().take(#npl) {
                    match k { #(#arms)* _ => {} }
                    rt::v::mark(&mut ev, k);
                }
            });
        }
        if let Some(s) = rest {
            if prefix.is_some() || !legacy || rest_kw == "items" {
                let id = self.sub(job, s, rest_kw);
                let call = self.call(id, quote! { x }, quote! { None });
                let npl = Literal::usize_unsuffixed(np);
                checks.push(quote! {
                    for (k, x) in d.items(i).enumerate().skip(#npl) {
                        #call
                        rt::v::mark(&mut ev, k);
                    }
                });
            }
        }
        if let Some(s) = o.get("contains") {
            let id = self.sub(job, s, "contains");
            let f = self.fn_ident(id);
            let min = if legacy {
                1
            } else {
                count("minContains").unwrap_or(1)
            };
            let max = if legacy { None } else { count("maxContains") };
            let minl = Literal::usize_unsuffixed(min);
            let fail_min = Self::fail(
                "contains",
                quote! { format!("must contain at least {} matching item(s), has {}", #minl, n) },
            );
            let min_check = if min > 0 {
                quote! { if n < #minl { #fail_min } }
            } else {
                quote! {}
            };
            let max_check = match max {
                Some(m) => {
                    let ml = Literal::usize_unsuffixed(m);
                    let fail = Self::fail(
                        "maxContains",
                        quote! { format!("must contain at most {} matching item(s), has {}", #ml, n) },
                    );
                    quote! { if n > #ml { #fail } }
                }
                None => quote! {},
            };
            checks.push(quote! {
                let mut n = 0usize;
                for (k, x) in d.items(i).enumerate() {
                    if c.quietly(|c| #f(d, x, c, None)) {
                        n += 1;
                        rt::v::mark(&mut ev, k);
                    }
                }
                #min_check
                #max_check
            });
        }
        if checks.is_empty() {
            return quote! {};
        }
        quote! { if d.kind(i) == rt::v::Kind::Array { #(#checks)* } }
    }

    fn object_checks(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let legacy = job.dialect.legacy();
        let mut checks = Vec::new();
        let count = |k: &str| {
            o.get(k)
                .and_then(Value::as_f64)
                .filter(|f| *f >= 0.0)
                .map(|f| f as usize)
        };
        if let Some(n) = count("minProperties") {
            let lit = Literal::usize_unsuffixed(n);
            let msg = Literal::string(&format!(
                "must have at least {n} propert{}",
                if n == 1 { "y" } else { "ies" }
            ));
            let fail = Self::fail_lit("minProperties", &msg);
            checks.push(quote! { if d.len(i) < #lit { #fail } });
        }
        if let Some(n) = count("maxProperties") {
            let lit = Literal::usize_unsuffixed(n);
            let msg = Literal::string(&format!(
                "must have at most {n} propert{}",
                if n == 1 { "y" } else { "ies" }
            ));
            let fail = Self::fail_lit("maxProperties", &msg);
            checks.push(quote! { if d.len(i) > #lit { #fail } });
        }
        let required = |list: &Value, kw: &str| -> Vec<TokenStream> {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|name| {
                    let n = Literal::string(name);
                    let msg = Literal::string(&format!(
                        "the property `{}` is required",
                        truncate(name, 80)
                    ));
                    let fail = Self::fail_lit(kw, &msg);
                    quote! { if d.get(i, #n).is_none() { #fail } }
                })
                .collect()
        };
        // Required properties that `properties` declares are noted in the one pass over the
        // members below; others are looked up.
        let declared = o.get("properties").and_then(Value::as_object);
        let mut tracked: Vec<&'r str> = Vec::new();
        if let Some(Value::Array(list)) = o.get("required") {
            let mut untracked = Vec::new();
            for name in list.iter().filter_map(Value::as_str) {
                if tracked.contains(&name) || untracked.contains(&Value::from(name)) {
                    continue;
                }
                if tracked.len() < 64 && declared.is_some_and(|d| d.contains_key(name)) {
                    tracked.push(name);
                } else {
                    untracked.push(Value::from(name));
                }
            }
            checks.extend(required(&Value::Array(untracked), "required"));
        }
        let mut dep_req = Vec::new();
        let mut dep_schemas: Vec<(&'r String, &'r Value, String)> = Vec::new();
        if let Some(Value::Object(m)) = o.get("dependentRequired") {
            dep_req.extend(m.iter());
        }
        if let Some(Value::Object(m)) = o.get("dependentSchemas") {
            for (k, s) in m {
                dep_schemas.push((k, s, format!("dependentSchemas/{}", esc(k))));
            }
        }
        if legacy {
            if let Some(Value::Object(m)) = o.get("dependencies") {
                for (k, v) in m {
                    if v.is_array() {
                        dep_req.push((k, v));
                    } else {
                        dep_schemas.push((k, v, format!("dependencies/{}", esc(k))));
                    }
                }
            }
        }
        for (k, list) in dep_req {
            let kl = Literal::string(k);
            let inner = required(list, "dependentRequired");
            checks.push(quote! { if d.get(i, #kl).is_some() { #(#inner)* } });
        }
        for (k, s, path) in dep_schemas {
            let id = self.sub(job, s, &path);
            self.in_place.push((job.id, id, job.location.clone()));
            let kl = Literal::string(k);
            let call = self.call(id, quote! { i }, quote! { ev.as_deref_mut() });
            checks.push(quote! { if d.get(i, #kl).is_some() { #call } });
        }
        // One pass over the members for properties, patternProperties and additionalProperties.
        let props = o.get("properties").and_then(Value::as_object);
        let pats = o.get("patternProperties").and_then(Value::as_object);
        let addl = o.get("additionalProperties");
        if props.is_some() || pats.is_some() || addl.is_some() {
            let mut arms = Vec::new();
            for (name, s) in props.into_iter().flatten() {
                let id = self.sub(job, s, &format!("properties/{}", esc(name)));
                let call = self.call(id, quote! { v }, quote! { None });
                let n = Literal::string(name);
                let refused = self.refused_property(job, s);
                let note = match tracked.iter().position(|t| *t == name.as_str()) {
                    Some(r) => {
                        let bit = Literal::u64_unsuffixed(1u64 << r);
                        quote! { seen |= #bit; }
                    }
                    None => quote! {},
                };
                arms.push(quote! { #n => { matched = true; #note #refused #call } });
            }
            let mut pat_checks = Vec::new();
            for (p, s) in pats.into_iter().flatten() {
                let loc = format!("{}/patternProperties", job.location);
                let Some(re) = self.pattern(&loc, p) else {
                    continue;
                };
                let id = self.sub(job, s, &format!("patternProperties/{}", esc(p)));
                let call = self.call(id, quote! { v }, quote! { None });
                pat_checks.push(quote! { if #re.is_match(&key) { matched = true; #call } });
            }
            let additional = match addl {
                Some(Value::Bool(false)) => {
                    let fail = quote! {
                        ok = false;
                        if c.fail(d, k, "additionalProperties", || format!("the property {} is not allowed", d.text(k))) { return false; }
                    };
                    quote! { if !matched { #fail } }
                }
                Some(s) => {
                    let id = self.sub(job, s, "additionalProperties");
                    let call = self.call(id, quote! { v }, quote! { None });
                    quote! { if !matched { #call } }
                }
                None => quote! {},
            };
            let mark = if addl.is_some() {
                quote! { rt::v::mark(&mut ev, n); }
            } else {
                quote! { if matched { rt::v::mark(&mut ev, n); } }
            };
            let matcher = if arms.is_empty() {
                quote! {}
            } else {
                quote! { match key.as_ref() { #(#arms)* _ => {} } }
            };
            let needs_key = !arms.is_empty() || !pat_checks.is_empty();
            let key = if needs_key {
                quote! { let key = d.as_str(k).unwrap_or_default(); }
            } else {
                quote! {}
            };
            let missing = tracked.iter().enumerate().map(|(r, name)| {
                let bit = Literal::u64_unsuffixed(1u64 << r);
                let msg = Literal::string(&format!(
                    "the property `{}` is required",
                    truncate(name, 80)
                ));
                let fail = Self::fail_lit("required", &msg);
                quote! { if seen & #bit == 0 { #fail } }
            });
            let seen = if tracked.is_empty() {
                quote! {}
            } else {
                quote! { let mut seen = 0u64; }
            };
            checks.push(quote! {
                #seen
                for (n, (k, v)) in d.members(i).enumerate() {
                    let mut matched = false;
                    #key
                    #matcher
                    #(#pat_checks)*
                    #additional
                    #mark
                }
                #(#missing)*
            });
        }
        if let Some(s) = o.get("propertyNames") {
            let id = self.sub(job, s, "propertyNames");
            let call = self.call(id, quote! { k }, quote! { None });
            checks.push(quote! { for (k, _) in d.members(i) { #call } });
        }
        if checks.is_empty() {
            return quote! {};
        }
        quote! { if d.kind(i) == rt::v::Kind::Object { #(#checks)* } }
    }

    /// `readOnly` in requests, `writeOnly` in responses: the property must not be there.
    fn refused_property(&mut self, job: &Job<'r>, s: &'r Value) -> TokenStream {
        let (kw, why) = match self.opts.direction {
            Direction::Neutral => return quote! {},
            Direction::Request => ("readOnly", "is read-only and must not be sent"),
            Direction::Response => ("writeOnly", "is write-only and must not be returned"),
        };
        let mut target = s;
        if let Some(Value::String(r)) = s.get("$ref") {
            if let Ok(resolved) = job.resolver.lookup(r) {
                target = resolved.contents();
            }
        }
        if target.get(kw) == Some(&Value::Bool(true)) || s.get(kw) == Some(&Value::Bool(true)) {
            let why = Literal::string(why);
            let kwl = Literal::string(kw);
            quote! {
                ok = false;
                if c.fail(d, k, #kwl, || format!("the property {} {}", d.text(k), #why)) { return false; }
            }
        } else {
            quote! {}
        }
    }

    fn applicators(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let legacy = job.dialect.legacy();
        let mut out = Vec::new();
        let tracking = self.tracking;
        if !legacy {
            if let Some(Value::String(r)) = o.get("$ref") {
                if let Some(id) = self.reference(job, r, "$ref") {
                    self.in_place.push((job.id, id, job.location.clone()));
                    out.push(self.call(id, quote! { i }, quote! { ev.as_deref_mut() }));
                }
            }
            if let Some(Value::String(r)) = o.get("$dynamicRef") {
                if let Some(id) = self.reference(job, r, "$dynamicRef") {
                    self.in_place.push((job.id, id, job.location.clone()));
                    out.push(self.call(id, quote! { i }, quote! { ev.as_deref_mut() }));
                }
            }
        }
        if let Some(Value::Array(list)) = o.get("allOf") {
            for (k, s) in list.iter().enumerate() {
                let id = self.sub(job, s, &format!("allOf/{k}"));
                self.in_place.push((job.id, id, job.location.clone()));
                out.push(self.call(id, quote! { i }, quote! { ev.as_deref_mut() }));
            }
        }
        // A discriminator picks the one alternative to check, with its own errors.
        let discriminated = self.discriminator(job, o);
        let mut alts = Vec::new();
        for kw in ["anyOf", "oneOf"] {
            let Some(Value::Array(list)) = o.get(kw) else {
                continue;
            };
            let ids: Vec<usize> = list
                .iter()
                .enumerate()
                .map(|(k, s)| self.sub(job, s, &format!("{kw}/{k}")))
                .collect();
            for id in &ids {
                self.in_place.push((job.id, *id, job.location.clone()));
            }
            let fns: Vec<Ident> = ids.iter().map(|id| self.fn_ident(*id)).collect();
            if kw == "anyOf" {
                let fail = Self::fail_lit(
                    "anyOf",
                    &Literal::string("matches none of the alternatives in `anyOf`"),
                );
                let tracked = if tracking {
                    quote! {
                        if ev.is_some() {
                            let mut any = false;
                            #(
                                let mut e = rt::v::Eval::default();
                                if c.quietly(|c| #fns(d, i, c, Some(&mut e))) { any = true; rt::v::merge(&mut ev, &e); }
                            )*
                            any
                        } else { #(c.quietly(|c| #fns(d, i, c, None)))||* }
                    }
                } else {
                    quote! { #(c.quietly(|c| #fns(d, i, c, None)))||* }
                };
                alts.push(quote! { if !{ #tracked } { #fail } });
            } else {
                let fail = Self::fail(
                    "oneOf",
                    quote! {
                        if n == 0 { "matches none of the alternatives in `oneOf`".to_string() }
                        else { format!("matches {} of the alternatives in `oneOf`, not exactly one", n) }
                    },
                );
                alts.push(quote! {
                    let mut n = 0usize;
                    let mut best = rt::v::Eval::default();
                    #(
                        let mut e = rt::v::Eval::default();
                        if c.quietly(|c| #fns(d, i, c, Some(&mut e))) { n += 1; best = e; }
                    )*
                    if n == 1 { rt::v::merge(&mut ev, &best); }
                    if n != 1 { #fail }
                });
            }
        }
        match discriminated {
            // Objects are dispatched on the discriminator; anything else is checked against the
            // alternatives as JSON Schema says.
            Some(t) => out.push(quote! {
                if d.kind(i) == rt::v::Kind::Object { #t } else { #(#alts)* }
            }),
            None => out.extend(alts),
        }
        if let Some(s) = o.get("not") {
            let id = self.sub(job, s, "not");
            self.in_place.push((job.id, id, job.location.clone()));
            let f = self.fn_ident(id);
            let fail = Self::fail_lit(
                "not",
                &Literal::string("must not match the schema in `not`"),
            );
            out.push(quote! { if c.quietly(|c| #f(d, i, c, None)) { #fail } });
        }
        if !legacy {
            if let Some(cond) = o.get("if") {
                let id = self.sub(job, cond, "if");
                self.in_place.push((job.id, id, job.location.clone()));
                let f = self.fn_ident(id);
                let then = o.get("then").map(|s| {
                    let id = self.sub(job, s, "then");
                    self.in_place.push((job.id, id, job.location.clone()));
                    self.call(id, quote! { i }, quote! { ev.as_deref_mut() })
                });
                let els = o.get("else").map(|s| {
                    let id = self.sub(job, s, "else");
                    self.in_place.push((job.id, id, job.location.clone()));
                    self.call(id, quote! { i }, quote! { ev.as_deref_mut() })
                });
                let then = then.unwrap_or_default();
                let els = els.unwrap_or_default();
                out.push(quote! {
                    let mut e = rt::v::Eval::default();
                    if c.quietly(|c| #f(d, i, c, Some(&mut e))) {
                        rt::v::merge(&mut ev, &e);
                        #then
                    } else {
                        #els
                    }
                });
            }
        }
        quote! { #(#out)* }
    }

    /// OpenAPI's `discriminator`: with `oneOf`/`anyOf` of references, the named property selects
    /// the alternative (through `mapping`, or the schema's name).
    fn discriminator(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> Option<TokenStream> {
        let disc = o.get("discriminator")?.as_object()?;
        let prop = disc.get("propertyName")?.as_str()?;
        let list = o.get("oneOf").or_else(|| o.get("anyOf"))?.as_array()?;
        let mut arms = Vec::new();
        let mut names = Vec::new();
        let mapping = disc.get("mapping").and_then(Value::as_object);
        for s in list {
            let r = s.get("$ref")?.as_str()?;
            let short = r.rsplit('/').next().unwrap_or(r).to_string();
            let mut values: Vec<String> = mapping
                .into_iter()
                .flatten()
                .filter(|(_, target)| {
                    target.as_str() == Some(r) || target.as_str() == Some(short.as_str())
                })
                .map(|(k, _)| k.clone())
                .collect();
            if values.is_empty() {
                values.push(short.clone());
            }
            let id = self.reference(job, r, "discriminator")?;
            self.in_place.push((job.id, id, job.location.clone()));
            let call = self.call(id, quote! { i }, quote! { ev.as_deref_mut() });
            for v in values {
                names.push(v.clone());
                let v = Literal::string(&v);
                arms.push(quote! { Some(#v) => { #call } });
            }
        }
        let p = Literal::string(prop);
        let shown = Literal::string(&truncate(&names.join(", "), 200));
        let missing = Literal::string(&format!("the discriminator property `{prop}` is required"));
        let fail_missing = Self::fail_lit("discriminator", &missing);
        let fail_unknown = Self::fail(
            "discriminator",
            quote! { format!("{} is not one of {}", d.text(j), #shown) },
        );
        Some(quote! {
            match d.get(i, #p) {
                None => { #fail_missing }
                Some(j) => match d.as_str(j).as_deref() {
                    #(#arms)*
                    _ => { #fail_unknown }
                },
            }
        })
    }

    fn unevaluated(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let mut out = Vec::new();
        if let Some(s) = o.get("unevaluatedItems") {
            let check = match s {
                Value::Bool(false) => quote! {
                    ok = false;
                    if c.fail(d, x, "unevaluatedItems", || "this item is not allowed".to_string()) { return false; }
                },
                s => {
                    let id = self.sub(job, s, "unevaluatedItems");
                    self.call(id, quote! { x }, quote! { None })
                }
            };
            out.push(quote! {
                if d.kind(i) == rt::v::Kind::Array {
                    for (k, x) in d.items(i).enumerate() {
                        if !le.has(k) { #check }
                    }
                    le.mark_to(d.len(i));
                }
            });
        }
        if let Some(s) = o.get("unevaluatedProperties") {
            let check = match s {
                Value::Bool(false) => quote! {
                    ok = false;
                    if c.fail(d, k, "unevaluatedProperties", || format!("the property {} is not allowed", d.text(k))) { return false; }
                },
                s => {
                    let id = self.sub(job, s, "unevaluatedProperties");
                    self.call(id, quote! { v }, quote! { None })
                }
            };
            out.push(quote! {
                if d.kind(i) == rt::v::Kind::Object {
                    for (n, (k, v)) in d.members(i).enumerate() {
                        if !le.has(n) { #check }
                    }
                    le.mark_to(d.len(i));
                }
            });
        }
        quote! { #(#out)* }
    }

    /// Everything compiled: the functions, patterns and constants. Reports in-place reference
    /// cycles (a schema that reaches itself without moving to a member or item never ends).
    pub fn finish(mut self) -> (TokenStream, Vec<CompileError>, Needs) {
        self.drain();
        let mut graph: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        let mut where_: HashMap<usize, String> = HashMap::new();
        for (a, b, loc) in &self.in_place {
            graph.entry(*a).or_default().push(*b);
            where_.entry(*a).or_insert_with(|| loc.clone());
        }
        let mut state: HashMap<usize, u8> = HashMap::new();
        let mut reported = HashSet::new();
        let nodes: Vec<usize> = graph.keys().copied().collect();
        for start in nodes {
            if state.get(&start).copied().unwrap_or(0) != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state.insert(start, 1);
            while let Some((n, k)) = stack.last().copied() {
                let next = graph.get(&n).and_then(|v| v.get(k)).copied();
                match next {
                    Some(m) => {
                        if let Some(top) = stack.last_mut() {
                            top.1 += 1;
                        }
                        match state.get(&m).copied().unwrap_or(0) {
                            0 => {
                                state.insert(m, 1);
                                stack.push((m, 0));
                            }
                            1 if reported.insert(m) => {
                                let loc = where_.get(&m).cloned().unwrap_or_default();
                                self.errors.push(CompileError {
                                    location: loc,
                                    message: "this schema refers to itself without moving to a property or item, so validating it would never end".into(),
                                    dynamic: false,
                                });
                            }
                            _ => {}
                        }
                    }
                    None => {
                        state.insert(n, 2);
                        stack.pop();
                    }
                }
            }
        }
        let fns = self.fns.iter().flatten().chain(&self.stream_fns);
        let pats = self.patterns.iter().enumerate().map(|(n, (src, tr))| {
            let id = format_ident!("{}P{}", self.opts.prefix.to_uppercase(), n);
            let runs = crate::pattern::shape(src);
            let (src, tr) = (Literal::string(src), Literal::string(tr));
            match runs {
                Some(runs) => {
                    let runs = runs.iter().map(|&(class, min, max)| {
                        let (class, min, max) = (
                            Literal::u128_suffixed(class),
                            Literal::u32_suffixed(min),
                            Literal::u32_suffixed(max),
                        );
                        quote! { rt::v::Run { class: #class, min: #min, max: #max } }
                    });
                    quote! {
                        static #id: rt::v::Pattern = rt::v::Pattern::runs(#src, #tr, &[#(#runs),*]);
                    }
                }
                None => quote! { static #id: rt::v::Pattern = rt::v::Pattern::new(#src, #tr); },
            }
        });
        let consts = self.consts.iter().enumerate().map(|(n, text)| {
            let id = format_ident!("{}C{}", self.opts.prefix.to_uppercase(), n);
            let text = Literal::string(text);
            quote! { static #id: rt::v::Constant = rt::v::Constant::new(#text); }
        });
        let tokens = quote! {
            #(#pats)*
            #(#consts)*
            #(#fns)*
        };
        (tokens, self.errors, self.needs)
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The bounds `minimum`, `maximum`, `exclusiveMinimum` and `exclusiveMaximum` set on a number:
/// keyword, comparison (`x OP bound` must hold) and bound. In draft 4 and OpenAPI 3.0 the
/// exclusive keywords are booleans that change `minimum` and `maximum`.
fn bounds(o: &Map<String, Value>, legacy: bool) -> Vec<(&'static str, &'static str, f64)> {
    let num = |k: &str| o.get(k).and_then(Value::as_f64).filter(|f| f.is_finite());
    let mut out = Vec::new();
    if legacy {
        let excl_min = o.get("exclusiveMinimum") == Some(&Value::Bool(true));
        let excl_max = o.get("exclusiveMaximum") == Some(&Value::Bool(true));
        if let Some(m) = num("minimum") {
            out.push(if excl_min {
                ("exclusiveMinimum", ">", m)
            } else {
                ("minimum", ">=", m)
            });
        }
        if let Some(m) = num("maximum") {
            out.push(if excl_max {
                ("exclusiveMaximum", "<", m)
            } else {
                ("maximum", "<=", m)
            });
        }
    } else {
        for (kw, op) in [
            ("minimum", ">="),
            ("maximum", "<="),
            ("exclusiveMinimum", ">"),
            ("exclusiveMaximum", "<"),
        ] {
            if let Some(m) = num(kw) {
                out.push((kw, op, m));
            }
        }
    }
    out
}

/// The runtime function (`rt::v::format::…`) that asserts a string format, if gwgen asserts it.
fn string_format(name: &str) -> Option<TokenStream> {
    Some(match name {
        "date-time" => quote! { date_time },
        "date" => quote! { date },
        "time" => quote! { time },
        "email" => quote! { email },
        "uuid" => quote! { uuid },
        "uri" => quote! { uri },
        "uri-reference" => quote! { uri_reference },
        "ipv4" => quote! { ipv4 },
        "ipv6" => quote! { ipv6 },
        "hostname" => quote! { hostname },
        "byte" => quote! { byte },
        _ => return None,
    })
}

/// The runtime's type bits of a schema's `type` (one name or a list; unknown names add none):
/// 0 when it has none.
fn type_mask(o: &Map<String, Value>) -> u8 {
    match o.get("type") {
        Some(Value::String(s)) => type_bit(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .fold(0, |m, n| m | type_bit(n)),
        _ => 0,
    }
}

/// The runtime's type bit (`rt::v::ty`) of a JSON Schema type name; 0 for an unknown one.
pub fn type_bit(name: &str) -> u8 {
    match name {
        "null" => 1,
        "boolean" => 2,
        "integer" => 4,
        "number" => 8,
        "string" => 16,
        "array" => 32,
        "object" => 64,
        _ => 0,
    }
}

/// Keywords that do not change what a schema accepts (in the subschema's own code).
fn is_annotation(key: &str) -> bool {
    matches!(
        key,
        "description"
            | "title"
            | "example"
            | "examples"
            | "default"
            | "deprecated"
            | "$comment"
            | "externalDocs"
            | "xml"
            | "readOnly"
            | "writeOnly"
            | "contentMediaType"
            | "contentEncoding"
    ) || key.starts_with("x-")
}

/// The text of a small schema without its annotations, to share one function between equal
/// schemas; `None` for large ones and for schemas that are resources or anchors (their identity
/// matters to references).
fn small_text(v: &Value) -> Option<String> {
    fn write(v: &Value, out: &mut String, budget: &mut usize) -> Option<()> {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        match v {
            Value::Object(m) => {
                out.push('{');
                for (k, x) in m {
                    if is_annotation(k) {
                        continue;
                    }
                    if matches!(
                        k.as_str(),
                        "$id"
                            | "id"
                            | "$anchor"
                            | "$dynamicAnchor"
                            | "$recursiveAnchor"
                            | "$defs"
                            | "definitions"
                    ) {
                        return None;
                    }
                    out.push_str(&serde_json::to_string(k).ok()?);
                    out.push(':');
                    write(x, out, budget)?;
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    write(x, out, budget)?;
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
        if out.len() > 512 {
            return None;
        }
        Some(())
    }
    let mut out = String::new();
    let mut budget = 64;
    write(v, &mut out, &mut budget)?;
    Some(out)
}

fn esc(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn summarize(v: &Value) -> String {
    truncate(&v.to_string(), 200)
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A URI for a spec file (its canonical path as a `file:` URI), so relative references between
/// files resolve as paths do.
pub fn file_uri(path: &std::path::Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut s = String::from("file://");
    for c in abs.to_string_lossy().chars() {
        match c {
            ' ' => s.push_str("%20"),
            '#' => s.push_str("%23"),
            '%' => s.push_str("%25"),
            '?' => s.push_str("%3F"),
            c => s.push(c),
        }
    }
    if !s.starts_with("file:///") {
        s = s.replacen("file://", "file:///", 1);
    }
    s
}
