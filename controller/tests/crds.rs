//! `deploy/crds.yaml` is generated from the Rust types (`meltemi crds`); this fails when it drifts.
//! Regenerate: `cargo run -p meltemi-controller -- crds > deploy/crds.yaml`.

#[test]
fn deploy_crds_match_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
    let want = meltemi_controller::crd::crds_yaml();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "deploy/crds.yaml drifted from controller/src/crd.rs; regenerate it"
    );
}

#[test]
fn crds_have_status_printer_columns_and_accept_aeraki_fields() {
    let y = meltemi_controller::crd::crds_yaml();
    for needle in [
        "metarouters.metaprotocol.aeraki.io",
        "redisservices.redis.aeraki.io",
        "redisdestinations.redis.aeraki.io",
        "subresources",
        "status: {}",
        "additionalPrinterColumns",
        "mirrorPercentage",
        "localRateLimit",
        "observedGeneration",
    ] {
        assert!(y.contains(needle), "missing {needle}");
    }
}

/// Every Aeraki example object passes our derived CRD schemas (unchanged manifests apply).
#[test]
fn aeraki_examples_pass_our_crd_schemas() {
    use kube::CustomResourceExt;
    use meltemi_controller::crd::{MetaRouter, RedisDestination, RedisService};
    let schemas: Vec<(String, serde_json::Value)> = [
        MetaRouter::crd(),
        RedisService::crd(),
        RedisDestination::crd(),
    ]
    .into_iter()
    .map(|c| {
        let v = serde_json::to_value(&c.spec.versions[0].schema).unwrap();
        (c.spec.names.kind.clone(), v["openAPIV3Schema"].clone())
    })
    .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/aeraki");
    let mut checked = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            use serde::Deserialize;
            let Ok(v) = serde_json::Value::deserialize(doc) else {
                continue;
            };
            let kind = v["kind"].as_str().unwrap_or("");
            if let Some((_, schema)) = schemas.iter().find(|(k, _)| k == kind) {
                let errs = meltemi_controller::schema::check_object(&v, schema);
                assert!(errs.is_empty(), "{}: {errs:#?}", e.path().display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "checked {checked}");
}
