#!/usr/bin/env bash
# THE test command (README, CI): dependencies, the machine's test tools and
# fixtures, a build, then the whole vitest suite. Extra arguments go to vitest,
# e.g. `bash scripts/test.sh test/e2e/world.test.ts`.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm ci only when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "test: npm ci (node_modules missing or stale)"
  npm ci --no-audit --no-fund
fi

if ! bash scripts/setup.sh; then
  # In CI a missing tool is a failure; on a laptop the suites that need it say so themselves.
  if [ "${CI:-}" = true ]; then echo "test: setup failed (CI=true): stopping" >&2; exit 1; fi
  echo "test: setup failed: tests that need the missing tools will fail" >&2
fi

npm run -s build
# build the world's cached gems and image once, before parallel suites race to
node dist/scripts/world/start.js --prepare-only || [ "${CI:-}" != true ]

# The suite must stay well under 15 minutes; a hang is a failure, not a stuck CI job.
exec timeout -k 10 "${AIRLOCK_TEST_TIMEOUT:-840}" npx vitest run "$@"
