#!/usr/bin/env bash
# Backs Fluxbase up: the database, its roles, the configuration and local file storage.
#   deploy/scripts/backup.sh local   into $BACKUP_DIR/<YYYYmmdd_HHMMSS>/
#   deploy/scripts/backup.sh s3      the same, then uploaded to s3://$BACKUP_S3_BUCKET/$BACKUP_S3_PREFIX/<stamp>/
# Restore with deploy/scripts/restore.sh <stamp> [local|s3].
#
# Environment:
#   DATABASE_URL                 the database, as its owner (a superuser also dumps role passwords)
#   BACKUP_DIR                   where backups are kept (default /var/backups/fluxbase)
#   RETENTION_DAYS               backups older than this are deleted, locally and in S3 (default 30)
#   FLUXBASE_CONFIG_FILES        configuration to keep (default: /etc/fluxbase/env /etc/fluxbase/fluxbase.yaml)
#   FLUXBASE_STORAGE_LOCAL_PATH  the local storage folder (storage.local_path), when files are stored locally
#   BACKUP_S3_BUCKET, BACKUP_S3_PREFIX (default fluxbase-backups), BACKUP_S3_ENDPOINT (for MinIO etc.)
#   and the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION for `aws s3`
# Each backup holds database.dump (pg_dump -Fc), roles.sql (pg_dumpall --roles-only),
# config.tar.gz, storage.tar.gz (when a local storage folder is set) and SHA256SUMS over them.
set -euo pipefail
umask 077

mode=${1:-}
case "$mode" in
  local|s3) ;;
  *) echo "usage: $0 local|s3" >&2; exit 2 ;;
esac

: "${DATABASE_URL:?DATABASE_URL must name the database to back up}"
BACKUP_DIR=${BACKUP_DIR:-/var/backups/fluxbase}
RETENTION_DAYS=${RETENTION_DAYS:-30}
CONFIG_FILES=${FLUXBASE_CONFIG_FILES:-/etc/fluxbase/env /etc/fluxbase/fluxbase.yaml}
STORAGE_PATH=${FLUXBASE_STORAGE_LOCAL_PATH:-}
S3_PREFIX=${BACKUP_S3_PREFIX:-fluxbase-backups}

case "$RETENTION_DAYS" in
  ''|*[!0-9]*) echo "RETENTION_DAYS must be a whole number of days, got '$RETENTION_DAYS'" >&2; exit 2 ;;
esac
if [ "$mode" = s3 ]; then
  : "${BACKUP_S3_BUCKET:?BACKUP_S3_BUCKET must name the bucket for s3 backups}"
  command -v aws >/dev/null 2>&1 || { echo "s3 backups need the aws command (apt-get install awscli)" >&2; exit 1; }
fi

log() { echo "backup: $*" >&2; }
aws_s3() {
  if [ -n "${BACKUP_S3_ENDPOINT:-}" ]; then aws --endpoint-url "$BACKUP_S3_ENDPOINT" s3 "$@"; else aws s3 "$@"; fi
}

stamp=$(date -u +%Y%m%d_%H%M%S)
target="$BACKUP_DIR/$stamp"
mkdir -p "$BACKUP_DIR"
partial="$target.partial"
rm -rf "$partial"
mkdir "$partial"
# A failed run leaves no backup that looks complete.
trap 'rm -rf "$partial"' EXIT

log "database -> $target/database.dump"
pg_dump --format=custom --compress=6 --file="$partial/database.dump" --dbname="$DATABASE_URL"

log "roles -> roles.sql"
if ! pg_dumpall --roles-only --dbname="$DATABASE_URL" >"$partial/roles.sql" 2>"$partial/roles.err"; then
  # Only a superuser may read password hashes: keep the roles and their grants without them.
  log "roles without passwords (not a superuser): $(head -1 "$partial/roles.err")"
  pg_dumpall --roles-only --no-role-passwords --dbname="$DATABASE_URL" >"$partial/roles.sql"
fi
rm -f "$partial/roles.err"

config_present=()
for file in $CONFIG_FILES; do
  if [ -f "$file" ]; then config_present+=("$(readlink -f "$file")"); else log "no $file (skipped)"; fi
done
log "config -> config.tar.gz (${#config_present[@]} files)"
# Paths are kept absolute (without the leading /), so restore.sh puts each file back where it was.
if [ ${#config_present[@]} -gt 0 ]; then
  tar -czf "$partial/config.tar.gz" -C / "${config_present[@]#/}"
else
  tar -czf "$partial/config.tar.gz" --files-from=/dev/null
fi

if [ -n "$STORAGE_PATH" ]; then
  if [ ! -d "$STORAGE_PATH" ]; then
    echo "FLUXBASE_STORAGE_LOCAL_PATH=$STORAGE_PATH is not a folder" >&2
    exit 1
  fi
  log "storage $STORAGE_PATH -> storage.tar.gz"
  tar -czf "$partial/storage.tar.gz" -C "$STORAGE_PATH" .
  readlink -f "$STORAGE_PATH" >"$partial/storage.path"
fi

{
  echo "created=$stamp"
  echo "pg_dump=$(pg_dump --version)"
  echo "server_version=$(psql --no-psqlrc --tuples-only --no-align --dbname="$DATABASE_URL" -c 'show server_version')"
} >"$partial/manifest"

(cd "$partial" && sha256sum -- * >SHA256SUMS)
mv "$partial" "$target"
trap - EXIT
log "done: $target"

if [ "$mode" = s3 ]; then
  log "uploading to s3://$BACKUP_S3_BUCKET/$S3_PREFIX/$stamp/"
  aws_s3 cp --recursive --only-show-errors "$target" "s3://$BACKUP_S3_BUCKET/$S3_PREFIX/$stamp/"
fi

# Retention: stamps sort as dates, so anything below the cutoff's stamp is older.
cutoff=$(date -u -d "-$RETENTION_DAYS days" +%Y%m%d_%H%M%S)
for old in "$BACKUP_DIR"/*; do
  name=$(basename "$old")
  if [[ -d "$old" && "$name" =~ ^[0-9]{8}_[0-9]{6}$ && "$name" < "$cutoff" ]]; then
    log "retention: removing $old"
    rm -rf -- "$old"
  fi
done
if [ "$mode" = s3 ]; then
  aws_s3 ls "s3://$BACKUP_S3_BUCKET/$S3_PREFIX/" | awk '$1 == "PRE" {print $2}' | tr -d / |
    while read -r name; do
      if [[ "$name" =~ ^[0-9]{8}_[0-9]{6}$ && "$name" < "$cutoff" ]]; then
        log "retention: removing s3://$BACKUP_S3_BUCKET/$S3_PREFIX/$name/"
        aws_s3 rm --recursive --only-show-errors "s3://$BACKUP_S3_BUCKET/$S3_PREFIX/$name/"
      fi
    done
fi
echo "$stamp"
