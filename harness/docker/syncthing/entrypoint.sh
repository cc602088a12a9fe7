#!/bin/sh
# SyncThing on the home the harness wrote ($SYNCTHING_HOME), its GUI/REST on $HOST:$PORT.
set -eu
if [ ! -f "$SYNCTHING_HOME/config.xml" ]; then
    echo "no config.xml in $SYNCTHING_HOME: the harness writes it (harness.syncthing) before the start" >&2
    exit 64
fi
exec syncthing serve --no-browser --no-restart --no-upgrade \
    --home "$SYNCTHING_HOME" --gui-address "$HOST:$PORT" "$@"
