//! The render of 10,000 services x 10 routes, timed once in whatever profile the tests run in
//! (the criterion bench `benches/render.rs` measures it optimized). Prints the time; fails only if
//! it exceeds 30 s, which would mean something quadratic crept in.

use std::time::Instant;

use meltemi_controller::render::render_all;

#[path = "../benches/scale_inputs.rs"]
mod scale_inputs;

#[test]
fn ten_thousand_services_ten_routes() {
    let inputs = scale_inputs::inputs(10_000, 10);
    let t = Instant::now();
    let r = render_all(&inputs).expect("render");
    let took = t.elapsed();
    assert_eq!(r.filters.len(), 20_000);
    assert_eq!(r.route_tables.len(), 10_000);
    eprintln!("render of 10,000 services x 10 routes: {took:?}");
    assert!(took.as_secs() < 30, "{took:?}");
}
