#!/usr/bin/env bash
# Real MySQL (MariaDB) and PostgreSQL peers for the mysql/postgres codecs and
# testkit/tests/observe_sql.rs: Debian's mariadb-server/-client, postgresql (+contrib for
# pg_stat_statements), sysbench; PyPI PyMySQL and psycopg into the venv. Idempotent.
# Debian starts system services on install: they are stopped and disabled here, the tests
# start their own servers on free 127.0.0.1 ports with their own data dirs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
ls /usr/share/postgresql/*/extension/pg_stat_statements.control >/dev/null 2>&1 || need+=(postgresql-contrib)
command -v sysbench >/dev/null 2>&1 || need+=(sysbench)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: do not start services during this install.
  prc=/usr/sbin/policy-rc.d; made=0
  if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made=1; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$made" = 1 ] && rm -f "$prc"
fi
for svc in mariadb mysql postgresql; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled "$svc" >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
  service "$svc" stop >/dev/null 2>&1 || true
done
venv="$here/.venv"
if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import pymysql, psycopg' >/dev/null 2>&1; then
  "$venv/bin/pip" install -q --disable-pip-version-check PyMySQL 'psycopg[binary]'
fi
echo "setup.d/sql: ok ($(/usr/sbin/mariadbd --version 2>/dev/null | cut -d' ' -f4), postgres $(ls /usr/lib/postgresql | tail -1))"
