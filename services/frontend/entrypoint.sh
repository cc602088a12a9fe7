#!/bin/sh
# Writes runtime-config.js from the environment, then runs the command (the static server).
#   API_BASE_URL         the API's origin as the browser reaches it, e.g. http://127.0.0.1:8000
#                        (empty: the page calls its own origin, for a reverse proxy in front of both)
#   FRONTEND_DEMO_TOKEN  optional bearer token prefilled on the page; for local demos only, since
#                        anyone who can load the page can read it
#   FRONTEND_RUNTIME_DIR where runtime-config.js goes (default /run/botmox-frontend)
# Values are checked against an allow-list instead of escaped: a URL or token that needs escaping
# inside a JavaScript string is a configuration mistake, and failing at start says so.
set -eu

runtime_dir="${FRONTEND_RUNTIME_DIR:-/run/botmox-frontend}"
api_base_url="${API_BASE_URL:-}"
demo_token="${FRONTEND_DEMO_TOKEN:-}"
newline='
'

fail() {
	echo "entrypoint: $1" >&2
	exit 64
}

case "$api_base_url" in
	*"$newline"*) fail "API_BASE_URL must be a single line" ;;
	"" | http://?* | https://?*) ;;
	*) fail "API_BASE_URL must start with http:// or https:// (got '$api_base_url')" ;;
esac
if printf '%s' "$api_base_url" | LC_ALL=C grep -q "[^A-Za-z0-9._~:/?#@!\$&()*+,;=%-]"; then
	fail "API_BASE_URL holds a character that is not allowed in it (quotes, spaces, backslashes, <>)"
fi

case "$demo_token" in
	*"$newline"*) fail "FRONTEND_DEMO_TOKEN must be a single line" ;;
esac
if printf '%s' "$demo_token" | LC_ALL=C grep -q '[^A-Za-z0-9._~+/=-]'; then
	fail "FRONTEND_DEMO_TOKEN holds a character that is not allowed in a bearer token"
fi
if [ -n "$demo_token" ]; then
	token_literal="\"$demo_token\""
else
	token_literal="null"
fi

mkdir -p "$runtime_dir"
temporary="$runtime_dir/.runtime-config.js.$$"
{
	printf '// Written by entrypoint.sh at start; edits are lost on the next start.\n'
	printf 'window.__BOTMOX_CONFIG__ = {"apiBaseUrl": "%s", "token": %s};\n' "$api_base_url" "$token_literal"
} >"$temporary"
chmod 0644 "$temporary"
# A rename, so the server never serves a half-written file.
mv -f "$temporary" "$runtime_dir/runtime-config.js"

exec "$@"
