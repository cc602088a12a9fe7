#!/bin/sh
# Creates the cluster on first start, then runs the server in the foreground.
#   HOST, PORT               where it listens (127.0.0.1 only on a shared host network)
#   POSTGRES_PASSWORD_ROLES  roles that must log in with a password (scram); every other role is
#                            trusted on 127.0.0.1, like the harness's native throwaway cluster
# Extra arguments are passed to postgres (e.g. -c fsync=off).
set -eu
bin=/usr/lib/postgresql/15/bin
data="${PGDATA:-/var/lib/botmox-postgres/data}"

if [ ! -s "$data/PG_VERSION" ]; then
	"$bin/initdb" --pgdata="$data" --username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
	{
		echo "local all all trust"
		for role in ${POSTGRES_PASSWORD_ROLES:-}; do
			echo "host all $role 127.0.0.1/32 scram-sha-256"
		done
		echo "host all all 127.0.0.1/32 trust"
	} >"$data/pg_hba.conf"
fi

exec "$bin/postgres" -D "$data" \
	-c listen_addresses="${HOST:-127.0.0.1}" \
	-p "${PORT:-5432}" \
	-c unix_socket_directories=/tmp \
	-c password_encryption=scram-sha-256 \
	"$@"
