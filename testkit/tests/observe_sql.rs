//! Issue 16: MySQL (MariaDB) and PostgreSQL through the real Envoy with both artifacts, real
//! servers started here (own data dirs, free ports) and real clients (`mariadb`/`psql` CLIs,
//! PyMySQL/psycopg, `pgbench`): the statement counts per kind equal what the servers' own
//! statistics say (`SHOW GLOBAL STATUS` `Com_*`; `pg_stat_statements`), logins ok/failed
//! are counted, and a malformed packet closes only its own connection.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, run_client, Envoy, EnvoyOptions, SqlKind, SqlServer};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const KINDS: [&str; 4] = ["select", "insert", "update", "delete"];

fn envoy_for(protocol: &str, port: u16) -> (Envoy, u16) {
    let listen = free_port();
    let yaml = bootstrap(
        listen,
        &[
            Filter::Module(format!(r#"{{"protocol":"{protocol}","stat_prefix":"so"}}"#)),
            Filter::Wasm(format!(
                r#"{{"protocol":"{protocol}","stat_prefix":"wasm"}}"#
            )),
            Filter::TcpProxy("db".into()),
        ],
        &[("db", port)],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    (envoy, listen)
}

fn stat(envoy: &Envoy, protocol: &str, prefix: &str, name: &str) -> u64 {
    let host = if prefix == "so" {
        "dynamicmodulescustom"
    } else {
        "wasmcustom"
    };
    envoy
        .stat(&format!("{host}.{protocol}.{prefix}.{name}"))
        .unwrap_or(0)
}

fn com_status(db: &SqlServer) -> BTreeMap<String, u64> {
    db.mariadb_direct("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_select','Com_insert','Com_update','Com_delete')")
        .expect("show status")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('\t')?;
            Some((k.trim_start_matches("Com_").to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Reads the server's first bytes, sends `bad`, and says whether the proxy closed the socket.
fn send_malformed(listen: u16, bad: &[u8], server_speaks_first: bool) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    if server_speaks_first {
        let _ = s.read(&mut buf);
    }
    s.write_all(bad).unwrap();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn mysql_counts_equal_mariadb_status_in_both_artifacts() {
    let db = SqlServer::start(SqlKind::MariaDb).expect("mariadb");
    db.mariadb_direct("create table meltemi.kv (k int primary key, v varchar(20))")
        .expect("create");
    let (envoy, listen) = envoy_for("mysql", db.port());
    let before = com_status(&db);
    // The mariadb CLI, then PyMySQL: 20 of each kind, an error, a failed login.
    let cli = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &listen.to_string()])
        .args(["-umeltemi", "-pmeltemi", "meltemi", "-e"])
        .arg("insert into kv values (1000,'x'); select * from kv; update kv set v='y'; delete from kv where k=1000;")
        .output()
        .expect("mariadb");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let out = run_client(
        "sql_client.py",
        &["mysql", &listen.to_string(), "20"],
        Duration::from_secs(60),
    )
    .expect("pymysql");
    assert!(out.contains("ok"));
    let after = com_status(&db);
    for prefix in ["so", "wasm"] {
        for k in KINDS {
            let server = after[k] - before[k];
            let ours = stat(&envoy, "mysql", prefix, &format!("statement.{k}.total"));
            assert_eq!(ours, server, "{prefix} {k}: ours {ours}, Com_{k} {server}");
        }
        // The SELECT of a missing table: Com_select counts it, and it failed.
        assert_eq!(
            stat(&envoy, "mysql", prefix, "statement.select.error"),
            1,
            "{prefix}"
        );
        assert_eq!(
            stat(&envoy, "mysql", prefix, "statement.login.success"),
            2,
            "{prefix}"
        );
        assert_eq!(
            stat(&envoy, "mysql", prefix, "statement.login.error"),
            1,
            "{prefix}"
        );
        assert_eq!(
            stat(&envoy, "mysql", prefix, "response_unmatched"),
            0,
            "{prefix}"
        );
        assert_eq!(
            stat(&envoy, "mysql", prefix, "request_decoding_error"),
            0,
            "{prefix}"
        );
    }
    // A login packet too short to hold its capability flags: that connection is closed,
    // the next one works.
    assert!(send_malformed(
        listen,
        &[4, 0, 0, 1, 0x0d, 0xa2, 0, 0],
        true
    ));
    assert_eq!(stat(&envoy, "mysql", "so", "request_decoding_error"), 1);
    let again = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &listen.to_string()])
        .args(["-umeltemi", "-pmeltemi", "-N", "-e", "select 7"])
        .output()
        .expect("mariadb");
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "7");
}

/// Successful top-level statements per first keyword in pg_stat_statements (database meltemi).
fn pgss(db: &SqlServer) -> BTreeMap<String, u64> {
    db.psql_direct(
        "meltemi",
        "select lower(substring(ltrim(query) from '^[A-Za-z]+')) k, sum(calls) from pg_stat_statements \
         where toplevel and dbid = (select oid from pg_database where datname = 'meltemi') \
         and query not ilike '%pg_stat_statements%' group by 1",
    )
    .expect("pg_stat_statements")
    .lines()
    .filter_map(|l| {
        let (k, v) = l.split_once('|')?;
        Some((k.to_string(), v.trim().parse().ok()?))
    })
    .collect()
}

#[test]
fn postgres_counts_equal_pg_stat_statements_in_both_artifacts() {
    let db = SqlServer::start(SqlKind::Postgres).expect("postgres");
    db.psql_direct("meltemi", "create table kv (k int primary key, v text)")
        .expect("create");
    let (envoy, listen) = envoy_for("postgres", db.port());
    db.psql_direct("meltemi", "select pg_stat_statements_reset()")
        .unwrap();
    let port = listen.to_string();
    let pg = |args: &[&str]| {
        let o = Command::new(args[0])
            .env("PGPASSWORD", "meltemi")
            .args(&args[1..])
            .output()
            .expect(args[0]);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    pg(&[
        "psql",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "meltemi",
        "-d",
        "meltemi",
        "-c",
        "insert into kv values (1000, 'x')",
        "-c",
        "select * from kv",
        "-c",
        "update kv set v = 'y'",
        "-c",
        "delete from kv where k = 1000",
    ]);
    let out = run_client(
        "sql_client.py",
        &["postgres", &port, "20"],
        Duration::from_secs(60),
    )
    .expect("psycopg");
    assert!(out.contains("ok"));
    // pgbench: initialize scale 1, then 40 transactions over 2 clients in the extended protocol.
    pg(&[
        "pgbench",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "meltemi",
        "-i",
        "-q",
        "-s",
        "1",
        "meltemi",
    ]);
    pg(&[
        "pgbench",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "meltemi",
        "-n",
        "-c",
        "2",
        "-t",
        "20",
        "-M",
        "extended",
        "meltemi",
    ]);
    let server = pgss(&db);
    for prefix in ["so", "wasm"] {
        for k in KINDS {
            let want = server.get(k).copied().unwrap_or(0);
            let ours = stat(
                &envoy,
                "postgres",
                prefix,
                &format!("statement.{k}.success"),
            );
            assert_eq!(
                ours, want,
                "{prefix} {k}: ours {ours}, pg_stat_statements {want} ({server:?})"
            );
        }
        assert_eq!(
            stat(&envoy, "postgres", prefix, "statement.select.error"),
            1,
            "{prefix}"
        );
        assert_eq!(
            stat(&envoy, "postgres", prefix, "statement.login.error"),
            1,
            "{prefix}"
        );
        assert!(
            stat(&envoy, "postgres", prefix, "statement.login.success") >= 5,
            "{prefix}"
        );
        assert_eq!(
            stat(&envoy, "postgres", prefix, "response_unmatched"),
            0,
            "{prefix}"
        );
        assert_eq!(
            stat(&envoy, "postgres", prefix, "request_decoding_error"),
            0,
            "{prefix}"
        );
    }
    // A message whose length is smaller than itself: that connection is closed, others work.
    assert!(send_malformed(listen, &[0, 0, 0, 3, 0, 3, 0, 0], false));
    assert_eq!(stat(&envoy, "postgres", "so", "request_decoding_error"), 1);
    pg(&[
        "psql",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "meltemi",
        "-d",
        "meltemi",
        "-c",
        "select 1",
    ]);
}
