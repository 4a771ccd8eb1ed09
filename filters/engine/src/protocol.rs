//! The protocol a listener speaks: the one name the configuration, routing, metrics and the
//! per-protocol modules share. A leaf: it imports nothing of the engine.

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Redis RESP2/RESP3.
    Redis,
    /// Dubbo 2.
    Dubbo,
    /// Apache Thrift.
    Thrift,
    /// Apache Kafka.
    Kafka,
    /// Apache ZooKeeper.
    ZooKeeper,
    /// TARS (and TUP over TARS packets).
    Tars,
    /// MySQL/MariaDB client/server protocol.
    MySql,
    /// PostgreSQL v3.
    Postgres,
    /// Bytes only: no decoding (counts bytes and connections).
    Raw,
}

impl Protocol {
    /// The lower-case name used in configuration and stat names.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Redis => "redis",
            Protocol::Dubbo => "dubbo",
            Protocol::Thrift => "thrift",
            Protocol::Kafka => "kafka",
            Protocol::ZooKeeper => "zookeeper",
            Protocol::Tars => "tars",
            Protocol::MySql => "mysql",
            Protocol::Postgres => "postgres",
            Protocol::Raw => "raw",
        }
    }

    /// Parses a configured protocol name.
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "redis" => Protocol::Redis,
            "dubbo" => Protocol::Dubbo,
            "thrift" => Protocol::Thrift,
            "kafka" => Protocol::Kafka,
            "zookeeper" => Protocol::ZooKeeper,
            "tars" => Protocol::Tars,
            "mysql" => Protocol::MySql,
            "postgres" => Protocol::Postgres,
            "raw" | "tcp" => Protocol::Raw,
            _ => return None,
        })
    }
}
