//! Streaming checks: request-body schemas checked while the body is read, with no document
//! built.
//!
//! A schema whose object or array part only uses `properties`, `required`,
//! `additionalProperties`, `items` and the count keywords gets a function `fn qzN(r, c) -> bool`
//! that walks the members or items of the value at the reader's position, and calls the
//! streaming check of each member's schema, or, for a schema without one (strings, numbers,
//! `oneOf`, …), reads that value whole into a small tape and calls the schema's ordinary
//! function. The walk only accepts: wherever it returns `false`, the caller parses the body and
//! runs the ordinary functions, which find and word the error. So a streaming check must never
//! accept what the ordinary function refuses; it may refuse what that function accepts (at the
//! cost of a second pass).
//!
//! A parameter's single value gets a quick check made of the same string and number checks,
//! `fn qsN(v) -> bool`, given the value as its schema reads it (a number, boolean, null or
//! string): the same rule holds for it.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::{Map, Value};

use super::{esc, is_annotation, type_mask, Compiler, Dialect, Job};

/// Keywords that change nothing a streaming check decides: annotations, resource keywords
/// (their effect on references is resolved at generation time) and OpenAPI 3.0's `nullable`
/// (folded into the type bits where it matters).
fn is_neutral(key: &str, dialect: Dialect) -> bool {
    match key {
        "nullable" => dialect == Dialect::Oas30,
        "$schema" | "$id" | "$anchor" | "$defs" | "definitions" => true,
        _ => is_annotation(key),
    }
}

/// Keywords a streaming object or array check carries out itself.
fn is_structural(key: &str, dialect: Dialect) -> bool {
    match key {
        "type"
        | "properties"
        | "required"
        | "additionalProperties"
        | "items"
        | "minItems"
        | "maxItems"
        | "minProperties"
        | "maxProperties" => true,
        // Applies to strings and numbers, which the ordinary function checks.
        "format" => true,
        _ => is_neutral(key, dialect),
    }
}

/// `&& k >= MIN && k <= MAX`, for the count keywords `min` and `max` the schema sets (`k` is the
/// number of members or items read).
fn count_checks(o: &Map<String, Value>, min: &str, max: &str) -> Vec<TokenStream> {
    let min = count(o, min).map(Literal::usize_unsuffixed);
    let max = count(o, max).map(Literal::usize_unsuffixed);
    let min = min.map(|n| quote! { && k >= #n });
    let max = max.map(|n| quote! { && k <= #n });
    min.into_iter().chain(max).collect()
}

/// Keywords a streaming check of a string, number, boolean or null carries out itself.
fn is_leaf(key: &str, dialect: Dialect) -> bool {
    match key {
        "type" | "enum" | "minLength" | "maxLength" | "pattern" | "format" | "minimum"
        | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => true,
        _ => is_neutral(key, dialect),
    }
}

fn count(o: &Map<String, Value>, key: &str) -> Option<usize> {
    o.get(key)
        .and_then(Value::as_f64)
        .filter(|f| *f >= 0.0)
        .map(|f| f as usize)
}

impl<'r> Compiler<'r> {
    /// The streaming check of the schema compiled as function `id`, if it can have one.
    pub fn stream_entry(&mut self, id: usize) -> Option<Ident> {
        // Annotations (`unevaluated*`) and dynamic scopes need no care here: a schema that uses
        // them is not walked, and a walked one calls its members' functions as the ordinary
        // function does (with no annotations to give back).
        if !self.opts.emit {
            return None;
        }
        let z = self.stream_of(id);
        self.drain();
        z.map(|z| self.stream_ident(z))
    }

    fn stream_ident(&self, z: usize) -> Ident {
        format_ident!("{}z{}", self.opts.prefix, z)
    }

    /// The check of the value at the reader's position against schema `id`.
    fn stream_call(&mut self, id: usize) -> TokenStream {
        match self.stream_of(id) {
            Some(z) => {
                let f = self.stream_ident(z);
                quote! { #f(r, c) }
            }
            None => {
                let f = self.fn_ident(id);
                quote! { r.whole(c, #f) }
            }
        }
    }

    fn stream_of(&mut self, id: usize) -> Option<usize> {
        if let Some(z) = self.streams.get(&id) {
            return *z;
        }
        // Until decided (a cycle of bare references lands here): none.
        self.streams.insert(id, None);
        let job = self.queued(id)?;
        let Value::Object(o) = job.value else {
            return None;
        };
        if let Some(target) = self.bare_target(&job, o)? {
            let z = self.stream_of(target);
            self.streams.insert(id, z);
            return z;
        }
        if o.keys().all(|k| is_leaf(k, job.dialect)) {
            return self.stream_leaf(&job, o);
        }
        if !o.keys().all(|k| is_structural(k, job.dialect)) {
            return None;
        }
        let object = o.contains_key("properties") || o.contains_key("additionalProperties");
        let array = match o.get("items") {
            Some(Value::Array(_)) => return None,
            Some(_) => true,
            None => false,
        };
        if !object && !array {
            return None;
        }
        let props = o.get("properties").and_then(Value::as_object);
        if props.map_or(0, Map::len) > 64 {
            return None;
        }
        // Each required property is one of `properties`, told by its bit.
        let mut required = 0u64;
        for name in o
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let at = name
                .as_str()
                .and_then(|n| props.and_then(|p| p.keys().position(|k| k == n)))?;
            required |= 1 << at;
        }
        let z = self.stream_fns.len();
        self.stream_fns.push(TokenStream::new());
        self.streams.insert(id, Some(z));
        let mut arms = Vec::new();
        if object {
            arms.push(self.stream_object(&job, o, required));
        }
        if array {
            arms.push(self.stream_array(&job, o));
        }
        let name = self.stream_ident(z);
        let f = self.fn_ident(id);
        self.stream_fns[z] = quote! {
            #[allow(unused_variables, unused_mut, unused_parens, clippy::all)]
            pub(crate) fn #name(r: &mut rt::v::Stream<'_>, c: &mut rt::v::Ctx) -> bool {
                match r.peek() {
                    #(#arms)*
                    _ => r.whole(c, #f),
                }
            }
        };
        Some(z)
    }

    /// The check of a schema for strings, numbers, booleans and null, made of the keywords
    /// [`is_leaf`] names, as the ordinary function makes them (`generic_checks`,
    /// `number_checks`, `string_checks`). An object or array is read whole.
    fn stream_leaf(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> Option<usize> {
        let leaf = self.leaf(job, o)?;
        // A kind the schema refuses: `false`; one with nothing to check: skipped; else read
        // and checked.
        let arm = |checks: Option<TokenStream>, read: TokenStream| match checks {
            None => quote! { false },
            Some(t) if t.is_empty() => quote! { r.skip() },
            Some(t) => quote! {
                match #read {
                    Some(v) => #t,
                    None => false,
                }
            },
        };
        let string_arm = arm(leaf.string.as_ref().map(wrap_string), quote! { r.string() });
        let number_arm = arm(leaf.number.as_ref().map(wrap_number), quote! { r.number() });
        let ok = |allowed: bool| {
            if allowed {
                quote! { r.skip() }
            } else {
                quote! { false }
            }
        };
        let (bool_arm, null_arm) = (ok(leaf.boolean), ok(leaf.null));
        let id = job.id;
        let z = self.stream_fns.len();
        self.streams.insert(id, Some(z));
        let name = self.stream_ident(z);
        let f = self.fn_ident(id);
        self.stream_fns.push(quote! {
            #[allow(unused_variables, unused_mut, unused_parens, clippy::all)]
            pub(crate) fn #name(r: &mut rt::v::Stream<'_>, c: &mut rt::v::Ctx) -> bool {
                match r.peek() {
                    b'"' => #string_arm,
                    b'-' | b'0'..=b'9' => #number_arm,
                    b't' | b'f' => #bool_arm,
                    b'n' => #null_arm,
                    _ => r.whole(c, #f),
                }
            }
        });
        Some(z)
    }

    /// The quick check of a parameter's single value against schema `id`, when the schema is
    /// one for strings, numbers, booleans and null made of the keywords a streaming check of
    /// such a value takes: `fn qsN(v: rt::v::Scalar<'_>) -> bool`, given the value as the
    /// parameter's schema reads it.
    /// Like a streaming check it only accepts: where it says no, the value is checked by the
    /// schema's ordinary function, which words the error.
    pub fn scalar_entry(&mut self, id: usize) -> Option<Ident> {
        if !self.opts.emit {
            return None;
        }
        let z = self.scalar_of(id);
        // References followed may have queued schemas.
        self.drain();
        z.map(|z| self.scalar_ident(z))
    }

    fn scalar_of(&mut self, id: usize) -> Option<usize> {
        if let Some(z) = self.scalars.get(&id) {
            return *z;
        }
        // Until decided (a cycle of bare references lands here): none.
        self.scalars.insert(id, None);
        let job = self.queued(id)?;
        let Value::Object(o) = job.value else {
            return None;
        };
        if let Some(target) = self.bare_target(&job, o)? {
            let z = self.scalar_of(target);
            self.scalars.insert(id, z);
            return z;
        }
        if !o.keys().all(|k| is_leaf(k, job.dialect)) {
            return None;
        }
        let leaf = self.leaf(&job, o)?;
        let arm = |checks: Option<TokenStream>| match checks {
            None => quote! { false },
            Some(t) if t.is_empty() => quote! { true },
            Some(t) => t,
        };
        let string_arm = arm(leaf.string.as_ref().map(wrap_string));
        let number_arm = arm(leaf.number.as_ref().map(wrap_number));
        let (boolean, null) = (leaf.boolean, leaf.null);
        let z = self.stream_fns.len();
        self.scalars.insert(id, Some(z));
        let name = self.scalar_ident(z);
        self.stream_fns.push(quote! {
            #[allow(unused_variables, unused_mut, unused_parens, clippy::all)]
            pub(crate) fn #name(v: rt::v::Scalar<'_>) -> bool {
                match v {
                    rt::v::Scalar::Str(v) => #string_arm,
                    rt::v::Scalar::Num(v) => #number_arm,
                    rt::v::Scalar::Bool => #boolean,
                    rt::v::Scalar::Null => #null,
                }
            }
        });
        Some(z)
    }

    /// The queued schema of function `id`.
    fn queued(&self, id: usize) -> Option<Job<'r>> {
        let job = self.jobs.get(id)?;
        Some(Job {
            id,
            value: job.value,
            resolver: job.resolver.clone(),
            dialect: job.dialect,
            location: job.location.clone(),
        })
    }

    /// The function a schema stands for when it is a bare `$ref` (or has any `$ref` in draft 4
    /// and OpenAPI 3.0, where it replaces its siblings): `Some(Some(target))`; `Some(None)` for
    /// a schema without `$ref`; `None` for one whose `$ref` these checks do not follow.
    fn bare_target(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> Option<Option<usize>> {
        let Some(Value::String(r)) = o.get("$ref") else {
            return Some(None);
        };
        let bare = o.keys().all(|k| k == "$ref" || is_annotation(k));
        if !(bare || job.dialect.legacy()) {
            return None;
        }
        self.reference(job, r, "$ref").map(Some)
    }

    fn scalar_ident(&self, z: usize) -> Ident {
        format_ident!("{}s{}", self.opts.prefix, z)
    }

    /// What a string, number, boolean or null must be to pass a schema made of the keywords
    /// [`is_leaf`] names, as the ordinary function checks them (`generic_checks`,
    /// `number_checks`, `string_checks`); `None` when the schema has a keyword value these
    /// checks do not take (an `enum` of other than strings, say).
    fn leaf(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> Option<Leaf> {
        let typed = o.contains_key("type");
        let mut types = type_mask(o);
        let nullable =
            job.dialect == Dialect::Oas30 && o.get("nullable") == Some(&Value::Bool(true));
        if nullable {
            types |= 1;
        }
        let allows = |bit: u8| !typed || types & bit != 0;
        let strings: Option<Vec<Literal>> = match o.get("enum") {
            None => None,
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(Literal::string)
                    .collect(),
            ),
            Some(_) => return None,
        };
        let mut text = Vec::new();
        if let Some(lits) = &strings {
            text.push(quote! { matches!(s.as_ref(), #(#lits)|*) });
        }
        let min_len = count(o, "minLength").map(Literal::usize_unsuffixed);
        let max_len = count(o, "maxLength").map(Literal::usize_unsuffixed);
        if min_len.is_some() || max_len.is_some() {
            let min = min_len.map(|n| quote! { && n >= #n });
            let max = max_len.map(|n| quote! { && n <= #n });
            text.push(quote! { ({ let n = rt::v::chars(&s); true #min #max }) });
        }
        if let Some(Value::String(p)) = o.get("pattern") {
            let loc = format!("{}/pattern", job.location);
            let re = self.pattern(&loc, p)?;
            text.push(quote! { #re.is_match(&s) });
        }
        let format = o
            .get("format")
            .and_then(Value::as_str)
            .filter(|_| self.opts.formats);
        if let Some(f) = format.and_then(super::string_format) {
            text.push(quote! { rt::v::format::#f(&s) });
        }
        let mut number = Vec::new();
        if !allows(8) {
            number.push(quote! { whole });
        }
        for (_, op, x) in super::bounds(o, job.dialect.legacy()) {
            let x = Literal::f64_unsuffixed(x);
            number.push(match op {
                ">=" => quote! { x >= #x },
                ">" => quote! { x > #x },
                "<=" => quote! { x <= #x },
                _ => quote! { x < #x },
            });
        }
        match format {
            Some("int32") => number.push(quote! { rt::v::format::int32(x) }),
            Some("int64") => number.push(quote! { rt::v::format::int64(x) }),
            _ => {}
        }
        let joined = |checks: Vec<TokenStream>| {
            if checks.is_empty() {
                TokenStream::new()
            } else {
                quote! { #(#checks)&&* }
            }
        };
        Some(Leaf {
            string: allows(16).then(|| joined(text)),
            number: (allows(4 | 8) && strings.is_none()).then(|| joined(number)),
            boolean: allows(2) && strings.is_none(),
            null: allows(1) && (strings.is_none() || nullable),
        })
    }

    fn stream_object(
        &mut self,
        job: &Job<'r>,
        o: &'r Map<String, Value>,
        required: u64,
    ) -> TokenStream {
        let types = type_mask(o);
        if o.contains_key("type") && types & 64 == 0 {
            // An object where none is allowed: the ordinary function words it.
            return quote! { b'{' => false, };
        }
        let props = o.get("properties").and_then(Value::as_object);
        let mut arms = Vec::new();
        for (bit, (name, s)) in props.into_iter().flatten().enumerate() {
            let id = self.sub(job, s, &format!("properties/{}", esc(name)));
            let refused = !self.refused_property(job, s).is_empty();
            let call = if refused {
                quote! { false }
            } else {
                self.stream_call(id)
            };
            let bit = Literal::u64_unsuffixed(1u64 << bit);
            let key = Literal::byte_string(name.as_bytes());
            arms.push(quote! { #key => seen & #bit == 0 && { seen |= #bit; #call }, });
        }
        let other = match o.get("additionalProperties") {
            Some(Value::Bool(false)) => quote! { false },
            None | Some(Value::Bool(true)) => quote! { others.add(key) && r.skip() },
            Some(s) => {
                let id = self.sub(job, s, "additionalProperties");
                let call = self.stream_call(id);
                quote! { others.add(key) && #call }
            }
        };
        let counts = count_checks(o, "minProperties", "maxProperties");
        let required = Literal::u64_unsuffixed(required);
        quote! {
            b'{' => {
                if !r.open() { return false; }
                let mut seen = 0u64;
                let mut others = rt::v::Names::default();
                let mut k = 0usize;
                loop {
                    let key = match r.member(k) {
                        rt::v::Step::Member(key) => key,
                        rt::v::Step::End => break,
                        rt::v::Step::Stop => return false,
                    };
                    k += 1;
                    let ok = match key {
                        #(#arms)*
                        _ => #other,
                    };
                    if !ok { return false; }
                }
                seen & #required == #required #(#counts)*
            }
        }
    }

    fn stream_array(&mut self, job: &Job<'r>, o: &'r Map<String, Value>) -> TokenStream {
        let types = type_mask(o);
        if o.contains_key("type") && types & 32 == 0 {
            return quote! { b'[' => false, };
        }
        let call = match o.get("items") {
            Some(s) => {
                let id = self.sub(job, s, "items");
                self.stream_call(id)
            }
            None => quote! { r.skip() },
        };
        let counts = count_checks(o, "minItems", "maxItems");
        quote! {
            b'[' => {
                if !r.open() { return false; }
                let mut k = 0usize;
                loop {
                    match r.item(k) {
                        Some(true) => {}
                        Some(false) => break,
                        None => return false,
                    }
                    if !#call { return false; }
                    k += 1;
                }
                true #(#counts)*
            }
        }
    }
}

/// The checks of a leaf schema: for each kind of value, `None` when the schema refuses that
/// kind, else the checks it must pass (empty: none).
struct Leaf {
    /// On a string `s`.
    string: Option<TokenStream>,
    /// On a number `x`, `whole` when it is integral.
    number: Option<TokenStream>,
    /// Whether a boolean passes.
    boolean: bool,
    /// Whether null passes.
    null: bool,
}

/// String checks (on `s`) given the value read, `v`.
fn wrap_string(checks: &TokenStream) -> TokenStream {
    if checks.is_empty() {
        return TokenStream::new();
    }
    quote! { { let s = v; #checks } }
}

/// Number checks (on `x` and `whole`) given the value read, `v`.
fn wrap_number(checks: &TokenStream) -> TokenStream {
    if checks.is_empty() {
        return TokenStream::new();
    }
    quote! { { let (x, whole) = v; #checks } }
}
