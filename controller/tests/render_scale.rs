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

/// Above the parallel threshold the render splits the service ports over threads; the result must
/// equal rendering each service on its own (filters and reports of a service depend only on it).
#[test]
fn parallel_render_equals_per_service_renders() {
    let n = 700;
    let all = scale_inputs::inputs(n, 3);
    let whole = render_all(&all).expect("render");
    let mut filters = Vec::new();
    let mut reports = std::collections::BTreeMap::new();
    for i in 0..n {
        let one = meltemi_controller::inputs::Inputs {
            service_entries: vec![all.service_entries[i].clone()],
            destination_rules: vec![all.destination_rules[i].clone()],
            meta_routers: vec![all.meta_routers[i].clone()],
            settings: all.settings.clone(),
            ..Default::default()
        };
        let r = render_all(&one).expect("render one");
        filters.extend(r.filters);
        reports.extend(r.reports);
    }
    filters.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    assert_eq!(whole.filters.len(), filters.len());
    let yaml = meltemi_controller::render::to_yaml;
    assert!(
        yaml(&whole.filters) == yaml(&filters),
        "parallel render differs"
    );
    assert_eq!(whole.reports, reports);
}
