//! Differential test: gwgen's compiled validators against the `jsonschema` crate as the oracle.
//!
//! Schemas are the request bodies of the corpus's real specs (GitHub, Stripe, APIs.guru, the
//! OpenAPI examples) and randomly generated 2020-12 schemas; instances are generated from each
//! schema (mostly near-valid, then mutated) and at random. Everything is drawn from a seeded
//! generator (`GWGEN_DIFF_SEED` picks another seed, `GWGEN_DIFF_CASES` more instances), compiled
//! into one crate, and every verdict must equal the oracle's.
//!
//! What the oracle does not know is taken out of both sides: OpenAPI 3.0's `nullable` and
//! `discriminator` (gwgen honours them; draft 4 has no such keywords), and `format` (the two
//! implementations check formats differently; formats have their own tests).

use std::collections::BTreeSet;

use gwgen::validator::Dialect;
use serde_json::{json, Map, Value};

use crate::compiled::{run, Group, Outcome};
use crate::support::corpus;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &["a", "b", "c", "id", "name", "zz"];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.below(20) as i64 - 5),
        3 if rng.chance(20) => json!(*rng.pick(&[
            // Tiny and huge numbers: `x / m` rounds to an integer without being one.
            2.589_041_988_477_783_3e-42,
            -1e-300,
            5e-324,
            1e300,
            0.0075,
            19.99,
        ])),
        3 => json!((rng.below(400) as f64 - 100.0) / 4.0),
        4 => Value::String(random_string(rng)),
        5 => json!(*rng.pick(&["", "a", "ab", "abc", "é", "日本", "x1", "2020-01-01"])),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert((*rng.pick(KEYS)).to_string(), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

fn random_string(rng: &mut Rng) -> String {
    let alphabet: Vec<char> = "abcXYZ019-_ .@é".chars().collect();
    (0..rng.below(12)).map(|_| *rng.pick(&alphabet)).collect()
}

/// A random 2020-12 schema over a small vocabulary, so instances hit its keywords often.
fn random_schema(rng: &mut Rng, depth: u32) -> Value {
    if depth > 2 || rng.chance(15) {
        return match rng.below(4) {
            0 => Value::Bool(rng.chance(80)),
            1 => {
                json!({ "type": *rng.pick(&["string", "integer", "number", "object", "array", "boolean", "null"]) })
            }
            2 => json!({ "enum": [random_value(rng, 3), random_value(rng, 3), 1, "a"] }),
            _ => json!({ "const": random_value(rng, 2) }),
        };
    }
    let mut s = Map::new();
    for _ in 0..1 + rng.below(4) {
        let (k, v): (&str, Value) = match rng.below(30) {
            0 => (
                "type",
                json!(*rng.pick(&["string", "integer", "number", "object", "array"])),
            ),
            1 => ("type", json!(["string", "null"])),
            2 => ("minimum", json!(rng.below(5) as i64 - 2)),
            3 => ("exclusiveMaximum", json!(rng.below(10))),
            4 => (
                "multipleOf",
                json!(*rng.pick(&[2.0, 0.5, 3.0, 0.25, 0.0001, 0.01])),
            ),
            5 => ("minLength", json!(rng.below(3))),
            6 => ("maxLength", json!(rng.below(4))),
            7 => (
                "pattern",
                json!(*rng.pick(&["^a", "[0-9]", "^[a-z]+$", "é", "^.{2}$"])),
            ),
            8 => ("minItems", json!(rng.below(3))),
            9 => ("maxItems", json!(rng.below(3))),
            10 => ("uniqueItems", json!(true)),
            11 => ("items", random_schema(rng, depth + 1)),
            12 => (
                "prefixItems",
                json!([random_schema(rng, depth + 1), random_schema(rng, depth + 1)]),
            ),
            13 => ("contains", random_schema(rng, depth + 1)),
            14 => ("minContains", json!(rng.below(3))),
            15 => {
                let mut p = Map::new();
                for _ in 0..1 + rng.below(3) {
                    p.insert((*rng.pick(KEYS)).to_string(), random_schema(rng, depth + 1));
                }
                ("properties", Value::Object(p))
            }
            16 => ("required", json!([*rng.pick(KEYS)])),
            17 => ("additionalProperties", random_schema(rng, depth + 1)),
            18 => (
                "patternProperties",
                json!({ "^[ab]": random_schema(rng, depth + 1) }),
            ),
            19 => ("propertyNames", json!({ "maxLength": 2 })),
            20 => ("minProperties", json!(rng.below(3))),
            21 => (
                "allOf",
                json!([random_schema(rng, depth + 1), random_schema(rng, depth + 1)]),
            ),
            22 => (
                "anyOf",
                json!([random_schema(rng, depth + 1), random_schema(rng, depth + 1)]),
            ),
            23 => (
                "oneOf",
                json!([random_schema(rng, depth + 1), random_schema(rng, depth + 1)]),
            ),
            24 => ("not", random_schema(rng, depth + 1)),
            25 => {
                s.insert("if".into(), random_schema(rng, depth + 1));
                ("then", random_schema(rng, depth + 1))
            }
            26 => ("unevaluatedProperties", random_schema(rng, depth + 1)),
            27 => ("unevaluatedItems", json!(false)),
            28 => ("dependentRequired", json!({ "a": ["b"] })),
            _ if depth == 0 => {
                s.insert(
                    "$defs".into(),
                    json!({ "d": random_schema(rng, depth + 1) }),
                );
                ("$ref", json!("#/$defs/d"))
            }
            _ => ("maxProperties", json!(rng.below(3))),
        };
        s.insert(k.to_string(), v);
    }
    Value::Object(s)
}

/// An instance built from a schema (mostly valid), following local references.
fn instance_of(rng: &mut Rng, schema: &Value, root: &Value, depth: u32) -> Value {
    if depth > 6 {
        return random_value(rng, 3);
    }
    let Some(o) = schema.as_object() else {
        return random_value(rng, depth);
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        if let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p)) {
            return instance_of(rng, target, root, depth + 1);
        }
    }
    if let Some(Value::Array(e)) = o.get("enum") {
        if !e.is_empty() {
            return rng.pick(e).clone();
        }
    }
    if let Some(c) = o.get("const") {
        return c.clone();
    }
    for kw in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(list)) = o.get(kw) {
            if !list.is_empty() && o.get("type").is_none() && o.get("properties").is_none() {
                let branch = rng.pick(list).clone();
                return instance_of(rng, &branch, root, depth + 1);
            }
        }
    }
    let ty = match o.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .next()
            .unwrap_or("string")
            .to_string(),
        _ if o.contains_key("properties") => "object".into(),
        _ if o.contains_key("items") => "array".into(),
        _ => return random_value(rng, depth),
    };
    match ty.as_str() {
        "object" => {
            let mut m = Map::new();
            let required: BTreeSet<&str> = o
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let Some(Value::Object(props)) = o.get("properties") {
                for (k, s) in props {
                    if required.contains(k.as_str()) || rng.chance(40) {
                        m.insert(k.clone(), instance_of(rng, s, root, depth + 1));
                    }
                }
            }
            for k in required {
                if !m.contains_key(k) {
                    m.insert(k.to_string(), random_value(rng, depth + 1));
                }
            }
            if rng.chance(10) {
                m.insert("zz".into(), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        "array" => {
            let items = o.get("items").cloned().unwrap_or(Value::Bool(true));
            Value::Array(
                (0..rng.below(4))
                    .map(|_| instance_of(rng, &items, root, depth + 1))
                    .collect(),
            )
        }
        "integer" => {
            let lo = o.get("minimum").and_then(Value::as_f64).unwrap_or(-10.0);
            json!(lo as i64 + rng.below(20) as i64)
        }
        "number" => json!(rng.below(100) as f64 / 4.0),
        "boolean" => Value::Bool(rng.chance(50)),
        "null" => Value::Null,
        _ => {
            let max = o
                .get("maxLength")
                .and_then(Value::as_u64)
                .unwrap_or(12)
                .min(40);
            let s = random_string(rng);
            Value::String(s.chars().take(max as usize).collect())
        }
    }
}

/// Replaces one random node of `v` by a random value.
fn mutate(rng: &mut Rng, v: &mut Value, depth: u32) {
    let descend = rng.chance(70);
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            if rng.chance(30) {
                m.remove(&k);
            } else if let Some(x) = m.get_mut(&k) {
                mutate(rng, x, depth + 1);
            }
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.below(a.len() as u64) as usize;
            mutate(rng, &mut a[i], depth + 1);
        }
        _ => *v = random_value(rng, depth),
    }
}

/// Removes what the oracle does not know from an OpenAPI 3.0 document.
fn strip_oas30(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("nullable");
            m.remove("discriminator");
            m.remove("format");
            for x in m.values_mut() {
                strip_oas30(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_oas30),
        _ => {}
    }
}

fn strip_formats(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("format").is_some_and(Value::is_string) {
                m.remove("format");
            }
            for x in m.values_mut() {
                strip_formats(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_formats),
        _ => {}
    }
}

/// `v` with every integral float written as an integer.
fn integral(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(integral).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), integral(x))).collect())
        }
        _ => v.clone(),
    }
}

struct Subject {
    uri: String,
    pointer: String,
    dialect: Dialect,
    instances: Vec<Value>,
}

#[test]
fn compiled_validators_agree_with_the_jsonschema_crate() {
    let seed: u64 = std::env::var("GWGEN_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2026);
    let per_schema: usize = std::env::var("GWGEN_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rng = Rng(seed | 1);
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut subjects: Vec<Subject> = Vec::new();

    // Real request bodies.
    let specs = corpus().join("specs");
    let files = [
        "large/github/api.github.com.json",
        "large/stripe/spec3.2022-04-12.json",
        "apis-guru/twilio.com__twilio_studio_v1.json",
        "apis-guru/traccar.org.json",
        "apis-guru/ably.net__control.json",
        "apis-guru/asana.com.json",
    ];
    for (n, rel) in files.iter().enumerate() {
        let text = std::fs::read_to_string(specs.join(rel)).expect("corpus spec");
        let mut doc: Value = serde_json::from_str(&text).expect("JSON spec");
        let v31 = doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"));
        if v31 {
            strip_formats(&mut doc);
        } else {
            strip_oas30(&mut doc);
        }
        let uri = format!("http://gwgen.test/spec{n}.json");
        let mut bodies = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let Some(content) = op
                    .pointer("/requestBody/content")
                    .and_then(Value::as_object)
                else {
                    continue;
                };
                for (media, m) in content {
                    if m.get("schema").is_some() {
                        let esc = path.replace('~', "~0").replace('/', "~1");
                        let media_esc = media.replace('~', "~0").replace('/', "~1");
                        bodies.push(format!(
                            "/paths/{esc}/{method}/requestBody/content/{media_esc}/schema"
                        ));
                    }
                }
            }
        }
        // A spread of each spec's bodies (the large ones have hundreds).
        let step = (bodies.len() / 40).max(1);
        for pointer in bodies.into_iter().step_by(step) {
            let schema = doc.pointer(&pointer).cloned().unwrap_or(Value::Bool(true));
            let mut instances = Vec::new();
            for k in 0..per_schema {
                let mut inst = instance_of(&mut rng, &schema, &doc, 0);
                if k % 2 == 1 {
                    mutate(&mut rng, &mut inst, 0);
                }
                instances.push(inst);
            }
            subjects.push(Subject {
                uri: uri.clone(),
                pointer,
                dialect: if v31 {
                    Dialect::Draft2020
                } else {
                    Dialect::Oas30
                },
                instances,
            });
        }
        docs.push((uri, doc));
    }
    // Random schemas.
    for n in 0..250 {
        let schema = random_schema(&mut rng, 0);
        let uri = format!("http://gwgen.test/random{n}.json");
        let mut instances = Vec::new();
        for k in 0..per_schema {
            let mut inst = if k % 3 == 0 {
                random_value(&mut rng, 0)
            } else {
                instance_of(&mut rng, &schema, &schema, 0)
            };
            if k % 3 == 2 {
                mutate(&mut rng, &mut inst, 0);
            }
            instances.push(inst);
        }
        subjects.push(Subject {
            uri: uri.clone(),
            pointer: String::new(),
            dialect: Dialect::Draft2020,
            instances,
        });
        docs.push((uri, schema));
    }

    let groups: Vec<Group> = subjects
        .iter()
        .map(|s| Group {
            entry: format!(
                "{}#{}",
                s.uri,
                s.pointer.replace('{', "%7B").replace('}', "%7D")
            ),
            dialect: s.dialect,
            formats: false,
            instances: s.instances.iter().map(Value::to_string).collect(),
        })
        .collect();
    let (outcomes, accepted) = run("differential", &docs, &groups);
    println!(
        "instances accepted by streaming checks: {}, by quick checks: {}",
        accepted.streamed, accepted.quick
    );

    let mut compared = 0usize;
    let mut valid = 0usize;
    let mut refused = Vec::new();
    let mut disagreements = Vec::new();
    for (s, outcome) in subjects.iter().zip(&outcomes) {
        let draft = match s.dialect {
            Dialect::Draft2020 => jsonschema::Draft::Draft202012,
            _ => jsonschema::Draft::Draft4,
        };
        let doc = docs
            .iter()
            .find(|(u, _)| *u == s.uri)
            .map(|(_, d)| d)
            .expect("doc");
        let registry = jsonschema::Registry::new()
            .draft(draft)
            .add(s.uri.as_str(), doc)
            .and_then(|b| b.prepare())
            .unwrap_or_else(|e| panic!("the oracle cannot index {}: {e}", s.uri));
        let opts = jsonschema::options()
            .with_draft(draft)
            .should_validate_formats(false)
            .with_registry(&registry);
        let root = json!({ "$ref": format!("{}#{}", s.uri, s.pointer.replace('{', "%7B").replace('}', "%7D")) });
        let oracle = match opts.build(&root) {
            Ok(v) => v,
            Err(e) => panic!("the oracle cannot compile {}#{}: {e}", s.uri, s.pointer),
        };
        match outcome {
            Outcome::Refused(e) => refused.push(format!(
                "{}#{}: {:?}",
                s.uri,
                s.pointer,
                e.first().map(|e| &e.message)
            )),
            Outcome::Verdicts(v) => {
                for (inst, ours) in s.instances.iter().zip(v) {
                    compared += 1;
                    // gwgen reads numbers as JSON numbers, so 1.0 is an integer in every dialect;
                    // the oracle's draft 4 says it is not. Ask it about the same number written
                    // as an integer.
                    let theirs = if s.dialect == Dialect::Draft2020 {
                        oracle.is_valid(inst)
                    } else {
                        oracle.is_valid(&integral(inst))
                    };
                    valid += usize::from(theirs);
                    if *ours != theirs {
                        let schema = docs
                            .iter()
                            .find(|(u, _)| *u == s.uri)
                            .and_then(|(_, d)| d.pointer(&s.pointer))
                            .cloned();
                        disagreements.push(format!(
                            "{}#{}\n  schema: {:.600}\n  instance: {inst}\n  gwgen: {ours}, jsonschema: {theirs}",
                            s.uri,
                            s.pointer,
                            schema.map(|x| x.to_string()).unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
    println!(
        "differential: {} schemas, {compared} instances compared ({valid} valid), {} refused, {} disagreements (seed {seed})",
        subjects.len(),
        refused.len(),
        disagreements.len()
    );
    assert!(
        refused.is_empty(),
        "schemas gwgen refused:\n{}",
        refused.join("\n")
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements; the first:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
