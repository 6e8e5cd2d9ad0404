#!/usr/bin/env bash
# Installs the system packages Fluxbase needs, when they are missing.
#   system-deps.sh run   PostgreSQL server binaries (for the embedded database)
#   system-deps.sh test  the above plus pgTAP, pg_prove, sqitch and redis-server (shared rate limits)
#   system-deps.sh bench the server binaries plus wrk (the load generator of `make bench`)
#   system-deps.sh node  Node.js and npm (the storage-js conformance suite runs under Node 20)
# Debian/Ubuntu through apt-get; elsewhere it says what to install.
set -euo pipefail

mode=${1:-run}
missing=()

pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

if ! pg_bin >/dev/null; then
  missing+=(postgresql)
fi

if [ "$mode" = test ]; then
  command -v sqitch >/dev/null 2>&1 || missing+=(sqitch libdbd-pg-perl)
  command -v pg_prove >/dev/null 2>&1 || missing+=(libtap-parser-sourcehandler-pgtap-perl)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
fi

if [ "$mode" = node ]; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ "$mode" = bench ]; then
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
fi

install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing system packages: $*. Install them with your package manager." >&2
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "Missing system packages: $*; run as root: apt-get install $*" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "Installing system packages: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ${#missing[@]} -gt 0 ]; then
  # shellcheck disable=SC2207
  install $(printf '%s\n' "${missing[@]}" | sort -u)
fi

if [ "$mode" = test ]; then
  # pgTAP's extension must match the server's major version.
  bin=$(pg_bin)
  version=$(basename "$(dirname "$bin")")
  sharedir=$("$bin/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$version")
  if [ ! -f "$sharedir/extension/pgtap.control" ]; then
    install "postgresql-$version-pgtap"
  fi
  # PostGIS: the data API's application/geo+json output is tested against the real extension.
  if [ ! -f "$sharedir/extension/postgis.control" ]; then
    install "postgresql-$version-postgis-3"
  fi
fi
