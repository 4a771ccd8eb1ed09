//! Redis key-prefix routing, sans-IO: which upstream each command goes to, how a command whose
//! keys span routes is split, and how the split replies are merged back in the client's order.
//!
//! The adapter (the dynamic module) owns the connections; this module only plans and merges:
//! - [`RedisRouter::compile`] turns the schema's `redis` section into a table (longest prefix
//!   wins, ties to the first listed; optional prefix removal; optional ASCII case folding; a
//!   catch-all route).
//! - [`RedisRouter::plan`] maps one decoded request to a [`Plan`]: a local reply (PING, ECHO,
//!   errors for commands that cannot be routed), one upstream command, or one command per route
//!   with a [`Merge`] rule.
//! - [`Merge::finish`] combines the per-route replies into the one reply the client expects.
//!
//! Deliberately not here yet: Redis Cluster slots, MOVED/ASK, transactions (MULTI is refused:
//! the upstream connections are shared by every client), blocking and pub/sub commands.

use meltemi_codec::redis::{self as resp, Command, Request, Value};
use meltemi_codec::{Decoded, Limits};

/// A route of the compiled table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    prefix: Vec<u8>,
    cluster: usize,
    remove_prefix: bool,
}

/// The compiled `redis` section of a filter config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisRouter {
    /// Sorted by prefix length, longest first (stable: ties keep the listed order).
    routes: Vec<Route>,
    catch_all: Option<usize>,
    case_insensitive: bool,
    /// Cluster names and addresses, in the config's order; routes index into this.
    clusters: Vec<(String, String)>,
}

/// Why a `redis` section was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfigError(pub String);

/// Where one key goes: the cluster index and how many leading bytes to strip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRoute {
    pub cluster: usize,
    pub strip: usize,
}

/// How the replies of a split command become one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeKind {
    /// MGET: an array of `n` values; part `p`'s element `j` goes to `index[p][j]`.
    Array { n: usize, index: Vec<Vec<usize>> },
    /// MSET: `+OK` when every part said so.
    Ok,
    /// DEL, EXISTS, TOUCH, UNLINK: the sum of the integers.
    Sum,
}

/// One command to send to one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub cluster: usize,
    /// The RESP bytes to write.
    pub bytes: Vec<u8>,
}

/// What to do with one client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer the client with these bytes; `close` after them (QUIT).
    Local { reply: Vec<u8>, close: bool },
    /// The request needs no reply (an empty request, as Redis ignores it).
    Nothing,
    /// Send the request as it came (`None`: the original bytes) or rewritten, to one cluster.
    One {
        cluster: usize,
        rewritten: Option<Vec<u8>>,
    },
    /// Send one command per route; merge their replies.
    Split { parts: Vec<Part>, merge: MergeKind },
}

/// The single-key commands routed by their first argument: data commands whose only key is
/// argument 1 (Redis 7.0 key specs). Everything else that is not listed in [`RedisRouter::plan`]
/// is refused with an error reply.
fn single_key(c: Command) -> bool {
    use Command as C;
    matches!(
        c,
        C::Get
            | C::Set
            | C::Setnx
            | C::Setex
            | C::Psetex
            | C::Getset
            | C::Getdel
            | C::Getex
            | C::Append
            | C::Strlen
            | C::Incr
            | C::Incrby
            | C::Incrbyfloat
            | C::Decr
            | C::Decrby
            | C::Getrange
            | C::Setrange
            | C::Substr
            | C::Getbit
            | C::Setbit
            | C::Bitcount
            | C::Bitpos
            | C::Bitfield
            | C::BitfieldRo
            | C::Expire
            | C::Pexpire
            | C::Expireat
            | C::Pexpireat
            | C::Expiretime
            | C::Pexpiretime
            | C::Ttl
            | C::Pttl
            | C::Persist
            | C::Type
            | C::Dump
            | C::Restore
            | C::Lpush
            | C::Rpush
            | C::Lpushx
            | C::Rpushx
            | C::Lpop
            | C::Rpop
            | C::Llen
            | C::Lrange
            | C::Lindex
            | C::Lset
            | C::Lrem
            | C::Ltrim
            | C::Linsert
            | C::Lpos
            | C::Hset
            | C::Hsetnx
            | C::Hget
            | C::Hmset
            | C::Hmget
            | C::Hdel
            | C::Hlen
            | C::Hkeys
            | C::Hvals
            | C::Hgetall
            | C::Hexists
            | C::Hincrby
            | C::Hincrbyfloat
            | C::Hstrlen
            | C::Hscan
            | C::Hrandfield
            | C::Sadd
            | C::Srem
            | C::Smembers
            | C::Sismember
            | C::Smismember
            | C::Scard
            | C::Spop
            | C::Srandmember
            | C::Sscan
            | C::Zadd
            | C::Zrem
            | C::Zscore
            | C::Zmscore
            | C::Zincrby
            | C::Zcard
            | C::Zcount
            | C::Zrange
            | C::Zrangebyscore
            | C::Zrevrange
            | C::Zrevrangebyscore
            | C::Zrank
            | C::Zrevrank
            | C::Zremrangebyrank
            | C::Zremrangebyscore
            | C::Zpopmin
            | C::Zpopmax
            | C::Zlexcount
            | C::Zrangebylex
            | C::Zrevrangebylex
            | C::Zremrangebylex
            | C::Zscan
            | C::Zrandmember
            | C::Pfadd
            | C::Geoadd
            | C::Geodist
            | C::Geohash
            | C::Geopos
            | C::Geosearch
            | C::Xadd
            | C::Xlen
            | C::Xrange
            | C::Xrevrange
            | C::Xdel
            | C::Xtrim
    )
}

impl RedisRouter {
    /// Compiles a validated schema section (`meltemi_proto::validate` ran first).
    pub fn compile(r: &meltemi_proto::RedisRouting) -> Result<RedisRouter, RedisConfigError> {
        let clusters: Vec<(String, String)> = r
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.address.clone()))
            .collect();
        let index = |name: &str| {
            clusters.iter().position(|(n, _)| n == name).ok_or_else(|| {
                RedisConfigError(format!("cluster {name:?} is not in redis.clusters"))
            })
        };
        let mut routes = Vec::with_capacity(r.routes.len());
        for route in &r.routes {
            let mut prefix = route.prefix.clone().into_bytes();
            if r.case_insensitive {
                prefix.make_ascii_lowercase();
            }
            routes.push(Route {
                prefix,
                cluster: index(&route.cluster)?,
                remove_prefix: route.remove_prefix,
            });
        }
        // Stable: equal lengths keep the configured order.
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let catch_all = match &r.catch_all_route {
            Some(c) => Some(index(&c.cluster)?),
            None => None,
        };
        Ok(RedisRouter {
            routes,
            catch_all,
            case_insensitive: r.case_insensitive,
            clusters,
        })
    }

    /// Cluster names and addresses; [`KeyRoute::cluster`] and [`Part::cluster`] index into it.
    pub fn clusters(&self) -> &[(String, String)] {
        &self.clusters
    }

    /// The route of one key: the longest matching prefix, else the catch-all.
    pub fn route_key(&self, key: &[u8]) -> Option<KeyRoute> {
        for r in &self.routes {
            let n = r.prefix.len();
            let hit = key.len() >= n
                && if self.case_insensitive {
                    key[..n].eq_ignore_ascii_case(&r.prefix)
                } else {
                    key[..n] == r.prefix[..]
                };
            if hit {
                return Some(KeyRoute {
                    cluster: r.cluster,
                    strip: if r.remove_prefix { n } else { 0 },
                });
            }
        }
        self.catch_all.map(|cluster| KeyRoute { cluster, strip: 0 })
    }

    /// Plans one request; `raw` is its bytes as the client sent them.
    pub fn plan(&self, req: &Request<'_>, raw: &[u8]) -> Plan {
        if req.is_empty() {
            return Plan::Nothing;
        }
        let args: Vec<&[u8]> = req.args().collect();
        let c = req.command;
        match c {
            Command::Ping => match args.len() {
                1 => local(b"+PONG\r\n".to_vec()),
                2 => local(bulk(args[1])),
                _ => local(err_args("ping")),
            },
            Command::Echo if args.len() == 2 => local(bulk(args[1])),
            // RESP2 only: the upstream connections are shared and speak RESP2.
            Command::Hello => match args.get(1).copied() {
                None | Some(b"2") if args.len() <= 2 => local(HELLO2.to_vec()),
                _ => local(err(
                    "NOPROTO meltemi: only RESP2 is supported (HELLO 2 or no HELLO)",
                )),
            },
            Command::Quit => Plan::Local {
                reply: b"+OK\r\n".to_vec(),
                close: true,
            },
            Command::Multi | Command::Exec | Command::Discard | Command::Watch | Command::Unwatch => {
                local(err(&format!(
                    "ERR meltemi: {} is not supported: transactions cannot span the shared upstream connections",
                    c.as_str().to_ascii_uppercase()
                )))
            }
            Command::Mget | Command::Del | Command::Exists | Command::Touch | Command::Unlink => {
                if args.len() < 2 {
                    return local(err_args(c.as_str()));
                }
                self.split(&args, 1, c)
            }
            Command::Mset => {
                if args.len() < 3 || args.len() & 1 == 0 {
                    return local(err_args("mset"));
                }
                self.split(&args, 2, c)
            }
            _ if single_key(c) => {
                if args.len() < 2 {
                    return local(err_args(c.as_str()));
                }
                match self.route_key(args[1]) {
                    None => local(no_route()),
                    Some(r) if r.strip == 0 => Plan::One {
                        cluster: r.cluster,
                        rewritten: None,
                    },
                    Some(r) => {
                        let mut out = Vec::with_capacity(raw.len());
                        let key = &args[1][r.strip..];
                        encode(
                            args.len(),
                            args.iter()
                                .enumerate()
                                .map(|(i, a)| if i == 1 { key } else { *a }),
                            &mut out,
                        );
                        Plan::One {
                            cluster: r.cluster,
                            rewritten: Some(out),
                        }
                    }
                }
            }
            _ => {
                let name = String::from_utf8_lossy(req.name);
                local(err(&format!(
                    "ERR meltemi: command '{}' is not supported by the redis router",
                    name.chars().take(64).collect::<String>()
                )))
            }
        }
    }

    /// Splits a multi-key command whose arguments after the name come in groups of `step`
    /// (key, or key and value).
    fn split(&self, args: &[&[u8]], step: usize, c: Command) -> Plan {
        // Per cluster, in first-seen order: (cluster, key positions in the client's order).
        let mut groups: Vec<(usize, Vec<usize>, Vec<usize>)> = Vec::new(); // (cluster, group idx, strip)
        for (g, chunk) in args[1..].chunks(step).enumerate() {
            let Some(r) = self.route_key(chunk[0]) else {
                return local(no_route());
            };
            match groups.iter_mut().find(|x| x.0 == r.cluster) {
                Some(x) => {
                    x.1.push(g);
                    x.2.push(r.strip);
                }
                None => groups.push((r.cluster, vec![g], vec![r.strip])),
            }
        }
        let name = args[0];
        let parts: Vec<Part> = groups
            .iter()
            .map(|(cluster, gs, strips)| {
                let mut bytes = Vec::new();
                let n = 1 + gs.len() * step;
                let items = gs.iter().zip(strips).flat_map(|(&g, &s)| {
                    let chunk = &args[1 + g * step..1 + (g + 1) * step];
                    chunk
                        .iter()
                        .enumerate()
                        .map(move |(j, a)| if j == 0 { &a[s..] } else { *a })
                });
                encode(n, std::iter::once(name).chain(items), &mut bytes);
                Part {
                    cluster: *cluster,
                    bytes,
                }
            })
            .collect();
        let merge = match c {
            Command::Mget => MergeKind::Array {
                n: args.len() - 1,
                index: groups.into_iter().map(|g| g.1).collect(),
            },
            Command::Mset => MergeKind::Ok,
            _ => MergeKind::Sum,
        };
        Plan::Split { parts, merge }
    }
}

/// The `HELLO 2` reply: what the client may assume of the router.
const HELLO2: &[u8] = b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:0\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";

/// Collects the replies of a split command's parts (in any order) and builds the client's.
#[derive(Debug)]
pub struct Merge {
    kind: MergeKind,
    parts: Vec<Option<Vec<u8>>>,
    left: usize,
}

impl Merge {
    pub fn new(kind: MergeKind, parts: usize) -> Merge {
        Merge {
            kind,
            parts: vec![None; parts],
            left: parts,
        }
    }

    /// Part `i` answered `reply` (one whole RESP value). True when every part has answered.
    pub fn add(&mut self, i: usize, reply: Vec<u8>) -> bool {
        if let Some(p) = self.parts.get_mut(i) {
            if p.is_none() {
                *p = Some(reply);
                self.left -= 1;
            }
        }
        self.left == 0
    }

    /// The merged reply (call once [`Merge::add`] said all parts are in).
    pub fn finish(self) -> Vec<u8> {
        let limits = Limits::default();
        let parts: Vec<Vec<u8>> = self
            .parts
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        // The first error of any part answers the whole command.
        for p in &parts {
            match decode_one(p, &limits) {
                Some(Value::Error(_)) => return p.clone(),
                Some(_) => {}
                None => return err("ERR meltemi: unreadable upstream reply"),
            }
        }
        match self.kind {
            MergeKind::Ok => b"+OK\r\n".to_vec(),
            MergeKind::Sum => {
                let mut sum: i64 = 0;
                for p in &parts {
                    match decode_one(p, &limits) {
                        Some(Value::Integer(n)) => sum = sum.saturating_add(n),
                        _ => return err("ERR meltemi: unexpected upstream reply"),
                    }
                }
                format!(":{sum}\r\n").into_bytes()
            }
            MergeKind::Array { n, index } => {
                let mut slots: Vec<&[u8]> = vec![b"$-1\r\n"; n];
                for (p, idx) in parts.iter().zip(&index) {
                    let Some(Value::Array(agg)) = decode_one(p, &limits) else {
                        return err("ERR meltemi: unexpected upstream reply");
                    };
                    let mut rest = agg.body;
                    for &at in idx {
                        let Ok(Decoded::Frame { used, .. }) = resp::decode_response(rest, &limits)
                        else {
                            return err("ERR meltemi: unexpected upstream reply");
                        };
                        if let Some(s) = slots.get_mut(at) {
                            *s = &rest[..used];
                        }
                        rest = &rest[used..];
                    }
                }
                let mut out = format!("*{n}\r\n").into_bytes();
                for s in slots {
                    out.extend_from_slice(s);
                }
                out
            }
        }
    }
}

fn decode_one<'a>(b: &'a [u8], limits: &Limits) -> Option<Value<'a>> {
    match resp::decode_response(b, limits) {
        Ok(Decoded::Frame { frame, .. }) => Some(frame.value),
        _ => None,
    }
}

fn local(reply: Vec<u8>) -> Plan {
    Plan::Local {
        reply,
        close: false,
    }
}

/// `-<text>\r\n` (the text must hold no CR or LF).
pub fn err(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 3);
    resp::encode_error(text.as_bytes(), &mut out);
    out
}

fn err_args(cmd: &str) -> Vec<u8> {
    err(&format!(
        "ERR wrong number of arguments for '{cmd}' command"
    ))
}

fn no_route() -> Vec<u8> {
    err("ERR meltemi: no route for key")
}

fn bulk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes `*n` and `n` bulk strings.
fn encode<'a>(n: usize, args: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{n}\r\n").as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meltemi_proto::{RedisRoute, RedisRouting, RedisUpstream};

    fn router(ci: bool) -> RedisRouter {
        let route = |p: &str, c: &str, rm: bool| RedisRoute {
            prefix: p.into(),
            cluster: c.into(),
            remove_prefix: rm,
        };
        let up = |n: &str| RedisUpstream {
            name: n.into(),
            address: "127.0.0.1:1".into(),
        };
        RedisRouter::compile(&RedisRouting {
            routes: vec![
                route("a:", "a", false),
                route("a:b:", "b", true),
                route("b:", "b", false),
            ],
            case_insensitive: ci,
            catch_all_route: Some(route("", "c", false)),
            clusters: vec![up("a"), up("b"), up("c")],
        })
        .unwrap()
    }

    fn req(parts: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(parts.len(), parts.iter().map(|p| p.as_bytes()), &mut out);
        out
    }

    fn plan(r: &RedisRouter, parts: &[&str]) -> Plan {
        let raw = req(parts);
        let (q, _) = resp::decode_request(&raw, &Limits::default())
            .unwrap()
            .frame()
            .unwrap();
        r.plan(&q, &raw)
    }

    #[test]
    fn longest_prefix_wins_with_removal_case_and_catch_all() {
        let r = router(false);
        let k = |key: &str| r.route_key(key.as_bytes());
        assert_eq!(
            k("a:x"),
            Some(KeyRoute {
                cluster: 0,
                strip: 0
            })
        );
        assert_eq!(
            k("a:b:x"),
            Some(KeyRoute {
                cluster: 1,
                strip: 4
            })
        );
        assert_eq!(
            k("b:x"),
            Some(KeyRoute {
                cluster: 1,
                strip: 0
            })
        );
        assert_eq!(
            k("A:x"),
            Some(KeyRoute {
                cluster: 2,
                strip: 0
            })
        );
        assert_eq!(
            k("zz"),
            Some(KeyRoute {
                cluster: 2,
                strip: 0
            })
        );
        let ci = router(true);
        assert_eq!(
            ci.route_key(b"A:B:x"),
            Some(KeyRoute {
                cluster: 1,
                strip: 4
            })
        );
        assert_eq!(
            plan(&r, &["SET", "a:b:k", "v"]),
            Plan::One {
                cluster: 1,
                rewritten: Some(req(&["SET", "k", "v"]))
            }
        );
        assert_eq!(
            plan(&r, &["get", "a:k"]),
            Plan::One {
                cluster: 0,
                rewritten: None
            }
        );
    }

    #[test]
    fn multi_key_commands_split_per_route_and_merge_in_order() {
        let r = router(false);
        let Plan::Split { parts, merge } = plan(&r, &["MGET", "a:1", "b:2", "a:3", "z"]) else {
            panic!()
        };
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].bytes, req(&["MGET", "a:1", "a:3"]));
        assert_eq!(parts[1].bytes, req(&["MGET", "b:2"]));
        assert_eq!(parts[2].bytes, req(&["MGET", "z"]));
        let mut m = Merge::new(merge, 3);
        assert!(!m.add(2, b"*1\r\n$1\r\nZ\r\n".to_vec()));
        assert!(!m.add(0, b"*2\r\n$1\r\nA\r\n$-1\r\n".to_vec()));
        assert!(m.add(1, b"*1\r\n$1\r\nB\r\n".to_vec()));
        assert_eq!(
            m.finish(),
            b"*4\r\n$1\r\nA\r\n$1\r\nB\r\n$-1\r\n$1\r\nZ\r\n"
        );

        let Plan::Split { parts, merge } = plan(&r, &["MSET", "a:b:1", "x", "b:2", "y"]) else {
            panic!()
        };
        assert_eq!(parts[0].bytes, req(&["MSET", "1", "x", "b:2", "y"]));
        let mut m = Merge::new(merge, 1);
        assert!(m.add(0, b"+OK\r\n".to_vec()));
        assert_eq!(m.finish(), b"+OK\r\n");

        let Plan::Split { merge, .. } = plan(&r, &["DEL", "a:1", "b:1"]) else {
            panic!()
        };
        let mut m = Merge::new(merge, 2);
        m.add(0, b":1\r\n".to_vec());
        m.add(1, b":0\r\n".to_vec());
        assert_eq!(m.finish(), b":1\r\n");
        let mut m = Merge::new(MergeKind::Sum, 2);
        m.add(0, b"-ERR x\r\n".to_vec());
        m.add(1, b":0\r\n".to_vec());
        assert_eq!(m.finish(), b"-ERR x\r\n");
    }

    #[test]
    fn what_cannot_be_routed_gets_an_error_reply() {
        let r = router(false);
        for c in [
            &["MULTI"][..],
            &["KEYS", "*"],
            &["EVAL", "x", "0"],
            &["SUBSCRIBE", "c"],
        ] {
            match plan(&r, c) {
                Plan::Local { reply, close } => {
                    assert!(reply.starts_with(b"-ERR meltemi: "), "{c:?}");
                    assert!(!close);
                }
                p => panic!("{c:?}: {p:?}"),
            }
        }
        assert!(matches!(plan(&r, &["GET"]), Plan::Local { .. }));
        assert!(matches!(
            plan(&r, &["MSET", "a", "b", "c"]),
            Plan::Local { .. }
        ));
        assert_eq!(
            plan(&r, &["PING"]),
            Plan::Local {
                reply: b"+PONG\r\n".to_vec(),
                close: false
            }
        );
        assert!(matches!(
            plan(&r, &["QUIT"]),
            Plan::Local { close: true, .. }
        ));
        let mut no_catch_all = r.clone();
        no_catch_all.catch_all = None;
        assert!(matches!(
            plan(&no_catch_all, &["GET", "q"]),
            Plan::Local { .. }
        ));
    }
}
