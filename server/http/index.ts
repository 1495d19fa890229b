/** The cache node's HTTP server: the facade the CLI and tests use. */
export { createServer, type AirlockApp, type ServerDeps, type ServeConfig } from './app.js';
export { listenApp, splitListen, type Listening, type ListenOptions } from './listen.js';
export type { StageStarter, Passthrough } from './env.js';
export { parseImageRef, type ImageRef } from '../../manifests/image-ref.js';
export { buildCatalog, type Catalog } from './catalog.js';
export { inProcessStager, type StageJobs } from './stage-job.js';
