//! Parse + validate a request body: gwgen's compiled validator working from the bytes (as a parsed
//! document, and in one pass as the gateway checks a valid body first), against
//! `serde_json::from_slice::<Value>` followed by a `jsonschema` validator compiled once (formats
//! asserted on both sides). Run `python3 bench/validation/ratios.py` afterwards for the ratios.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gwgen_bench_validation::{body, gwgen_stream, gwgen_validate, SCHEMA};

fn bench(c: &mut Criterion) {
    let schema: serde_json::Value = serde_json::from_slice(SCHEMA).expect("schema");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("jsonschema compiles the schema");
    for (name, annotations) in [("1KB", 2usize), ("10KB", 28)] {
        let input = body(annotations);
        assert!(gwgen_validate(&input), "gwgen refuses the {name} body");
        assert!(
            gwgen_stream(&input),
            "gwgen's streaming check refuses the {name} body"
        );
        let value: serde_json::Value = serde_json::from_slice(&input).expect("json");
        assert!(
            validator.is_valid(&value),
            "jsonschema refuses the {name} body"
        );
        let mut g = c.benchmark_group(format!("validate-{name}"));
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function("gwgen", |b| {
            b.iter(|| gwgen_validate(std::hint::black_box(&input)))
        });
        g.bench_function("gwgen-stream", |b| {
            b.iter(|| gwgen_stream(std::hint::black_box(&input)))
        });
        g.bench_function("serde_json+jsonschema", |b| {
            b.iter(|| {
                let v: serde_json::Value =
                    serde_json::from_slice(std::hint::black_box(&input)).expect("json");
                validator.is_valid(&v)
            })
        });
        g.bench_function("serde_json-only", |b| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(std::hint::black_box(&input)).is_ok()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
