//! Render benchmark: 10,000 Dubbo services with 10 routes each (target: under 1 s per full render).

use criterion::{criterion_group, criterion_main, Criterion};
use meltemi_controller::render::render_all;

/// The allocator of the `meltemi` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "scale_inputs.rs"]
mod scale_inputs;

fn bench(c: &mut Criterion) {
    let big = scale_inputs::inputs(10_000, 10);
    let r = render_all(&big).expect("render");
    assert_eq!(r.filters.len(), 20_000);
    let mut g = c.benchmark_group("render");
    g.sample_size(10);
    g.bench_function("10k_services_x_10_routes", |b| {
        b.iter(|| render_all(&big).expect("render"))
    });
    // The same without Istio mTLS on the bridge twins (`--no-auto-mtls`): the twins' TLS context
    // is most of the JSON a render builds.
    let mut plain = big.clone();
    plain.settings.auto_mtls = false;
    g.bench_function("10k_services_x_10_routes_no_auto_mtls", |b| {
        b.iter(|| render_all(&plain).expect("render"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
