#!/bin/sh
# The streaming replica: cloned from the primary with pg_basebackup -R on first start.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres-primary -U replicator; do sleep 1; done
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h postgres-primary -U replicator \
    -D "$PGDATA" -R -X stream -C -S replica1 -c fast
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on
