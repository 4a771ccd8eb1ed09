//! The Istio tag list is written in three places that must agree: the schema crate (what the
//! filters and `meltemi bootstrap` use), the test rig's bootstrap, and the mesh config users
//! apply (`deploy/istio/meshconfig-stats.yaml`, `extraStatTags`).

#[test]
fn istio_tags_agree_everywhere() {
    let ours = meltemi_proto::IstioMetrics::stat_tags();
    assert_eq!(ours, meltemi_testkit::config::ISTIO_STAT_TAGS.to_vec());
    let mesh = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/istio/meshconfig-stats.yaml"
    ))
    .expect("meshconfig-stats.yaml");
    let listed: Vec<&str> = mesh
        .split("extraStatTags:")
        .nth(1)
        .expect("extraStatTags")
        .lines()
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .collect();
    assert_eq!(listed, ours);
}
