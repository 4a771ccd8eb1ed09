//! Kafka api keys and the per-key tables: header versions and where a response body starts
//! with an error code.
//!
//! Source of every number here: the Kafka message schemas, apache/kafka
//! `clients/src/main/resources/common/message/*Request.json` and `*Response.json`
//! (`apiKey`, `flexibleVersions`, the order and `versions` of the leading fields), read at
//! Kafka trunk of late 2025 (api keys 0..=93, up to GetReplicaLogInfo), and the header rules of
//! `ApiMessageType.requestHeaderVersion`/`responseHeaderVersion` (KIP-482, KIP-511):
//! - request header v2 (with tagged fields) for flexible versions, v1 otherwise, and v0 (no
//!   client id) only for ControlledShutdown v0;
//! - response header v1 (with tagged fields) for flexible versions, v0 otherwise, and always v0
//!   for ApiVersions, so a client can read the reply whatever version the broker took.
//!
//! A request's and its response's `flexibleVersions` are the same for every api key.

macro_rules! api_keys {
    ($( $code:literal $variant:ident $name:literal $flex:literal; )*) => {
        /// A Kafka api key: the closed set of current Kafka, and `Unknown` for anything else
        /// (data, not an error). `as_str` gives Kafka's own name, fit for a metric label.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ApiKey {
            $(
                #[doc = concat!("Api key ", stringify!($code), ": ", $name, ".")]
                $variant,
            )*
            /// An api key this table does not know.
            Unknown(i16),
        }

        impl ApiKey {
            /// Every known api key, in code order.
            pub const ALL: &'static [ApiKey] = &[$(ApiKey::$variant),*];

            /// The api key for a wire code.
            #[inline]
            pub const fn from_code(code: i16) -> ApiKey {
                match code {
                    $($code => ApiKey::$variant,)*
                    other => ApiKey::Unknown(other),
                }
            }

            /// The wire code.
            #[inline]
            pub const fn code(self) -> i16 {
                match self {
                    $(ApiKey::$variant => $code,)*
                    ApiKey::Unknown(c) => c,
                }
            }

            /// Kafka's name for the api (`"Unknown"` for unknown keys).
            #[inline]
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $(ApiKey::$variant => $name,)*
                    ApiKey::Unknown(_) => "Unknown",
                }
            }

            /// The first flexible (KIP-482) version, or `None` if no version is flexible
            /// (SaslHandshake, OffsetDelete) or the key is unknown.
            #[inline]
            pub const fn first_flexible_version(self) -> Option<i16> {
                let v: i16 = match self {
                    $(ApiKey::$variant => $flex,)*
                    ApiKey::Unknown(_) => -1,
                };
                if v < 0 { None } else { Some(v) }
            }
        }
    };
}

// code, variant, Kafka name, first flexible version (-1: none).
api_keys! {
    0 Produce "Produce" 9;
    1 Fetch "Fetch" 12;
    2 ListOffsets "ListOffsets" 6;
    3 Metadata "Metadata" 9;
    4 LeaderAndIsr "LeaderAndIsr" 4;
    5 StopReplica "StopReplica" 2;
    6 UpdateMetadata "UpdateMetadata" 6;
    7 ControlledShutdown "ControlledShutdown" 3;
    8 OffsetCommit "OffsetCommit" 8;
    9 OffsetFetch "OffsetFetch" 6;
    10 FindCoordinator "FindCoordinator" 3;
    11 JoinGroup "JoinGroup" 6;
    12 Heartbeat "Heartbeat" 4;
    13 LeaveGroup "LeaveGroup" 4;
    14 SyncGroup "SyncGroup" 4;
    15 DescribeGroups "DescribeGroups" 5;
    16 ListGroups "ListGroups" 3;
    17 SaslHandshake "SaslHandshake" -1;
    18 ApiVersions "ApiVersions" 3;
    19 CreateTopics "CreateTopics" 5;
    20 DeleteTopics "DeleteTopics" 4;
    21 DeleteRecords "DeleteRecords" 2;
    22 InitProducerId "InitProducerId" 2;
    23 OffsetForLeaderEpoch "OffsetForLeaderEpoch" 4;
    24 AddPartitionsToTxn "AddPartitionsToTxn" 3;
    25 AddOffsetsToTxn "AddOffsetsToTxn" 3;
    26 EndTxn "EndTxn" 3;
    27 WriteTxnMarkers "WriteTxnMarkers" 1;
    28 TxnOffsetCommit "TxnOffsetCommit" 3;
    29 DescribeAcls "DescribeAcls" 2;
    30 CreateAcls "CreateAcls" 2;
    31 DeleteAcls "DeleteAcls" 2;
    32 DescribeConfigs "DescribeConfigs" 4;
    33 AlterConfigs "AlterConfigs" 2;
    34 AlterReplicaLogDirs "AlterReplicaLogDirs" 2;
    35 DescribeLogDirs "DescribeLogDirs" 2;
    36 SaslAuthenticate "SaslAuthenticate" 2;
    37 CreatePartitions "CreatePartitions" 2;
    38 CreateDelegationToken "CreateDelegationToken" 2;
    39 RenewDelegationToken "RenewDelegationToken" 2;
    40 ExpireDelegationToken "ExpireDelegationToken" 2;
    41 DescribeDelegationToken "DescribeDelegationToken" 2;
    42 DeleteGroups "DeleteGroups" 2;
    43 ElectLeaders "ElectLeaders" 2;
    44 IncrementalAlterConfigs "IncrementalAlterConfigs" 1;
    45 AlterPartitionReassignments "AlterPartitionReassignments" 0;
    46 ListPartitionReassignments "ListPartitionReassignments" 0;
    47 OffsetDelete "OffsetDelete" -1;
    48 DescribeClientQuotas "DescribeClientQuotas" 1;
    49 AlterClientQuotas "AlterClientQuotas" 1;
    50 DescribeUserScramCredentials "DescribeUserScramCredentials" 0;
    51 AlterUserScramCredentials "AlterUserScramCredentials" 0;
    52 Vote "Vote" 0;
    53 BeginQuorumEpoch "BeginQuorumEpoch" 1;
    54 EndQuorumEpoch "EndQuorumEpoch" 1;
    55 DescribeQuorum "DescribeQuorum" 0;
    56 AlterPartition "AlterPartition" 0;
    57 UpdateFeatures "UpdateFeatures" 0;
    58 Envelope "Envelope" 0;
    59 FetchSnapshot "FetchSnapshot" 0;
    60 DescribeCluster "DescribeCluster" 0;
    61 DescribeProducers "DescribeProducers" 0;
    62 BrokerRegistration "BrokerRegistration" 0;
    63 BrokerHeartbeat "BrokerHeartbeat" 0;
    64 UnregisterBroker "UnregisterBroker" 0;
    65 DescribeTransactions "DescribeTransactions" 0;
    66 ListTransactions "ListTransactions" 0;
    67 AllocateProducerIds "AllocateProducerIds" 0;
    68 ConsumerGroupHeartbeat "ConsumerGroupHeartbeat" 0;
    69 ConsumerGroupDescribe "ConsumerGroupDescribe" 0;
    70 ControllerRegistration "ControllerRegistration" 0;
    71 GetTelemetrySubscriptions "GetTelemetrySubscriptions" 0;
    72 PushTelemetry "PushTelemetry" 0;
    73 AssignReplicasToDirs "AssignReplicasToDirs" 0;
    74 ListConfigResources "ListConfigResources" 0;
    75 DescribeTopicPartitions "DescribeTopicPartitions" 0;
    76 ShareGroupHeartbeat "ShareGroupHeartbeat" 0;
    77 ShareGroupDescribe "ShareGroupDescribe" 0;
    78 ShareFetch "ShareFetch" 0;
    79 ShareAcknowledge "ShareAcknowledge" 0;
    80 AddRaftVoter "AddRaftVoter" 0;
    81 RemoveRaftVoter "RemoveRaftVoter" 0;
    82 UpdateRaftVoter "UpdateRaftVoter" 0;
    83 InitializeShareGroupState "InitializeShareGroupState" 0;
    84 ReadShareGroupState "ReadShareGroupState" 0;
    85 WriteShareGroupState "WriteShareGroupState" 0;
    86 DeleteShareGroupState "DeleteShareGroupState" 0;
    87 ReadShareGroupStateSummary "ReadShareGroupStateSummary" 0;
    88 StreamsGroupHeartbeat "StreamsGroupHeartbeat" 0;
    89 StreamsGroupDescribe "StreamsGroupDescribe" 0;
    90 DescribeShareGroupOffsets "DescribeShareGroupOffsets" 0;
    91 AlterShareGroupOffsets "AlterShareGroupOffsets" 0;
    92 DeleteShareGroupOffsets "DeleteShareGroupOffsets" 0;
    93 GetReplicaLogInfo "GetReplicaLogInfo" 0;
}

impl ApiKey {
    /// Whether `api_version` of this api uses the flexible (compact, tagged-field) encoding.
    /// Always false for unknown keys.
    #[inline]
    pub const fn is_flexible(self, api_version: i16) -> bool {
        match self.first_flexible_version() {
            Some(v) => api_version >= v,
            None => false,
        }
    }
}

/// The request header version (0, 1 or 2) a request of this api key and version carries.
///
/// Unknown api keys give 1: every request header since Kafka 0.8 starts with api key, version,
/// correlation id and client id; whether tagged fields follow cannot be known for them.
#[inline]
pub const fn request_header_version(api_key: ApiKey, api_version: i16) -> u8 {
    match api_key {
        ApiKey::ControlledShutdown if api_version == 0 => 0,
        _ if api_key.is_flexible(api_version) => 2,
        _ => 1,
    }
}

/// The response header version (0 or 1) of the response to a request of this api key and
/// version. ApiVersions responses always use v0 (KIP-511). Unknown api keys give 0.
#[inline]
pub const fn response_header_version(api_key: ApiKey, api_version: i16) -> u8 {
    match api_key {
        ApiKey::ApiVersions => 0,
        _ if api_key.is_flexible(api_version) => 1,
        _ => 0,
    }
}

/// Where the response body of this api key and version starts with a top-level error code:
/// `Some(0)` when ErrorCode is the body's first field, `Some(4)` when it follows
/// ThrottleTimeMs (int32), `None` when the body does not start with one (errors only per topic
/// or partition, or later in the body).
///
/// Api keys with `Some(0)`: LeaderAndIsr, StopReplica, UpdateMetadata, ControlledShutdown,
/// SaslHandshake, ApiVersions, SaslAuthenticate, Create/Renew/Expire/DescribeDelegationToken,
/// OffsetDelete, Vote, BeginQuorumEpoch, EndQuorumEpoch, DescribeQuorum; FindCoordinator v0,
/// JoinGroup v0-1, Heartbeat/LeaveGroup/SyncGroup/ListGroups v0.
/// With `Some(4)`: Fetch v7+, FindCoordinator v1-3, JoinGroup v2+, Heartbeat, LeaveGroup,
/// SyncGroup, ListGroups v1+, InitProducerId, AddPartitionsToTxn v4+, AddOffsetsToTxn, EndTxn,
/// DescribeAcls, DescribeLogDirs v3+, ElectLeaders v1+, AlterPartitionReassignments,
/// ListPartitionReassignments, DescribeClientQuotas, DescribeUserScramCredentials,
/// AlterPartition, UpdateFeatures, FetchSnapshot, DescribeCluster, BrokerRegistration,
/// BrokerHeartbeat, UnregisterBroker, ListTransactions, AllocateProducerIds,
/// ConsumerGroupHeartbeat, ControllerRegistration, GetTelemetrySubscriptions, PushTelemetry,
/// AssignReplicasToDirs, ListConfigResources, ShareGroupHeartbeat, ShareFetch,
/// ShareAcknowledge, Add/Remove/UpdateRaftVoter, StreamsGroupHeartbeat,
/// AlterShareGroupOffsets, DeleteShareGroupOffsets.
pub const fn error_code_offset(api_key: ApiKey, api_version: i16) -> Option<usize> {
    use ApiKey::*;
    match api_key {
        LeaderAndIsr
        | StopReplica
        | UpdateMetadata
        | ControlledShutdown
        | SaslHandshake
        | ApiVersions
        | SaslAuthenticate
        | CreateDelegationToken
        | RenewDelegationToken
        | ExpireDelegationToken
        | DescribeDelegationToken
        | OffsetDelete
        | Vote
        | BeginQuorumEpoch
        | EndQuorumEpoch
        | DescribeQuorum => Some(0),
        Fetch if api_version >= 7 => Some(4),
        FindCoordinator if api_version == 0 => Some(0),
        FindCoordinator if api_version <= 3 => Some(4),
        JoinGroup if api_version <= 1 => Some(0),
        JoinGroup => Some(4),
        Heartbeat | LeaveGroup | SyncGroup | ListGroups if api_version == 0 => Some(0),
        Heartbeat | LeaveGroup | SyncGroup | ListGroups => Some(4),
        AddPartitionsToTxn if api_version >= 4 => Some(4),
        DescribeLogDirs if api_version >= 3 => Some(4),
        ElectLeaders if api_version >= 1 => Some(4),
        InitProducerId
        | AddOffsetsToTxn
        | EndTxn
        | DescribeAcls
        | AlterPartitionReassignments
        | ListPartitionReassignments
        | DescribeClientQuotas
        | DescribeUserScramCredentials
        | AlterPartition
        | UpdateFeatures
        | FetchSnapshot
        | DescribeCluster
        | BrokerRegistration
        | BrokerHeartbeat
        | UnregisterBroker
        | ListTransactions
        | AllocateProducerIds
        | ConsumerGroupHeartbeat
        | ControllerRegistration
        | GetTelemetrySubscriptions
        | PushTelemetry
        | AssignReplicasToDirs
        | ListConfigResources
        | ShareGroupHeartbeat
        | ShareFetch
        | ShareAcknowledge
        | AddRaftVoter
        | RemoveRaftVoter
        | UpdateRaftVoter
        | StreamsGroupHeartbeat
        | AlterShareGroupOffsets
        | DeleteShareGroupOffsets => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_dense() {
        for (i, k) in ApiKey::ALL.iter().enumerate() {
            assert_eq!(k.code(), i as i16);
            assert_eq!(ApiKey::from_code(i as i16), *k);
            assert_ne!(k.as_str(), "Unknown");
        }
        assert_eq!(ApiKey::from_code(94), ApiKey::Unknown(94));
        assert_eq!(ApiKey::from_code(-1).code(), -1);
    }

    #[test]
    fn header_versions() {
        assert_eq!(request_header_version(ApiKey::Produce, 8), 1);
        assert_eq!(request_header_version(ApiKey::Produce, 9), 2);
        assert_eq!(request_header_version(ApiKey::ControlledShutdown, 0), 0);
        assert_eq!(request_header_version(ApiKey::ControlledShutdown, 1), 1);
        assert_eq!(request_header_version(ApiKey::SaslHandshake, 1), 1);
        assert_eq!(request_header_version(ApiKey::ApiVersions, 3), 2);
        assert_eq!(response_header_version(ApiKey::ApiVersions, 3), 0);
        assert_eq!(response_header_version(ApiKey::Fetch, 12), 1);
        assert_eq!(response_header_version(ApiKey::Fetch, 11), 0);
        assert_eq!(request_header_version(ApiKey::Unknown(500), 0), 1);
        assert_eq!(response_header_version(ApiKey::Unknown(500), 0), 0);
    }
}
