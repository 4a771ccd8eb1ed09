#!/usr/bin/env bash
# Captures real MariaDB and PostgreSQL traffic for filters/codec/testdata/{mysql,postgres}:
# starts both servers on free ports (testkit/clients/sql_servers.sh), puts the recording relay
# (redis_relay.py --log, protocol-agnostic) in front of each, runs real clients through it.
#   scripts/capture/sql_capture.sh OUT_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out=$1; py="$here/.venv/bin/python"; tmp=$(mktemp -d); chmod 777 "$tmp"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$tmp"' EXIT
bash "$here/testkit/clients/sql_servers.sh" mariadb 33071 "$tmp/my" >"$tmp/my.log" 2>&1 & pids+=($!)
bash "$here/testkit/clients/sql_servers.sh" postgres 54331 "$tmp/pg" >"$tmp/pg.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do
  mariadb -h127.0.0.1 -P33071 -umeltemi -pmeltemi -e 'select 1' >/dev/null 2>&1 &&
    PGPASSWORD=meltemi psql -h127.0.0.1 -p54331 -Umeltemi -dpostgres -c 'select 1' >/dev/null 2>&1 && break
  sleep 0.2
done
PGPASSWORD=meltemi psql -q -h127.0.0.1 -p54331 -Umeltemi -dpostgres -c 'create database meltemi'
mkdir -p "$out/mysql" "$out/postgres"
"$py" "$here/scripts/capture/redis_relay.py" 33072 33071 "$out/mysql/conn" --log & pids+=($!)
"$py" "$here/scripts/capture/redis_relay.py" 54332 54331 "$out/postgres/conn" --log & pids+=($!)
sleep 0.5
# MySQL 1: the mariadb CLI (login, text result sets, an error, multi-statement).
mariadb -h127.0.0.1 -P33072 -umeltemi -pmeltemi meltemi -e \
  "create table t (id int primary key, v varchar(20)); insert into t values (1,'a'),(2,'b');
   select * from t; update t set v='c' where id=1; delete from t where id=2; select * from nope;" || true
# MySQL 2: a failed login.
mariadb -h127.0.0.1 -P33072 -umeltemi -pwrong -e 'select 1' 2>/dev/null || true
# MySQL 3: PyMySQL (text protocol, ping, init db, 0-row result).
"$py" - <<'PY'
import pymysql
c = pymysql.connect(host="127.0.0.1", port=33072, user="meltemi", password="meltemi", database="meltemi")
cur = c.cursor()
cur.execute("select id, v from t where id = %s", (1,)); cur.fetchall()
cur.execute("select * from t where id = 99"); cur.fetchall()
cur.execute("insert into t values (5, 'e')")
c.ping(); c.select_db("meltemi"); c.commit(); c.close()
PY
# MySQL 4: prepared statements (COM_STMT_PREPARE/EXECUTE/CLOSE, binary rows) via sysbench.
if command -v sysbench >/dev/null; then
  sb=(sysbench oltp_read_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=33072
      --mysql-user=meltemi --mysql-password=meltemi --mysql-db=meltemi --tables=1 --table-size=20)
  "${sb[@]}" prepare >/dev/null
  "${sb[@]}" --events=2 --threads=1 run >/dev/null
fi
# PostgreSQL 1: psql (startup, md5 auth, simple queries, an error, COPY FROM STDIN).
PGPASSWORD=meltemi psql -h127.0.0.1 -p54332 -Umeltemi -dmeltemi -f - <<'SQL' || true
create table t (id int primary key, v text);
insert into t values (1,'a'),(2,'b');
select * from t;
update t set v = 'c' where id = 1;
delete from t where id = 2;
select * from nope;
copy t from stdin;
3	x
\.
SQL
# PostgreSQL 2: a failed login.
PGPASSWORD=wrong psql -h127.0.0.1 -p54332 -Umeltemi -dmeltemi -c 'select 1' 2>/dev/null || true
# PostgreSQL 3: psycopg (extended query, a prepared statement, an error inside a batch, COPY TO).
"$py" - <<'PY'
import psycopg
with psycopg.connect("host=127.0.0.1 port=54332 user=meltemi password=meltemi dbname=meltemi sslmode=disable") as c:
    for i in range(6):
        c.execute("select v from t where id = %s", (i,)).fetchall()
    c.execute("insert into t values (%s, %s)", (10, "z"))
    try:
        c.execute("select * from nope where id = %s", (1,))
    except psycopg.Error:
        c.rollback()
    with c.cursor().copy("copy t to stdout") as cp:
        for _ in cp: pass
PY
# PostgreSQL 4: an SSLRequest answered N (the server has no TLS) then the startup.
PGPASSWORD=meltemi psql "host=127.0.0.1 port=54332 user=meltemi dbname=meltemi sslmode=prefer" -c 'select 1' >/dev/null
echo "captured into $out"
