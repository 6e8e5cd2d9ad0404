#!/usr/bin/env bash
# Installs the system packages Fluxbase needs, when they are missing.
#   system-deps.sh run   PostgreSQL server binaries (for the embedded database)
#   system-deps.sh test  the above plus pgTAP, pg_prove, sqitch and redis-server (shared rate limits)
#   system-deps.sh bench the server binaries plus wrk (the load generator of `make bench`)
#   (test also brings the deployment checkers: nginx for `nginx -t` and the scale-out test,
#   promtool from prometheus, wrk for the rolling-restart load, awscli for backup.sh s3)
#   system-deps.sh containers  podman (runc, cgroupfs) and mmdebstrap for `make test-containers`
#   system-deps.sh node  Node.js and npm (the Node conformance suites; building the dashboard under admin/)
#   system-deps.sh e2e   Debian's chromium (the dashboard's browser tests; never a downloaded browser)
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

if [ "$mode" != node ] && [ "$mode" != e2e ] && ! pg_bin >/dev/null; then
  missing+=(postgresql)
fi

if [ "$mode" = test ]; then
  command -v sqitch >/dev/null 2>&1 || missing+=(sqitch libdbd-pg-perl)
  command -v pg_prove >/dev/null 2>&1 || missing+=(libtap-parser-sourcehandler-pgtap-perl)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v aws >/dev/null 2>&1 || missing+=(awscli)
fi

if [ "$mode" = containers ]; then
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
fi

if [ "$mode" = node ]; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ "$mode" = e2e ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
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

if [ "$mode" = node ]; then
  # Vite 8 needs Node 20.19 or later; an older Debian nodejs cannot build the dashboard.
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "Node.js $(node --version) is too old to build the dashboard: install Node 20 or later" >&2
    exit 1
  fi
fi
