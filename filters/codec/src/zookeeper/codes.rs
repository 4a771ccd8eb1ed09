//! The closed sets of wire codes (opcodes, error codes, watch event types, session states, as
//! ZooKeeper 3.8 defines them) and the four-letter admin words.

use core::fmt;

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($var:ident = $val:literal => $s:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                #[doc = concat!("`", $s, "` (", stringify!($val), ")")]
                $var,
            )*
            /// A value this version does not know; kept as data.
            Unknown(i32),
        }

        impl $name {
            /// Every known value, in declaration order (a closed set for metric labels).
            pub const ALL: &'static [$name] = &[$($name::$var),*];

            /// Maps a wire value; unknown values become `Unknown(raw)`.
            #[inline]
            pub const fn from_i32(v: i32) -> Self {
                match v {
                    $($val => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }

            /// The wire value.
            #[inline]
            pub const fn as_i32(self) -> i32 {
                match self {
                    $($name::$var => $val,)*
                    $name::Unknown(v) => v,
                }
            }

            /// A static name, for metric labels (`"unknown"` for unknown values).
            #[inline]
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $($name::$var => $s,)*
                    $name::Unknown(_) => "unknown",
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::Unknown(v) => write!(f, "unknown({v})"),
                    known => f.write_str(known.as_str()),
                }
            }
        }
    };
}

code_enum! {
    /// Request opcodes (`ZooDefs.OpCode`, ZooKeeper 3.8); names as ZooKeeper spells them.
    OpCode {
        Notification = 0 => "notification",
        Create = 1 => "create",
        Delete = 2 => "delete",
        Exists = 3 => "exists",
        GetData = 4 => "getData",
        SetData = 5 => "setData",
        GetAcl = 6 => "getACL",
        SetAcl = 7 => "setACL",
        GetChildren = 8 => "getChildren",
        Sync = 9 => "sync",
        Ping = 11 => "ping",
        GetChildren2 = 12 => "getChildren2",
        Check = 13 => "check",
        Multi = 14 => "multi",
        Create2 = 15 => "create2",
        Reconfig = 16 => "reconfig",
        CheckWatches = 17 => "checkWatches",
        RemoveWatches = 18 => "removeWatches",
        CreateContainer = 19 => "createContainer",
        DeleteContainer = 20 => "deleteContainer",
        CreateTtl = 21 => "createTTL",
        MultiRead = 22 => "multiRead",
        Auth = 100 => "auth",
        SetWatches = 101 => "setWatches",
        Sasl = 102 => "sasl",
        GetEphemerals = 103 => "getEphemerals",
        GetAllChildrenNumber = 104 => "getAllChildrenNumber",
        SetWatches2 = 105 => "setWatches2",
        AddWatch = 106 => "addWatch",
        WhoAmI = 107 => "whoAmI",
        CreateSession = -10 => "createSession",
        CloseSession = -11 => "closeSession",
        Error = -1 => "error",
    }
}

impl OpCode {
    /// Whether the request body starts with a path (Jute `ustring path` or `prefixPath`).
    #[inline]
    pub const fn has_path(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::Exists
                | OpCode::GetData
                | OpCode::SetData
                | OpCode::GetAcl
                | OpCode::SetAcl
                | OpCode::GetChildren
                | OpCode::GetChildren2
                | OpCode::Sync
                | OpCode::Check
                | OpCode::CheckWatches
                | OpCode::RemoveWatches
                | OpCode::AddWatch
                | OpCode::GetEphemerals
                | OpCode::GetAllChildrenNumber
        )
    }

    /// Whether the operation changes the tree (or the session's ACLs/config).
    #[inline]
    pub const fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Multi
                | OpCode::Reconfig
        )
    }
}

code_enum! {
    /// Reply error codes (`KeeperException.Code`, ZooKeeper 3.8); names as ZooKeeper spells them.
    ErrorCode {
        Ok = 0 => "OK",
        SystemError = -1 => "SYSTEMERROR",
        RuntimeInconsistency = -2 => "RUNTIMEINCONSISTENCY",
        DataInconsistency = -3 => "DATAINCONSISTENCY",
        ConnectionLoss = -4 => "CONNECTIONLOSS",
        MarshallingError = -5 => "MARSHALLINGERROR",
        Unimplemented = -6 => "UNIMPLEMENTED",
        OperationTimeout = -7 => "OPERATIONTIMEOUT",
        BadArguments = -8 => "BADARGUMENTS",
        UnknownSession = -12 => "UNKNOWNSESSION",
        NewConfigNoQuorum = -13 => "NEWCONFIGNOQUORUM",
        ReconfigInProgress = -14 => "RECONFIGINPROGRESS",
        ApiError = -100 => "APIERROR",
        NoNode = -101 => "NONODE",
        NoAuth = -102 => "NOAUTH",
        BadVersion = -103 => "BADVERSION",
        NoChildrenForEphemerals = -108 => "NOCHILDRENFOREPHEMERALS",
        NodeExists = -110 => "NODEEXISTS",
        NotEmpty = -111 => "NOTEMPTY",
        SessionExpired = -112 => "SESSIONEXPIRED",
        InvalidCallback = -113 => "INVALIDCALLBACK",
        InvalidAcl = -114 => "INVALIDACL",
        AuthFailed = -115 => "AUTHFAILED",
        SessionMoved = -118 => "SESSIONMOVED",
        NotReadOnly = -119 => "NOTREADONLY",
        EphemeralOnLocalSession = -120 => "EPHEMERALONLOCALSESSION",
        NoWatcher = -121 => "NOWATCHER",
        RequestTimeout = -122 => "REQUESTTIMEOUT",
        ReconfigDisabled = -123 => "RECONFIGDISABLED",
        SessionClosedRequireSaslAuth = -124 => "SESSIONCLOSEDREQUIRESASLAUTH",
        QuotaExceeded = -125 => "QUOTAEXCEEDED",
        ThrottledOp = -127 => "THROTTLEDOP",
    }
}

code_enum! {
    /// Watch event types (`Watcher.Event.EventType`).
    EventType {
        None = -1 => "None",
        NodeCreated = 1 => "NodeCreated",
        NodeDeleted = 2 => "NodeDeleted",
        NodeDataChanged = 3 => "NodeDataChanged",
        NodeChildrenChanged = 4 => "NodeChildrenChanged",
        DataWatchRemoved = 5 => "DataWatchRemoved",
        ChildWatchRemoved = 6 => "ChildWatchRemoved",
        PersistentWatchRemoved = 7 => "PersistentWatchRemoved",
    }
}

code_enum! {
    /// Session states carried by watch events (`Watcher.Event.KeeperState`).
    KeeperState {
        UnknownState = -1 => "Unknown",
        Disconnected = 0 => "Disconnected",
        NoSyncConnected = 1 => "NoSyncConnected",
        SyncConnected = 3 => "SyncConnected",
        AuthFailed = 4 => "AuthFailed",
        ConnectedReadOnly = 5 => "ConnectedReadOnly",
        SaslAuthenticated = 6 => "SaslAuthenticated",
        Expired = -112 => "Expired",
        Closed = 7 => "Closed",
    }
}

/// Four-letter admin words a client may send instead of a `ConnectRequest`
/// (`FourLetterCommands`, ZooKeeper 3.8). The server answers with unframed text and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FourLetterWord {
    /// `conf`
    Conf,
    /// `cons`
    Cons,
    /// `crst`
    Crst,
    /// `dirs`
    Dirs,
    /// `dump`
    Dump,
    /// `envi`
    Envi,
    /// `gtmk`
    Gtmk,
    /// `ruok`
    Ruok,
    /// `stmk` (followed by an 8-byte trace mask)
    Stmk,
    /// `srvr`
    Srvr,
    /// `srst`
    Srst,
    /// `stat`
    Stat,
    /// `wchc`
    Wchc,
    /// `wchp`
    Wchp,
    /// `wchs`
    Wchs,
    /// `mntr`
    Mntr,
    /// `isro`
    Isro,
    /// `hash`
    Hash,
    /// telnet's interrupt sequence `ff f4 ff fd`: the server closes.
    TelnetClose,
}

impl FourLetterWord {
    /// Recognises the first four bytes of a connection.
    pub const fn from_bytes(b: [u8; 4]) -> Option<Self> {
        Some(match &b {
            b"conf" => FourLetterWord::Conf,
            b"cons" => FourLetterWord::Cons,
            b"crst" => FourLetterWord::Crst,
            b"dirs" => FourLetterWord::Dirs,
            b"dump" => FourLetterWord::Dump,
            b"envi" => FourLetterWord::Envi,
            b"gtmk" => FourLetterWord::Gtmk,
            b"ruok" => FourLetterWord::Ruok,
            b"stmk" => FourLetterWord::Stmk,
            b"srvr" => FourLetterWord::Srvr,
            b"srst" => FourLetterWord::Srst,
            b"stat" => FourLetterWord::Stat,
            b"wchc" => FourLetterWord::Wchc,
            b"wchp" => FourLetterWord::Wchp,
            b"wchs" => FourLetterWord::Wchs,
            b"mntr" => FourLetterWord::Mntr,
            b"isro" => FourLetterWord::Isro,
            b"hash" => FourLetterWord::Hash,
            [0xff, 0xf4, 0xff, 0xfd] => FourLetterWord::TelnetClose,
            _ => return None,
        })
    }

    /// A static name, for metric labels.
    pub const fn as_str(&self) -> &'static str {
        match self {
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Hash => "hash",
            FourLetterWord::TelnetClose => "telnetClose",
        }
    }

    /// Bytes the word occupies on the wire (`stmk` carries a trace mask, `NIOServerCnxn`).
    pub const fn wire_len(self) -> usize {
        match self {
            FourLetterWord::Stmk => 12,
            _ => 4,
        }
    }
}
