//! The reconcile pass against a mocked API server (tower-test): it lists every input, applies the
//! rendered EnvoyFilters with server-side apply (field manager `meltemi`, forced), deletes a stale
//! EnvoyFilter of ours, and writes MetaRouter status with observedGeneration; an invalid MetaRouter
//! becomes an `Accepted=False` condition, not an error of the loop.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use meltemi_controller::inputs::{Inputs, Settings};
use meltemi_controller::reconcile::reconcile_once;
use meltemi_controller::serve::Shared;
use serde_json::{json, Value};

type Log = Arc<Mutex<Vec<(String, String, Value)>>>;

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
}

/// Serves lists of `inputs` plus one stale EnvoyFilter; echoes patches; records every request.
fn mock_server(inputs: &Inputs, log: Log) -> kube::Client {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ses: Vec<Value> = inputs
        .service_entries
        .iter()
        .map(|x| serde_json::to_value(x).unwrap())
        .collect();
    let drs: Vec<Value> = inputs
        .destination_rules
        .iter()
        .map(|x| serde_json::to_value(x).unwrap())
        .collect();
    let mrs: Vec<Value> = inputs
        .meta_routers
        .iter()
        .map(|x| serde_json::to_value(x).unwrap())
        .collect();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let body = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let path = uri.split('?').next().unwrap().to_string();
            log.lock()
                .unwrap()
                .push((method.clone(), uri.clone(), body.clone()));
            let resp = match (method.as_str(), path.as_str()) {
                ("GET", "/apis/networking.istio.io/v1beta1/serviceentries") => {
                    list("ServiceEntry", ses.clone())
                }
                ("GET", "/apis/networking.istio.io/v1beta1/destinationrules") => {
                    list("DestinationRule", drs.clone())
                }
                ("GET", "/apis/networking.istio.io/v1beta1/gateways") => list("Gateway", vec![]),
                ("GET", "/apis/networking.istio.io/v1beta1/virtualservices") => {
                    list("VirtualService", vec![])
                }
                ("GET", "/apis/metaprotocol.aeraki.io/v1alpha1/metarouters") => {
                    list("MetaRouter", mrs.clone())
                }
                ("GET", "/api/v1/services") => list("Service", vec![]),
                ("GET", "/apis/redis.aeraki.io/v1alpha1/redisservices") => {
                    list("RedisService", vec![])
                }
                ("GET", "/apis/redis.aeraki.io/v1alpha1/redisdestinations") => {
                    list("RedisDestination", vec![])
                }
                ("GET", "/apis/networking.istio.io/v1alpha3/envoyfilters") => list(
                    "EnvoyFilter",
                    vec![json!({
                        "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
                        "metadata": {"name": "meltemi-outbound-gone-1", "namespace": "istio-system",
                                     "labels": {"app.kubernetes.io/managed-by": "meltemi"}},
                        "spec": {"configPatches": []},
                    })],
                ),
                ("PATCH", _) => {
                    let mut b = body.clone();
                    if let Some(o) = b.as_object_mut() {
                        o.entry("metadata").or_insert(json!({"name": "echo"}));
                        o.entry("spec").or_insert(json!({}));
                    }
                    b
                }
                ("DELETE", _) => {
                    json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "metadata": {}})
                }
                _ => panic!("unexpected request {method} {uri}"),
            };
            send.send_response(
                Response::builder()
                    .status(200)
                    .body(Body::from(serde_json::to_vec(&resp).unwrap()))
                    .unwrap(),
            );
        }
    });
    kube::Client::new(svc, "default")
}

fn inputs(text: &str) -> Inputs {
    let mut i = Inputs {
        settings: Settings {
            default_namespace: "demo".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut errors = Vec::new();
    i.add_yaml("test", text, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    for se in &mut i.service_entries {
        se.metadata.uid = Some("uid-se-1".into());
    }
    i
}

fn dubbo() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/protocols/dubbo.yaml"),
    )
    .unwrap()
}

#[tokio::test]
async fn applies_prunes_and_writes_status() {
    let inputs = inputs(&dubbo());
    let log: Log = Arc::default();
    let client = mock_server(&inputs, log.clone());
    let shared = Shared::default();
    let summary = reconcile_once(&client, &inputs.settings, &shared)
        .await
        .expect("reconcile");
    assert_eq!(
        summary.applied,
        [
            "demo/meltemi-inbound-dubbo-demo-20880",
            "istio-system/meltemi-outbound-dubbo-demo-demo-svc-cluster-local-20880"
        ]
    );
    assert_eq!(summary.pruned, ["istio-system/meltemi-outbound-gone-1"]);
    assert_eq!(summary.statuses, ["MetaRouter demo/dubbo-demo"]);

    let log = log.lock().unwrap();
    let patches: Vec<_> = log
        .iter()
        .filter(|(m, u, _)| m == "PATCH" && u.contains("/envoyfilters/"))
        .collect();
    assert_eq!(patches.len(), 2);
    for (_, uri, body) in &patches {
        assert!(
            uri.contains("fieldManager=meltemi") && uri.contains("force=true"),
            "{uri}"
        );
        assert_eq!(body["kind"], "EnvoyFilter");
    }
    let inbound = &patches
        .iter()
        .find(|(_, u, _)| u.contains("/namespaces/demo/"))
        .unwrap()
        .2;
    assert_eq!(
        inbound["metadata"]["ownerReferences"][0]["uid"], "uid-se-1",
        "same-namespace filters are owned"
    );
    assert!(log.iter().any(|(m, u, _)| m == "DELETE"
        && u.contains("/namespaces/istio-system/envoyfilters/meltemi-outbound-gone-1")));
    let status = &log
        .iter()
        .find(|(m, u, _)| m == "PATCH" && u.contains("/metarouters/dubbo-demo/status"))
        .unwrap()
        .2;
    assert_eq!(status["status"]["observedGeneration"], 4);
    assert_eq!(status["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(status["status"]["conditions"][0]["status"], "True");
    assert_eq!(status["status"]["conditions"][0]["observedGeneration"], 4);
    // Route tables are published for the route endpoint.
    assert_eq!(shared.store.versions().len(), 1);
}

#[tokio::test]
async fn invalid_spec_becomes_a_condition() {
    let text = dubbo().replace("subset: v2}\n      timeout", "subset: v9}\n      timeout");
    let inputs = inputs(&text);
    let log: Log = Arc::default();
    let client = mock_server(&inputs, log.clone());
    reconcile_once(&client, &inputs.settings, &Shared::default())
        .await
        .expect("invalid specs do not fail the pass");
    let log = log.lock().unwrap();
    let status = &log
        .iter()
        .find(|(m, u, _)| m == "PATCH" && u.contains("/metarouters/dubbo-demo/status"))
        .unwrap()
        .2;
    let accepted = &status["status"]["conditions"][0];
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "InvalidSpec");
    let msg = accepted["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.routes[0].route[0].destination.subset") && msg.contains("\"v9\""),
        "{msg}"
    );
}
