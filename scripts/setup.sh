#!/usr/bin/env bash
# Prepare this machine for airlock's tests: the real third-party tools the
# test world runs (Debian packages), and the fixtures that need the network,
# fetched ONCE into .world-cache/ (gitignored) so that tests never go online.
# Idempotent: a second run installs and downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${AIRLOCK_WORLD_CACHE:-$ROOT/.world-cache}

die() { echo "setup: $*" >&2; exit 1; }

# Debian package → a command it provides (checked after install).
declare -A PKG_CMD=(
  [docker-registry]=docker-registry [skopeo]=skopeo [umoci]=umoci [squid]=squid
  [nginx]=nginx [ruby]=gem [apt-utils]=apt-ftparchive [dpkg-dev]=dpkg-scanpackages
  [curl]=curl [iproute2]=ip [wrk]=wrk [tinyproxy]=tinyproxy [apt-cacher-ng]=apt-cacher-ng
  [gnupg]=gpg [xz-utils]=xz [tar]=tar [gzip]=gzip [prometheus]=promtool [openssl]=openssl
  [docker.io]=dockerd [containerd]=ctr [systemd]=systemd-analyze
  [ruby-bundler]=bundle
  # a real Ceph (mon + osd + radosgw) for the S3 blob backend's tests: scripts/ceph/start.sh
  [radosgw]=radosgw [ceph-mon]=ceph-mon [ceph-osd]=ceph-osd [ceph-common]=ceph
  [haproxy]=haproxy  # in front of several serve replicas: test/support/haproxy.ts
)

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]; }

missing=()
for p in "${!PKG_CMD[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root or: sudo apt-get install ${missing[*]}"
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # policy-rc.d keeps the services from starting on install; the tests start their own.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for p in "${!PKG_CMD[@]}"; do
  command -v "${PKG_CMD[$p]}" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "${PKG_CMD[$p]}" >/dev/null 2>&1 \
    || die "missing tool ${PKG_CMD[$p]} (package $p) after install"
done
id proxy >/dev/null 2>&1 || die "missing user 'proxy' (squid runs as it)"

# Real .deb files, a tiny dependency chain (jq → libjq1 → libonig5) and two leaves.
DEBS=(hello tree jq libjq1 libonig5)
REPO=$CACHE/debs
mkdir -p "$REPO/pool/main"
need=()
for d in "${DEBS[@]}"; do compgen -G "$REPO/pool/main/${d}_*.deb" >/dev/null || need+=("$d"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: downloading ${need[*]} into $REPO/pool/main"
  tmp=$(mktemp -d "$REPO/.dl.XXXXXX")
  ( cd "$tmp" && timeout 300 apt-get -qq -o APT::Sandbox::User=root download "${need[@]}" ) \
    || { rm -rf "$tmp"; die "apt-get download ${need[*]} failed (network or apt sources?)"; }
  mv "$tmp"/*.deb "$REPO/pool/main/" && rmdir "$tmp"
  rm -rf "$REPO/dists"
fi
# An unsigned apt index beside them (`deb [trusted=yes] …`), and the Packages
# file the world reads package/version/arch from.
if [ ! -s "$REPO/dists/stable/main/binary-amd64/Packages" ]; then
  P=dists/stable/main/binary-amd64/Packages
  mkdir -p "$REPO/dists/stable/main/binary-amd64"
  ( cd "$REPO" && dpkg-scanpackages --arch amd64 pool/ > "$P" 2>/dev/null && gzip -9kf "$P" && xz -kf "$P" \
    && apt-ftparchive -o APT::FTPArchive::Release::Origin=Test -o APT::FTPArchive::Release::Suite=stable \
      -o APT::FTPArchive::Release::Codename=stable -o APT::FTPArchive::Release::Architectures=amd64 \
      -o APT::FTPArchive::Release::Components=main release dists/stable > Release.tmp \
    && mv Release.tmp dists/stable/Release ) || die "could not index $REPO"
fi
for d in "${DEBS[@]}"; do compgen -G "$REPO/pool/main/${d}_*.deb" >/dev/null || die "missing $d .deb in $REPO/pool/main"; done
chmod -R a+rX "$CACHE"
echo "setup: ok (tools present, fixtures in ${CACHE#$ROOT/})"
