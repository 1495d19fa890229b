#!/usr/bin/env bash
# The README's quick start: a whole upgrade on this one machine, with no
# internet. A local "upstream world" (nginx with real .debs, gems and
# tarballs, a docker-registry with an image, squid as the site proxy whose
# made-up host names only it resolves) plays the public hosts. Then:
#   publisher: keys, trust root, manifest built from upstream URLs, signed
#   cache node: airlock stage through the proxy, status, serve
#   upstream switched off
#   node: airlock-node upgrade into a throwaway root, from the cache alone
#   air gap: export a bundle, import it into a second, empty cache
# Everything lives under ./demo (or $DEMO_DIR); run it again at will.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
D=${DEMO_DIR:-$REPO/demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "prepare: npm packages, Debian packages for the local upstream, build"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then npm ci --no-audit --no-fund; fi
bash scripts/setup.sh
npm run -s build
node dist/scripts/world/start.js --prepare-only

rm -rf "$D"; mkdir -p "$D"
airlock() { node "$REPO/dist/server/cli/main.js" "$@"; }
airlock_node() { node "$REPO/dist/client/cli/main.js" "$@"; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

step "upstream world on loopback (nginx, docker-registry, squid)"
node dist/scripts/world/start.js --dir "$D/world" > "$D/world.log" 2>&1 & WORLD=$!; PIDS+=("$WORLD")
for _ in $(seq 1 300); do [ -s "$D/world/world.json" ] && break; sleep 0.1; done
[ -s "$D/world/world.json" ] || { cat "$D/world.log"; exit 1; }
PROXY=$(node -p "require('$D/world/world.json').proxyUrl")
REGISTRY=$(node -p "require('$D/world/world.json').registryAddress")
echo "site proxy: $PROXY   registry: $REGISTRY (reachable only through the proxy)"

step "publisher: keys, trust root, manifest built from upstream URLs, signature"
cd "$D"
mkdir -p keys
show airlock keygen --out keys/root
show airlock keygen --out keys/release
show airlock root init --root-key keys/root.key --root-threshold 1 --release-key keys/release.pub \
  --release-threshold 1 --expires 2030-01-01 --out root.json
node -e '
  const w = require(process.argv[1]); const a = w.artifacts.filter((x) => !x.extra);
  const item = (x, extra) => ({ url: x.urls[0], path: x.path, ...extra });
  const y = (v) => JSON.stringify(v);
  const lines = ["product: demo", "release: \"1.0.0\"", "serial: 1", "expires: \"2030-01-01\"",
    "files:", ...a.filter((x) => x.kind === "file").map((x) => "  - " + y(item(x, x.install ? { install: x.install } : {}))),
    "debs:", ...a.filter((x) => x.kind === "deb" && ["hello", "tree"].includes(x.package)).map((x) => "  - " + y(item(x))),
    "gems:", ...a.filter((x) => x.kind === "gem").slice(-1).map((x) => "  - " + y(item(x))),
    "images:", "  - " + y({ image: w.image.reference })];
  require("fs").writeFileSync("sources.yml", lines.join("\n") + "\n");' "$D/world/world.json"
show cat sources.yml
show airlock manifest build sources.yml --proxy "$PROXY" --insecure-registry "$REGISTRY" --out payload.json
show airlock manifest sign payload.json --key keys/release.key --out release.json
show airlock manifest verify release.json --trust root.json

step "cache node: stage through the proxy, then status"
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
CACHE=http://127.0.0.1:$PORT
cat > airlock.yml <<EOF
cache_dir: $D/cache
trust: $D/root.json
proxy: $PROXY
insecure_registries: [$REGISTRY]
listen: 127.0.0.1:$PORT
EOF
show airlock stage release.json
show airlock status 1.0.0
echo "squid saw $(wc -l < world/squid/access.log) upstream requests"

step "cache node: serve on $CACHE; the upstream world is switched off"
# node itself in the background (not the shell function), so cleanup stops the server
node "$REPO/dist/server/cli/main.js" serve > serve.log 2>&1 & SERVE=$!; PIDS+=("$SERVE")
for _ in $(seq 1 100); do curl -fs -o /dev/null "$CACHE/healthz" && break; sleep 0.1; done
kill -0 "$SERVE" 2>/dev/null || { echo "airlock serve did not start:"; cat serve.log; exit 1; }
kill "$WORLD"; wait "$WORLD" 2>/dev/null || true
show curl -fsS $CACHE/releases; echo

pull_with_skopeo() { skopeo copy --quiet --src-tls-verify=false docker://127.0.0.1:$PORT/demo/app:1.0 "oci:$D/pulled:1.0" && echo "skopeo pulled demo/app:1.0 from the cache's registry API"; }

step "node: airlock-node upgrade from the cache alone, into a throwaway root"
show airlock_node upgrade --cache $CACHE --root "$D/node-root" --state-dir "$D/node-state" --trust root.json
show dpkg --root="$D/node-root" -l hello tree
show "$D/node-root/usr/bin/hello"
show ls "$D/node-root/opt/demo"
IMG=$(ls -d "$D"/node-root/var/lib/airlock/images/*/demo/app)
show skopeo inspect --format '{{.Digest}} {{len .Layers}} layers' "oci:$IMG:1.0"
show pull_with_skopeo
show airlock_node upgrade --cache $CACHE --root "$D/node-root" --state-dir "$D/node-state" --trust root.json
show airlock_node status --state-dir "$D/node-state"

step "air gap: export a bundle, import it into an empty cache, status"
show airlock export 1.0.0 --out bundle.tar
show airlock import bundle.tar --cache-dir "$D/airgapped-cache"
show airlock status 1.0.0 --cache-dir "$D/airgapped-cache"

step "done: everything above is in $D"
