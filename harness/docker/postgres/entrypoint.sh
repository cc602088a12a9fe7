#!/bin/sh
# Creates the cluster on first start, then runs the server in the foreground.
#   HOST, PORT               where it listens (127.0.0.1 only on a shared host network)
#   POSTGRES_PASSWORD        the official postgres image's interface, for a server (the deploy's db-only
#                            profile): the superuser's password, and every TCP login needs a password
#   POSTGRES_PASSWORD_ROLES  without POSTGRES_PASSWORD: roles that must log in with a password (scram);
#                            every other role is trusted on 127.0.0.1, like the harness's native cluster
# Extra arguments are passed to postgres (e.g. -c fsync=off).
set -eu
bin=/usr/lib/postgresql/15/bin
data="${PGDATA:-/var/lib/botmox-postgres/data}"

if [ ! -s "$data/PG_VERSION" ] && [ -n "${POSTGRES_PASSWORD:-}" ]; then
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	"$bin/initdb" --pgdata="$data" --username=postgres --pwfile="$pwfile" --auth-local=trust \
		--auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
	rm -f "$pwfile"
	{
		echo "local all all trust"
		echo "host all all all scram-sha-256"
	} >"$data/pg_hba.conf"
elif [ ! -s "$data/PG_VERSION" ]; then
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
