#!/bin/sh
# Installs the Debian packages atende needs (as root), or prints the exact apt-get line
# to run (as anyone else). Quiet when all are present.
#   deploy/deps.sh        build and run: compilers, libraries, PostgreSQL, kcat
#   deploy/deps.sh test   also what the tests and benchmarks use: pytest, WebSocket client,
#                         wrk, promtool (prometheus), headless Chromium, Node.js for the
#                         browser test (only when no node/npm is on the PATH already), clang
#                         with libFuzzer for the fuzz targets, valgrind
PKGS="build-essential pkg-config libevent-dev libpq-dev librdkafka-dev libcurl4-openssl-dev
libcjson-dev libconfig-dev libssl-dev libcrypt-dev zlib1g-dev postgresql postgresql-client kcat python3 curl"
if [ "${1:-}" = test ]; then
	PKGS="$PKGS python3-pytest python3-websocket wrk prometheus chromium clang libclang-rt-14-dev valgrind"
	command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
	command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
fi
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
