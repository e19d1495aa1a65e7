//! gwgen's generated route tree against matchit on GitHub's routes: the time to go from a
//! request path to the matched route with its parameters, for 100, 400 and all 675 distinct
//! path templates (742 lookups, one per template plus 10% that miss).
//!
//! Run: `cargo bench --manifest-path bench/routing/Cargo.toml`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gwgen_bench_routing as b;
use gwgen_runtime::__private_0_1::{Lookup, Params};
use gwgen_runtime::__private_0_1::{normalize, plain_segments_into};

type RouteFn = gwgen_runtime::__private_0_1::RouteFn;

fn requests(templates: &[&str]) -> Vec<String> {
    let mut paths: Vec<String> = templates.iter().enumerate().map(|(i, t)| b::sample_path(t, i)).collect();
    let misses: Vec<String> = paths.iter().step_by(10).map(|p| format!("{p}/no-such-thing")).collect();
    paths.extend(misses);
    paths
}

/// The route tree alone, on segments split beforehand (what matchit's `at` does on a path).
fn gwgen_lookup(route: RouteFn, requests: &[Vec<&str>]) -> usize {
    let mut found = 0;
    let mut params = Params::default();
    for segs in requests {
        params.clear();
        if let Lookup::Found(_) | Lookup::MethodNotAllowed(_) = route("GET", segs, &mut params) {
            found += 1;
        }
    }
    found
}

/// The whole of the gateway's lookup: normalising and percent-decoding the raw path, then the tree.
fn gwgen_lookup_normalizing(route: RouteFn, paths: &[String]) -> usize {
    let mut found = 0;
    for p in paths {
        // As the gateway does it for each request (see the route phase of gwgen_runtime).
        let decoded;
        let decoded_segs: Vec<&str>;
        let mut plain = gwgen_runtime::__private_0_1::Segments::new();
        let mut params = Params::default();
        let segs: &[&str] = if plain_segments_into(p, &mut plain) {
            &plain
        } else {
            decoded = normalize(p).unwrap_or_default();
            decoded_segs = decoded.iter().map(|s| s.as_ref()).collect();
            &decoded_segs
        };
        if let Lookup::Found(_) | Lookup::MethodNotAllowed(_) = route("GET", segs, &mut params) {
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
        // matchit refuses some templates that differ only in parameter names at one position;
        // those are left out of the lookups (gwgen's tree keeps them, which only costs it).
        let mut router = matchit::Router::new();
        let mut accepted = Vec::new();
        for (i, t) in templates.iter().enumerate() {
            if router.insert(*t, i).is_ok() {
                accepted.push(*t);
            }
        }
        let paths = requests(&accepted);
        let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split('/').filter(|s| !s.is_empty()).collect()).collect();
        // All three must agree on what matches before their speed means anything.
        let expected = matchit_lookup(&router, &paths);
        assert_eq!(gwgen_lookup(route, &split), expected, "{name}");
        assert_eq!(gwgen_lookup_normalizing(route, &paths), expected, "{name}");
        eprintln!("{name}: {} templates ({} accepted by matchit), {} lookups, {expected} hits", templates.len(), accepted.len(), paths.len());
        group.throughput(Throughput::Elements(paths.len() as u64));
        group.bench_with_input(BenchmarkId::new("gwgen", name), &split, |bch, p| bch.iter(|| gwgen_lookup(route, p)));
        group.bench_with_input(BenchmarkId::new("gwgen+normalize", name), &paths, |bch, p| bch.iter(|| gwgen_lookup_normalizing(route, p)));
        group.bench_with_input(BenchmarkId::new("matchit", name), &paths, |bch, p| bch.iter(|| matchit_lookup(&router, p)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
