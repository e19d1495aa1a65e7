//! gwgen's generated route tree against matchit on GitHub's routes: the time to go from a
//! request path to the matched route with its parameters, for 100, 400 and all 675 distinct
//! path templates (742 lookups, one per template plus 10% that miss).
//!
//! Run: `cargo bench --manifest-path bench/routing/Cargo.toml`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gwgen_bench_routing as b;
use gwgen_runtime::__private_0_1::{Lookup, Method, Params};
use gwgen_runtime::path::normalize;

type RouteFn = fn(&Method, &[&str], &mut Params) -> Lookup;

fn requests(templates: &[&str]) -> Vec<String> {
    let mut paths: Vec<String> = templates.iter().enumerate().map(|(i, t)| b::sample_path(t, i)).collect();
    let misses: Vec<String> = paths.iter().step_by(10).map(|p| format!("{p}/no-such-thing")).collect();
    paths.extend(misses);
    paths
}

fn gwgen_lookup(route: RouteFn, paths: &[String]) -> usize {
    let mut found = 0;
    let mut params = Params::default();
    for p in paths {
        params.clear();
        let segments = normalize(p).unwrap_or_default();
        let segs: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
        if let Lookup::Found(_) | Lookup::MethodNotAllowed(_) = route(&Method::GET, &segs, &mut params) {
            found += 1;
        }
    }
    found
}

fn matchit_lookup(router: &matchit::Router<usize>, paths: &[String]) -> usize {
    let mut found = 0;
    for p in paths {
        if router.at(p).is_ok() {
            found += 1;
        }
    }
    found
}

fn bench(c: &mut Criterion) {
    let sets: [(&str, &[&str], RouteFn); 3] = [
        ("100", b::TEMPLATES_100, b::routes_100::route),
        ("400", b::TEMPLATES_400, b::routes_400::route),
        ("all", b::TEMPLATES_ALL, b::routes_all::route),
    ];
    let mut group = c.benchmark_group("route lookup");
    for (name, templates, route) in sets {
        let paths = requests(templates);
        let mut router = matchit::Router::new();
        for (i, t) in templates.iter().enumerate() {
            router.insert(*t, i).expect("matchit accepts GitHub's templates");
        }
        // Both must agree on what matches before their speed means anything.
        assert_eq!(gwgen_lookup(route, &paths), matchit_lookup(&router, &paths), "{name}");
        group.throughput(Throughput::Elements(paths.len() as u64));
        group.bench_with_input(BenchmarkId::new("gwgen", name), &paths, |bch, p| bch.iter(|| gwgen_lookup(route, p)));
        group.bench_with_input(BenchmarkId::new("matchit", name), &paths, |bch, p| bch.iter(|| matchit_lookup(&router, p)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
