#!/usr/bin/env bash
# ZooKeeper peers for the codec captures and tests, idempotent:
# - the real Apache ZooKeeper server (Debian `zookeeper`, 3.8.x; not `zookeeperd`, which would
#   start a system service; our scripts start their own server on 127.0.0.1),
# - the Python client kazoo 2.11 in the project's virtualenv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
  echo "setup.d/zookeeper: apt-get install zookeeper"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends zookeeper default-jre-headless >/dev/null
fi
if [ ! -f /usr/share/java/slf4j-simple.jar ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libslf4j-java >/dev/null
fi

pip="$root/.venv/bin/pip"
if [ ! -x "$pip" ]; then
  python3 -m venv "$root/.venv"
fi
if [ "$("$pip" show kazoo 2>/dev/null | sed -n 's/^Version: //p')" != "2.11.0" ]; then
  echo "setup.d/zookeeper: pip install kazoo==2.11.0"
  "$pip" install -q --disable-pip-version-check kazoo==2.11.0
fi
