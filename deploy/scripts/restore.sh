#!/usr/bin/env bash
# Restores a backup made by backup.sh: checksums first, then roles, the database, the
# configuration files and the local storage folder. Stop Fluxbase before (it holds connections).
#   deploy/scripts/restore.sh <YYYYmmdd_HHMMSS>        from $BACKUP_DIR/<stamp>/
#   deploy/scripts/restore.sh <YYYYmmdd_HHMMSS> s3     downloaded from S3 first
#
# Environment: DATABASE_URL (the database to restore into; created when missing, otherwise its
# objects are replaced), BACKUP_DIR, BACKUP_S3_BUCKET, BACKUP_S3_PREFIX, BACKUP_S3_ENDPOINT as
# for backup.sh; RESTORE_ADMIN_URL (default: DATABASE_URL on database `postgres`) to create the
# database and roles; RESTORE_ROOT (default /) where configuration files are put back;
# RESTORE_SKIP (space-separated: roles database config storage) to leave parts out.
set -euo pipefail

stamp=${1:-}
mode=${2:-local}
if [[ ! "$stamp" =~ ^[0-9]{8}_[0-9]{6}$ ]] || [[ "$mode" != local && "$mode" != s3 ]]; then
  echo "usage: $0 <YYYYmmdd_HHMMSS> [local|s3]" >&2
  exit 2
fi
: "${DATABASE_URL:?DATABASE_URL must name the database to restore into}"
BACKUP_DIR=${BACKUP_DIR:-/var/backups/fluxbase}
S3_PREFIX=${BACKUP_S3_PREFIX:-fluxbase-backups}
RESTORE_ROOT=${RESTORE_ROOT:-/}
RESTORE_SKIP=" ${RESTORE_SKIP:-} "
source_dir="$BACKUP_DIR/$stamp"

log() { echo "restore: $*" >&2; }
wanted() { [[ "$RESTORE_SKIP" != *" $1 "* ]]; }
psql_run() { psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 "$@"; }

if [ "$mode" = s3 ]; then
  : "${BACKUP_S3_BUCKET:?BACKUP_S3_BUCKET must name the bucket}"
  command -v aws >/dev/null 2>&1 || { echo "s3 restores need the aws command (apt-get install awscli)" >&2; exit 1; }
  endpoint=()
  [ -n "${BACKUP_S3_ENDPOINT:-}" ] && endpoint=(--endpoint-url "$BACKUP_S3_ENDPOINT")
  mkdir -p "$source_dir"
  log "downloading s3://$BACKUP_S3_BUCKET/$S3_PREFIX/$stamp/"
  aws "${endpoint[@]}" s3 cp --recursive --only-show-errors "s3://$BACKUP_S3_BUCKET/$S3_PREFIX/$stamp/" "$source_dir"
fi
[ -d "$source_dir" ] || { echo "no backup $source_dir" >&2; exit 1; }

# Nothing is touched unless every file is exactly what the backup wrote.
log "verifying checksums"
(cd "$source_dir" && sha256sum --check --quiet SHA256SUMS) || { echo "checksum mismatch in $source_dir" >&2; exit 1; }

# The database's name and a URL for the maintenance database on the same server.
database=$(sed -E 's#^[a-z]+://[^/]*/([^?]*).*$#\1#' <<<"$DATABASE_URL")
database=$(printf '%b' "${database//%/\\x}")
admin_url=${RESTORE_ADMIN_URL:-$(sed -E 's#^([a-z]+://[^/]*/)[^?]*#\1postgres#' <<<"$DATABASE_URL")}
[ -n "$database" ] || { echo "DATABASE_URL names no database" >&2; exit 2; }

if wanted roles; then
  # Roles are cluster-wide: a role that exists already is kept and given the backup's attributes.
  log "roles"
  sed -E 's/^CREATE ROLE (.*);$/DO $restore$ BEGIN CREATE ROLE \1; EXCEPTION WHEN duplicate_object THEN NULL; END $restore$;/' \
    "$source_dir/roles.sql" | PGOPTIONS="-c client_min_messages=warning" psql_run --dbname="$admin_url" >/dev/null
fi

if wanted database; then
  # psql interpolates :'name' (quoted as a literal) and :"name" (an identifier) only in scripts.
  exists=$(psql_run --tuples-only --no-align --dbname="$admin_url" --set name="$database" \
    <<<"select 1 from pg_database where datname = :'name'")
  if [ "$exists" != 1 ]; then
    log "creating database $database"
    psql_run --dbname="$admin_url" --set name="$database" <<<'create database :"name"'
  fi
  log "database $database (one transaction)"
  pg_restore --clean --if-exists --single-transaction --exit-on-error \
    --dbname="$DATABASE_URL" "$source_dir/database.dump"
  psql_run --dbname="$DATABASE_URL" -c 'analyze' >/dev/null
fi

if wanted config; then
  log "configuration files under $RESTORE_ROOT"
  mkdir -p "$RESTORE_ROOT"
  tar -xzf "$source_dir/config.tar.gz" -C "$RESTORE_ROOT"
fi

if wanted storage && [ -f "$source_dir/storage.tar.gz" ]; then
  storage=${FLUXBASE_STORAGE_LOCAL_PATH:-$(cat "$source_dir/storage.path")}
  log "storage -> $storage"
  # The folder becomes exactly the backup's: files written since are removed.
  mkdir -p "$storage"
  find "$storage" -mindepth 1 -delete
  tar -xzf "$source_dir/storage.tar.gz" -C "$storage"
fi
log "done: $stamp restored"
