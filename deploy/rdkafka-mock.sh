#!/bin/sh
# Builds the embedded broker's own librdkafka: Debian's librdkafka 2.0.2-1 source with
# deploy/rdkafka-mock.patch (see its header for what it changes and why), shared library
# only, installed as bin/rdkafka-mock/librdkafka.so.1. The supervisor runs the embedded
# broker on it (LD_LIBRARY_PATH) when it is there; the ingress, workers and notifier stay
# on Debian's library. `make run`, `make test` and `make bench` call this script.
#
# It never fails the build: when the source cannot be had (no network, no apt) or does not
# build, it prints one warning, removes a stale library and exits 0, and the broker runs on
# Debian's library. The source comes once from the Debian archive through apt (a private
# deb-src list and state under the cache folder: the system's apt sources stay untouched;
# apt checks the files against the signed Sources index) and is kept under
# build/rdkafka-mock/. A rebuild happens only when the patch's diff or this script changes.
#   RDKAFKA_MOCK=0   skip (and remove the library): the broker runs on Debian's library
VERSION=2.0.2-1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=$ROOT/build/rdkafka-mock
PATCH=$ROOT/deploy/rdkafka-mock.patch
OUT=$ROOT/bin/rdkafka-mock
STAMP=$OUT/stamp

warn() {
	echo "rdkafka-mock: $*; the embedded broker will run on Debian's librdkafka (slower once its partitions fill)" >&2
	[ -n "${LOG:-}" ] && [ -s "$LOG" ] && tail -n 15 "$LOG" >&2
	rm -rf "$OUT"
	exit 0
}

if [ "${RDKAFKA_MOCK:-1}" = 0 ]; then
	rm -rf "$OUT"
	exit 0
fi
# the patch's diff (not its header) and this script decide whether the library is current
want="$VERSION $({ sed -n '/^diff /,$p' "$PATCH"; cat "$0"; } | sha256sum | cut -c1-16)"
[ -f "$OUT/librdkafka.so.1" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && exit 0

mkdir -p "$CACHE" || warn "cannot create $CACHE"
LOG=$CACHE/build.log
: >"$LOG"
dsc=$CACHE/librdkafka_$VERSION.dsc
if [ ! -f "$dsc" ]; then
	echo "rdkafka-mock: fetching Debian's librdkafka $VERSION source (once)" >&2
	mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial"
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
		>"$CACHE/apt/sources.list"
	# -o APT::Sandbox::User=root: the cache folder is not readable by apt's _apt user
	set -- -o Dir::Etc::sourcelist="$CACHE/apt/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$CACHE/apt/lists" -o Dir::Cache="$CACHE/apt/cache" \
		-o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)" -qq
	command -v apt-get >/dev/null 2>&1 || warn "no apt-get"
	apt-get "$@" update >>"$LOG" 2>&1 || warn "apt-get update (deb-src) failed"
	(cd "$CACHE" && apt-get "$@" source --download-only "librdkafka=$VERSION") >>"$LOG" 2>&1 ||
		warn "cannot download librdkafka $VERSION's source"
fi
command -v dpkg-source >/dev/null 2>&1 || warn "no dpkg-source (dpkg-dev)"
src=$CACHE/src
rm -rf "$src"
# dpkg-source applies Debian's own patches, so the build differs from Debian's only by ours
dpkg-source -x "$dsc" "$src" >>"$LOG" 2>&1 || warn "cannot unpack $dsc"
(cd "$src" && patch -p1 --no-backup-if-mismatch) <"$PATCH" >>"$LOG" 2>&1 || warn "$PATCH does not apply"
echo "rdkafka-mock: building the patched librdkafka for the embedded broker (shared library only)" >&2
(cd "$src" && ./configure --no-download --disable-ssl --disable-gssapi --disable-zstd --disable-zlib \
	--disable-curl --disable-lz4-ext --disable-syslog &&
	make -C src -j"$(nproc)" librdkafka.so.1) >>"$LOG" 2>&1 || warn "the patched librdkafka did not build (log: $LOG)"
mkdir -p "$OUT" && cp "$src/src/librdkafka.so.1" "$OUT/librdkafka.so.1.tmp" &&
	mv "$OUT/librdkafka.so.1.tmp" "$OUT/librdkafka.so.1" && echo "$want" >"$STAMP" || warn "cannot install into $OUT"
rm -rf "$src"
echo "rdkafka-mock: built $OUT/librdkafka.so.1" >&2
