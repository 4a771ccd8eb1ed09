#!/usr/bin/env python3
"""Real SQL client traffic for testkit/tests/observe_sql.rs, through Envoy.

    sql_client.py mysql|postgres PORT N

MySQL (PyMySQL, text protocol): N SELECTs by key, N INSERTs, N UPDATEs, N DELETEs on table
`kv`, one SELECT of a missing table (error 1146), one failed login (1045).
PostgreSQL (psycopg 3, extended query protocol; psycopg prepares a statement after 5 runs):
the same on `kv`, one SELECT of a missing table (42P01), one failed login (28P01).
Prints "ok" at the end.
"""
import sys

kind, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if kind == "mysql":
    import pymysql

    def connect(pw="meltemi"):
        return pymysql.connect(host="127.0.0.1", port=port, user="meltemi", password=pw,
                               database="meltemi", autocommit=True)
    err = pymysql.err.MySQLError
    ph = "%s"
else:
    import psycopg

    def connect(pw="meltemi"):
        return psycopg.connect(host="127.0.0.1", port=port, user="meltemi", password=pw,
                               dbname="meltemi", sslmode="disable", autocommit=True)
    err = psycopg.Error
    ph = "%s"

c = connect()
cur = c.cursor()
for i in range(n):
    cur.execute("insert into kv (k, v) values (%s, %s)" % (ph, ph), (i, "v%d" % i))
for i in range(n):
    cur.execute("select v from kv where k = %s" % ph, (i,))
    assert [tuple(r) for r in cur.fetchall()] == [("v%d" % i,)]
for i in range(n):
    cur.execute("update kv set v = %s where k = %s" % (ph, ph), ("w", i))
for i in range(n):
    cur.execute("delete from kv where k = %s" % ph, (i,))
try:
    cur.execute("select * from no_such_table")
except err:
    pass
c.close()
try:
    connect("wrong")
    raise SystemExit("login with a wrong password worked")
except err:
    pass
print("ok")
