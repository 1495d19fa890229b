/**
 * A REAL Ceph cluster for a test file: one mon, one OSD (bluestore in a sparse
 * file) and radosgw on 127.0.0.1, started by scripts/ceph/start.sh in a temp
 * folder on free ports, SIGKILLed and removed in teardown. About 4 s to S3-ready
 * on an idle machine; the script retries the steps that race.
 *
 * Without the Ceph packages a suite skips on a laptop and fails in CI
 * (CI=true): scripts/setup.sh installs them.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePorts } from '../../scripts/world/net.js';
import { REPO } from './cli.js';

const START = join(REPO, 'scripts', 'ceph', 'start.sh');
const STOP = join(REPO, 'scripts', 'ceph', 'stop.sh');

// the SDK is pinned on purpose (see package.json's commit): no "needs Node 22 from 2027" warning in test output
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const CEPH_KEYS = { accessKeyId: 'TESTACCESSKEY', secretAccessKey: 'TESTSECRETKEY' };

export interface Ceph {
  endpoint: string;
  dir: string;
  credentials: typeof CEPH_KEYS;
  /** the AWS variables a child process (the CLI) reads its credentials from */
  env: Record<string, string>;
  /** a client on this cluster (path-style, checksums when required only) */
  client(): S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** Whether this machine has the Ceph daemons (ceph-mon, ceph-osd, radosgw, monmaptool). */
export function cephInstalled(): boolean {
  return ['ceph-mon', 'ceph-osd', 'radosgw', 'monmaptool', 'radosgw-admin'].every((c) =>
    ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, c))),
  );
}

/** Skip a Ceph suite only on a machine without Ceph outside CI; in CI a missing Ceph is a failure. */
export const skipWithoutCeph = !cephInstalled() && process.env.CI !== 'true';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

export async function startCeph(): Promise<Ceph> {
  if (!cephInstalled()) throw new Error('Ceph is not installed (ceph-mon ceph-osd radosgw ceph-common): run scripts/setup.sh as root');
  const dir = await mkdtemp(join(tmpdir(), 'airlock-ceph-'));
  let last = '';
  // start.sh retries its racy steps; a whole second start covers a port taken between pick and bind
  for (let attempt = 1; attempt <= 2; attempt++) {
    const [monPort, rgwPort] = await freePorts(2);
    const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin`, MON_PORT: String(monPort), RGW_PORT: String(rgwPort) };
    const r = await run('bash', [START, dir, 'bluestore'], env, 60_000);
    if (r.code === 0) {
      const endpoint = `http://127.0.0.1:${rgwPort}`;
      const clients: S3Client[] = [];
      const ceph: Ceph = {
        endpoint,
        dir,
        credentials: CEPH_KEYS,
        env: {
          AWS_ACCESS_KEY_ID: CEPH_KEYS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: CEPH_KEYS.secretAccessKey,
          AWS_REGION: 'us-east-1',
        },
        client() {
          const c = new S3Client({
            endpoint,
            region: 'us-east-1',
            forcePathStyle: true,
            credentials: CEPH_KEYS,
            requestChecksumCalculation: 'WHEN_REQUIRED',
            responseChecksumValidation: 'WHEN_REQUIRED',
          });
          clients.push(c);
          return c;
        },
        async createBucket(name) {
          await ceph.client().send(new CreateBucketCommand({ Bucket: name }));
        },
        async stop() {
          for (const c of clients) c.destroy();
          await run('bash', [STOP, dir, 'fast'], process.env, 30_000);
          await rm(dir, { recursive: true, force: true });
        },
      };
      return ceph;
    }
    last = r.out;
  }
  await run('bash', [STOP, dir, 'fast'], process.env, 30_000);
  await rm(dir, { recursive: true, force: true });
  throw new Error(`Ceph did not start:\n${last.slice(-3000)}`);
}
