#!/usr/bin/env bash
# Builds airlock_VERSION_ARCH.deb (dpkg-deb, no debhelper): both programs
# under /usr/lib/airlock (dist/ and the production node_modules), the
# /usr/bin/airlock and /usr/bin/airlock-node wrappers, the systemd units,
# /etc/airlock/airlock.yml and the example configs.
#
#   bash scripts/package-deb.sh [--out DIR] [--no-build]
#
# Fast on a second run: dist/ is rebuilt by tsc (incrementally cheap), and the
# production node_modules (a hard-linked copy of ./node_modules pruned of
# devDependencies, offline) is kept per package-lock.json in build/deb/.
#
# Node.js: the package does not Depend on nodejs (>= 20): Debian 12 ships 18,
# so that dependency could only be met from NodeSource and would refuse hosts
# that have Node 20 from elsewhere (an official tarball, /usr/local). It
# Recommends it (apt takes NodeSource's nodejs when that source is set up),
# and the wrappers check the version at every start and say what to do.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build
BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "package-deb: unknown argument $1 (use --out DIR, --no-build)" >&2; exit 2 ;;
  esac
done
die() { echo "package-deb: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (package dpkg)"
[ -d node_modules ] || die "no node_modules: run npm ci first"

VERSION=$(node -p 'require("./package.json").version')
ARCH=$(dpkg --print-architecture) # node_modules holds native code (classic-level)
WORK=$ROOT/build/deb
PKG=$WORK/airlock_${VERSION}_${ARCH}
mkdir -p "$WORK" "$OUT"

if [ "$BUILD" = 1 ]; then npm run -s build; fi
for f in dist/server/cli/main.js dist/client/cli/main.js; do [ -f "$f" ] || die "missing $f: run npm run build"; done

# production node_modules, once per lock file
LOCK=$(sha256sum package-lock.json | cut -c1-16)
MODS=$WORK/node_modules-$LOCK
if [ ! -d "$MODS/node_modules" ]; then
  rm -rf "$WORK"/node_modules-* "$MODS.tmp"
  mkdir -p "$MODS.tmp"
  cp package.json package-lock.json "$MODS.tmp/"
  # a real folder of hard links to the files (node_modules itself may be a link: never work through it)
  SRC=$(realpath node_modules)
  mkdir "$MODS.tmp/node_modules"
  cp -al "$SRC/." "$MODS.tmp/node_modules/" 2>/dev/null || cp -a "$SRC/." "$MODS.tmp/node_modules/"
  [ -d "$MODS.tmp/node_modules" ] && [ ! -L "$MODS.tmp/node_modules" ] || die "could not copy node_modules"
  # npm rewrites this file: a copy of its own, not a link to ours
  rm -f "$MODS.tmp/node_modules/.package-lock.json"
  if [ -f "$SRC/.package-lock.json" ]; then cp "$SRC/.package-lock.json" "$MODS.tmp/node_modules/"; fi
  ( cd "$MODS.tmp" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund >/dev/null ) || die "npm prune --omit=dev failed"
  find "$MODS.tmp/node_modules" -depth -type d -empty -delete
  rm -rf "$MODS.tmp/node_modules/.bin"
  mv "$MODS.tmp" "$MODS"
fi

rm -rf "$PKG"
LIB=$PKG/usr/lib/airlock
mkdir -p "$LIB/dist" "$PKG/usr/bin" "$PKG/lib/systemd/system" "$PKG/etc/airlock" \
  "$PKG/usr/share/doc/airlock/examples" "$PKG/DEBIAN"
for d in manifests common storage server client; do
  # no source maps: they point at sources the package does not carry
  (cd dist && find "$d" -name '*.js' -exec cp --parents -p -t "$LIB/dist/" {} +)
done
cp -al "$MODS/node_modules" "$LIB/node_modules"
node -e '
  const p = require("./package.json");
  const out = { name: p.name, version: p.version, type: p.type, private: true, license: p.license, engines: p.engines, dependencies: p.dependencies };
  require("fs").writeFileSync(process.argv[1], JSON.stringify(out, null, 2) + "\n");
' "$LIB/package.json"

wrapper() { # NAME MAIN
  cat > "$PKG/usr/bin/$1" <<EOF
#!/bin/sh
# $1: runs airlock's $2 with Node.js 20 or newer (AIRLOCK_NODE=/path/to/node to pick one).
LIB=\${AIRLOCK_LIB:-\$(dirname "\$(readlink -f "\$0")")/../lib/airlock}
NODE=\${AIRLOCK_NODE:-\$(command -v node || command -v nodejs || true)}
if [ -z "\$NODE" ]; then
  echo "$1: Node.js 20 or newer is needed and none is on the PATH: install nodejs >= 20 (Debian 12's is 18; e.g. from NodeSource) or set AIRLOCK_NODE=/path/to/node" >&2
  exit 1
fi
MAJOR=\$("\$NODE" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null)
case "\$MAJOR" in ''|*[!0-9]*) MAJOR=0 ;; esac
if [ "\$MAJOR" -lt 20 ]; then
  echo "$1: Node.js 20 or newer is needed; \$NODE is \$("\$NODE" --version 2>/dev/null | head -1): install nodejs >= 20 (Debian 12's is 18; e.g. from NodeSource) or set AIRLOCK_NODE=/path/to/node" >&2
  exit 1
fi
exec "\$NODE" "\$LIB/$2" "\$@"
EOF
  chmod 0755 "$PKG/usr/bin/$1"
}
wrapper airlock dist/server/cli/main.js
wrapper airlock-node dist/client/cli/main.js

install -m 0644 packaging/systemd/*.service packaging/systemd/*.timer "$PKG/lib/systemd/system/"
install -m 0644 packaging/airlock.yml "$PKG/etc/airlock/airlock.yml"
install -m 0644 packaging/airlock.yml packaging/airlock-node.yml "$PKG/usr/share/doc/airlock/examples/"
install -m 0644 README.md "$PKG/usr/share/doc/airlock/"
install -D -m 0644 -t "$PKG/usr/share/doc/airlock/docs" docs/*.md
if compgen -G 'docs/examples/*' >/dev/null; then install -D -m 0644 -t "$PKG/usr/share/doc/airlock/docs/examples" docs/examples/*; fi
printf 'airlock\nLicense: %s\n' "$(node -p 'require("./package.json").license')" > "$PKG/usr/share/doc/airlock/copyright"

SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat > "$PKG/DEBIAN/control" <<EOF
Package: airlock
Version: $VERSION
Architecture: $ARCH
Maintainer: airlock maintainers <airlock@localhost>
Installed-Size: $SIZE
Section: admin
Priority: optional
Depends: adduser
Recommends: nodejs (>= 20)
Suggests: docker.io | containerd, dpkg, ruby
Description: content-addressed artifact cache and mirror for in-place cluster upgrades
 airlock (the cache node: stage, serve, relocate, verify, gc, export,
 import) downloads what a signed release needs through the site proxy and
 serves it on the LAN; airlock-node (on every node) installs a release from
 the cache alone: files, debs, gems and images, offline.
 .
 Needs Node.js 20 or newer (not in Debian 12: see /usr/bin/airlock).
EOF
echo /etc/airlock/airlock.yml > "$PKG/DEBIAN/conffiles"
cat > "$PKG/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd airlock >/dev/null; then
    adduser --system --group --home /var/lib/airlock --no-create-home --gecos "airlock cache node" airlock >/dev/null
  fi
  if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
fi
exit 0
EOF
cat > "$PKG/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
EOF
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/postrm"

DEB=$OUT/airlock_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zgzip -z1 --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
