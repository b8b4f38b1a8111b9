#!/bin/sh
# Installs the Debian packages atende needs to build, run and test (as root),
# or prints the exact apt-get line to run (as anyone else). Quiet when all are present.
PKGS="build-essential pkg-config libevent-dev libpq-dev librdkafka-dev libcurl4-openssl-dev
libcjson-dev libconfig-dev libssl-dev postgresql postgresql-client kcat python3 python3-pytest
python3-websocket wrk"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 || exit 1
	apt-get install -y -qq --no-install-recommends $missing >&2 || exit 1
else
	echo "deps: missing packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
