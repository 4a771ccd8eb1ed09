//! Synthetic inputs for the render benchmark and the scale test: N Dubbo services, each with a
//! DestinationRule (v1, v2) and a MetaRouter of R routes (method + attribute match, 90/10 split).

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use meltemi_controller::crd::{
    Destination, MetaRoute, MetaRouteMatch, MetaRouter, MetaRouterSpec, StringMatch,
    WeightedDestination,
};
use meltemi_controller::inputs::{Inputs, Settings};
use meltemi_controller::istio::{
    DestinationRule, DestinationRuleSpec, ServiceEntry, ServiceEntrySpec, ServicePort, Subset,
    WorkloadEntrySpec,
};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("bench".into()),
        generation: Some(1),
        ..Default::default()
    }
}

pub fn inputs(services: usize, routes: usize) -> Inputs {
    let mut inputs = Inputs {
        settings: Settings::default(),
        ..Default::default()
    };
    for i in 0..services {
        let host = format!("svc-{i}.bench.svc.cluster.local");
        let mut se = ServiceEntry::new(
            &format!("svc-{i}"),
            ServiceEntrySpec {
                hosts: vec![host.clone()],
                addresses: vec![format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)],
                ports: vec![ServicePort {
                    number: 20880,
                    name: "tcp-dubbo".into(),
                    protocol: Some("TCP".into()),
                    target_port: None,
                }],
                endpoints: vec![WorkloadEntrySpec {
                    address: "127.0.0.1".into(),
                    ports: BTreeMap::new(),
                    labels: BTreeMap::from([("version".into(), "v1".into())]),
                }],
                workload_selector: Some(meltemi_controller::istio::WorkloadSelector {
                    labels: BTreeMap::from([("app".into(), format!("svc-{i}"))]),
                }),
                ..Default::default()
            },
        );
        se.metadata = meta(&format!("svc-{i}"));
        inputs.service_entries.push(se);
        let mut dr = DestinationRule::new(
            &format!("svc-{i}"),
            DestinationRuleSpec {
                host: host.clone(),
                traffic_policy: None,
                subsets: ["v1", "v2"]
                    .iter()
                    .map(|v| Subset {
                        name: v.to_string(),
                        labels: BTreeMap::from([("version".into(), v.to_string())]),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        );
        dr.metadata = meta(&format!("svc-{i}"));
        inputs.destination_rules.push(dr);
        let dest = |subset: &str| Destination {
            host: host.clone(),
            subset: Some(subset.into()),
            port: None,
        };
        let mut mr = MetaRouter::new(
            &format!("svc-{i}"),
            MetaRouterSpec {
                hosts: vec![host.clone()],
                routes: (0..routes)
                    .map(|r| MetaRoute {
                        name: Some(format!("r{r}")),
                        match_: Some(MetaRouteMatch {
                            attributes: BTreeMap::from([
                                (
                                    "method".into(),
                                    StringMatch {
                                        exact: Some(format!("method{r}")),
                                        ..Default::default()
                                    },
                                ),
                                (
                                    "user".into(),
                                    StringMatch {
                                        prefix: Some("j".into()),
                                        ..Default::default()
                                    },
                                ),
                            ]),
                        }),
                        route: vec![
                            WeightedDestination {
                                destination: dest("v1"),
                                weight: Some(90),
                            },
                            WeightedDestination {
                                destination: dest("v2"),
                                weight: Some(10),
                            },
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        );
        mr.metadata = meta(&format!("svc-{i}"));
        inputs.meta_routers.push(mr);
    }
    inputs
}
