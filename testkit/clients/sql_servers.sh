#!/usr/bin/env bash
# Starts a throwaway MariaDB or PostgreSQL on 127.0.0.1:PORT with its own data dir DIR, in the
# foreground (exec: the caller owns the PID and stops it). Runs the server as the packages'
# unprivileged users when started as root (both servers refuse to run as root).
#   sql_servers.sh mariadb|postgres PORT DIR [--init-only]
# --init-only creates the data dir and stops (testkit then starts the server binary itself
# under that user, so the PID it kills is the server's).
# Users created: MariaDB 'meltemi'@'%' / 'meltemi' (database meltemi); PostgreSQL superuser
# meltemi / 'meltemi' (md5 over TCP, database meltemi, pg_stat_statements loaded).
set -euo pipefail
kind=$1 port=$2 dir=$3
as() { if [ "$(id -u)" = 0 ]; then runuser -u "$1" -- "${@:2}"; else "${@:2}"; fi; }
mkdir -p "$dir"
case $kind in
mariadb)
  u=mysql; [ "$(id -u)" = 0 ] && chown "$u" "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    as $u mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=socket \
      --skip-test-db >"$dir/install.log" 2>&1
    cat >"$dir/init.sql" <<SQL
CREATE DATABASE IF NOT EXISTS meltemi;
CREATE USER IF NOT EXISTS 'meltemi'@'%' IDENTIFIED BY 'meltemi';
CREATE USER IF NOT EXISTS 'meltemi'@'localhost' IDENTIFIED BY 'meltemi';
GRANT ALL ON *.* TO 'meltemi'@'%';
GRANT ALL ON *.* TO 'meltemi'@'localhost';
SQL
    [ "$(id -u)" = 0 ] && chown $u "$dir/init.sql"
    init=(--init-file="$dir/init.sql")
  else
    init=()
  fi
  [ "${4:-}" = --init-only ] && exit 0
  exec_as=(); [ "$(id -u)" = 0 ] && exec_as=(runuser -u $u --)
  exec "${exec_as[@]}" /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --port="$port" \
    --bind-address=127.0.0.1 --socket="$dir/sock" --pid-file="$dir/pid" --skip-log-bin \
    --innodb-buffer-pool-size=32M --skip-name-resolve "${init[@]}" --log-error="$dir/error.log"
  ;;
postgres)
  u=postgres; [ "$(id -u)" = 0 ] && chown "$u" "$dir"
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    printf 'meltemi\n' >"$dir/pw"; [ "$(id -u)" = 0 ] && chown $u "$dir/pw"
    as $u "$bin/initdb" -D "$dir/data" -U meltemi --pwfile="$dir/pw" -A md5 >"$dir/initdb.log" 2>&1
    printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\nfsync = off\nunix_socket_directories = '%s'\n" "$dir" >>"$dir/data/postgresql.conf"
  fi
  [ "${4:-}" = --init-only ] && exit 0
  exec_as=(); [ "$(id -u)" = 0 ] && exec_as=(runuser -u $u --)
  exec "${exec_as[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1
  ;;
*) echo "usage: $0 mariadb|postgres PORT DIR" >&2; exit 2 ;;
esac
