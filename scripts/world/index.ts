/**
 * The test world's facade: real upstreams (nginx, docker-registry) behind a
 * real squid, plus release payloads and test keys to sign them with.
 * Tests import it as `../../scripts/world/index.js`; the demo and benchmarks
 * run dist/scripts/world/start.js.
 */
export { startWorld, IMAGE_REPO, IMAGE_TAG } from './world.js';
export { releasePayload, worldArtifacts, rfc3339, type ReleaseOptions } from './release.js';
export { makeTrust, makeKey, signRelease, keyId, rawPublic, type Trust, type TestKey } from './keys.js';
export { ACCEPT_ALL, OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST } from './registry.js';
export { cacheDir, repoRoot } from './cache.js';
export { prepareFixtures } from './fixtures.js';
export * from './types.js';
