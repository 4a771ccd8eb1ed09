//! The hand-written prost types agree with `meltemi/config/v1/config.proto`: a config that sets every
//! field of every message is encoded by our types, decoded by a dynamic decoder built from the
//! `.proto` (compiled by `protox`, pure Rust), and both proto3 JSON forms must be equal; the reverse
//! direction too. A field with a wrong number, type or JSON name fails here.

use std::collections::BTreeSet;

use meltemi_proto::*;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value};

fn pool() -> DescriptorPool {
    let root = concat!(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(["meltemi/config/v1/config.proto"], [root]).expect("proto compiles");
    DescriptorPool::from_file_descriptor_set(fds).expect("descriptor pool")
}

/// Sets every field of every message at least once (all three StringMatch kinds included).
fn full() -> Config {
    let m = RouteMatch {
        method: Some(StringMatch::exact("sayHello")),
        attributes: [
            ("version".to_string(), StringMatch::prefix("v2")),
            ("foo".to_string(), StringMatch::regex("ba.")),
        ]
        .into(),
    };
    Config {
        protocol: Protocol::Thrift as i32,
        stat_prefix: "svc".into(),
        access_log: true,
        on_decode_error: OnDecodeError::Passthrough as i32,
        max_frame_bytes: 1024,
        max_held_bytes: 4096,
        worker_held_budget_bytes: 1 << 20,
        redis: Some(meltemi_proto::RedisRouting {
            routes: vec![meltemi_proto::RedisRoute {
                prefix: "a:".into(),
                cluster: "ra".into(),
                remove_prefix: true,
            }],
            case_insensitive: true,
            catch_all_route: Some(meltemi_proto::RedisRoute {
                prefix: String::new(),
                cluster: "rc".into(),
                remove_prefix: false,
            }),
            clusters: vec![meltemi_proto::RedisUpstream {
                name: "ra".into(),
                address: "127.0.0.1:6379".into(),
            }],
        }),
        methods: vec!["add".into(), "Calc:get".into()],
        routes: Some(RouteTable {
            version: u64::MAX - 1,
            primary_cluster: "calc-v1".into(),
            retry_budget: Some(RetryBudget {
                budget_percent: Some(25.5),
                min_retry_concurrency: Some(4),
            }),
            services: vec![ServiceRoutes {
                name: "Calc".into(),
                routes: vec![Route {
                    name: "r".into(),
                    r#match: Some(m.clone()),
                    action: Some(RouteAction {
                        cluster: "c".into(),
                        weighted_clusters: vec![WeightedCluster {
                            cluster: "w".into(),
                            weight: 3,
                        }],
                    }),
                    rate_limit: Some(LocalRateLimit {
                        token_bucket: Some(TokenBucket {
                            max_tokens: 5,
                            tokens_per_fill: 2,
                            fill_interval_ms: 1000,
                        }),
                        conditions: vec![RateLimitCondition {
                            r#match: Some(m),
                            token_bucket: Some(TokenBucket {
                                max_tokens: 1,
                                tokens_per_fill: 1,
                                fill_interval_ms: 10,
                            }),
                        }],
                    }),
                    mirror: Some(Mirror {
                        cluster: "m".into(),
                        percent: 12.5,
                    }),
                    timeout_ms: 250,
                    retry: Some(RetryPolicy {
                        attempts: 2,
                        idempotent_methods: vec!["get".into()],
                    }),
                }],
                rate_limit: Some(LocalRateLimit {
                    token_bucket: Some(TokenBucket {
                        max_tokens: 9,
                        tokens_per_fill: 9,
                        fill_interval_ms: 60_000,
                    }),
                    conditions: vec![],
                }),
            }],
        }),
        route_discovery: Some(RouteDiscovery {
            cluster: "meltemi-controller".into(),
            path: "/routes/v1/x".into(),
            refresh_interval_ms: 2000,
        }),
        istio_metrics: Some(IstioMetrics {
            enabled: true,
            reporter: "destination".into(),
            source_workload: "sw".into(),
            source_workload_namespace: "swn".into(),
            source_app: "sa".into(),
            source_version: "sv".into(),
            source_canonical_service: "scs".into(),
            source_canonical_revision: "scr".into(),
            source_principal: "sp".into(),
            destination_workload: "dw".into(),
            destination_workload_namespace: "dwn".into(),
            destination_app: "da".into(),
            destination_version: "dv".into(),
            destination_service: "ds.ns.svc.cluster.local".into(),
            destination_service_name: "dsn".into(),
            destination_service_namespace: "dsns".into(),
            destination_canonical_service: "dcs".into(),
            destination_canonical_revision: "dcr".into(),
            destination_principal: "dp".into(),
            connection_security_policy: "mutual_tls".into(),
            request_method: true,
        }),
    }
}

fn collect_set_fields(msg: &DynamicMessage, out: &mut BTreeSet<String>) {
    for (field, value) in msg.fields() {
        out.insert(format!("{}.{}", msg.descriptor().full_name(), field.name()));
        let mut visit = |v: &Value| {
            if let Value::Message(m) = v {
                collect_set_fields(m, out);
            }
        };
        match value {
            Value::List(items) => items.iter().for_each(&mut visit),
            Value::Map(map) => map.values().for_each(&mut visit),
            other => visit(other),
        }
    }
}

fn all_fields(pool: &DescriptorPool) -> BTreeSet<String> {
    pool.all_messages()
        .filter(|m| m.package_name() == PACKAGE && !m.is_map_entry())
        .flat_map(|m: MessageDescriptor| {
            m.fields()
                .map(|f| format!("{}.{}", m.full_name(), f.name()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn rust_types_and_proto_file_agree() {
    let pool = pool();
    let desc = pool
        .get_message_by_name("meltemi.config.v1.Config")
        .expect("Config message");
    let cfg = full();

    // Ours -> binary -> dynamic (from the .proto) -> proto3 JSON  ==  ours -> JSON.
    let dynamic =
        DynamicMessage::decode(desc.clone(), cfg.encode_to_vec().as_slice()).expect("decodes");
    let mut seen = BTreeSet::new();
    collect_set_fields(&dynamic, &mut seen);
    assert_eq!(
        seen,
        all_fields(&pool),
        "the sample must set every field, and only known fields"
    );
    let theirs = serde_json::to_value(&dynamic).expect("dynamic to json");
    let ours = serde_json::to_value(&cfg).expect("ours to json");
    assert_eq!(ours, theirs);

    // proto3 JSON (ours) -> dynamic -> binary -> ours.
    let json = cfg.to_json();
    let mut de = serde_json::Deserializer::from_str(&json);
    let back = DynamicMessage::deserialize(desc, &mut de).expect("proto JSON parses ours");
    assert_eq!(
        Config::decode(back.encode_to_vec().as_slice()).expect("decodes"),
        cfg
    );
}

#[test]
fn proto_source_is_the_file() {
    assert!(PROTO_SOURCE.contains("package meltemi.config.v1;"));
    assert!(pool()
        .get_message_by_name("meltemi.config.v1.RouteTable")
        .is_some());
}
