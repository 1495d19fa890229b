/**
 * The node's preflight with the kernel's figures handed in: one probe per
 * path (free bytes and the device it sits on) and one memory figure, so the
 * numbers in each refusal are known to the byte.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { preflight, type PreflightNeeds, type PreflightProbes } from '../../client/preflight.js';
import { isAirlockError, type AirlockError } from '../../manifests/errors.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** Each path's filesystem: its device and free bytes; memory available. */
function probes(disks: Record<string, { device: number; free: number }>, memory: number): PreflightProbes & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    disk: async (path) => {
      asked.push(path);
      const d = disks[path];
      if (!d) throw new Error(`no disk for ${path}`);
      return d;
    },
    memory: () => memory,
  };
}

const needs = (over: Partial<PreflightNeeds> = {}): PreflightNeeds => ({
  staging: { path: '/state/staging', bytes: 300 * MiB },
  install: { path: '/root', bytes: 200 * MiB },
  margin: 256 * MiB,
  memoryFloor: 512 * MiB,
  roles: ['router'],
  ...over,
});

const refusal = (p: Promise<unknown>): Promise<AirlockError> =>
  p.then(
    () => {
      throw new Error('preflight passed, expected a refusal');
    },
    (e: unknown) => e as AirlockError,
  );

describe('preflight', () => {
  it('passes with room on two filesystems, each needing its bytes plus the margin', async () => {
    const p = probes({ '/state/staging': { device: 1, free: 10 * GiB }, '/root': { device: 2, free: 10 * GiB } }, 4 * GiB);
    const report = await preflight(needs(), p);
    expect(p.asked).toEqual(['/state/staging', '/root']);
    expect(report).toEqual({
      disks: [
        { what: 'staging', path: '/state/staging', device: 1, needed: 556 * MiB, free: 10 * GiB },
        { what: 'install root', path: '/root', device: 2, needed: 456 * MiB, free: 10 * GiB },
      ],
      memory: { needed: 512 * MiB, available: 4 * GiB },
    });
  });

  it('one filesystem holding staging and the root adds the needs up, the margin once', async () => {
    const p = probes({ '/state/staging': { device: 7, free: 10 * GiB }, '/root': { device: 7, free: 10 * GiB } }, 4 * GiB);
    const { disks } = await preflight(needs(), p);
    expect(disks).toEqual([{ what: 'staging and install root', path: '/state/staging', device: 7, needed: 756 * MiB, free: 10 * GiB }]);
  });

  it('ENOSPACE names the staging filesystem, what it needs with the margin, what is free and by how much it falls short', async () => {
    const p = probes({ '/state/staging': { device: 1, free: 500 * MiB }, '/root': { device: 2, free: 10 * GiB } }, 4 * GiB);
    const err = await refusal(preflight(needs(), p));
    expect(isAirlockError(err, 'ENOSPACE'), String(err)).toBe(true);
    expect(err.message).toBe(
      'not enough free disk for the staging at /state/staging: need 556.0 MiB (incl. 256.0 MiB margin), 500.0 MiB free, short by 56.0 MiB',
    );
    expect(err.details).toEqual({ what: 'staging', path: '/state/staging', needed: 556 * MiB, free: 500 * MiB });
  });

  it('ENOSPACE names the install root when only it is short', async () => {
    const p = probes({ '/state/staging': { device: 1, free: 10 * GiB }, '/root': { device: 2, free: 456 * MiB - 1 } }, 4 * GiB);
    const err = await refusal(preflight(needs(), p));
    expect(isAirlockError(err, 'ENOSPACE'), String(err)).toBe(true);
    expect(err.message).toMatch(/^not enough free disk for the install root at \/root: need 456\.0 MiB \(incl\. 256\.0 MiB margin\), 456\.0 MiB free, short by 1 B$/);
    expect(err.details).toMatchObject({ what: 'install root', needed: 456 * MiB, free: 456 * MiB - 1 });
  });

  it('exactly enough is enough', async () => {
    const p = probes({ '/state/staging': { device: 1, free: 556 * MiB }, '/root': { device: 2, free: 456 * MiB } }, 512 * MiB);
    await expect(preflight(needs(), p)).resolves.toMatchObject({ memory: { needed: 512 * MiB, available: 512 * MiB } });
  });

  it('ENOSPACE on a shared filesystem names both and counts both needs', async () => {
    const p = probes({ '/state/staging': { device: 3, free: 700 * MiB }, '/root': { device: 3, free: 700 * MiB } }, 4 * GiB);
    const err = await refusal(preflight(needs(), p));
    expect(err.message).toBe(
      'not enough free disk for the staging and install root at /state/staging: need 756.0 MiB (incl. 256.0 MiB margin), 700.0 MiB free, short by 56.0 MiB',
    );
  });

  it('EMEMORY names the floor, the roles, what is available and the shortfall; disks are checked first', async () => {
    const p = probes({ '/state/staging': { device: 1, free: 10 * GiB }, '/root': { device: 2, free: 10 * GiB } }, 768 * MiB);
    const err = await refusal(preflight(needs({ memoryFloor: GiB, roles: ['core', 'router'] }), p));
    expect(isAirlockError(err, 'EMEMORY'), String(err)).toBe(true);
    expect(err.message).toBe('not enough free memory: need 1.0 GiB for roles [core, router], 768.0 MiB available, short by 256.0 MiB');
    expect(err.details).toEqual({ needed: GiB, available: 768 * MiB });

    const both = probes({ '/state/staging': { device: 1, free: 0 }, '/root': { device: 2, free: 10 * GiB } }, 0);
    expect((await refusal(preflight(needs(), both))).code).toBe('ENOSPACE');
  });

  it('EMEMORY for a node without roles says "none"', async () => {
    const p = probes({ '/state/staging': { device: 1, free: 10 * GiB }, '/root': { device: 2, free: 10 * GiB } }, 100 * MiB);
    const err = await refusal(preflight(needs({ roles: [] }), p));
    expect(err.message).toBe('not enough free memory: need 512.0 MiB for roles [none], 100.0 MiB available, short by 412.0 MiB');
  });

  it("without probes it measures the kernel's figures (a temp folder not made yet, on the same disk as its parent)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-preflight-'));
    const report = await preflight(needs({ staging: { path: join(dir, 'staging'), bytes: 1 }, install: { path: join(dir, 'root'), bytes: 1 }, margin: 0, memoryFloor: 1 }));
    expect(report.disks).toHaveLength(1);
    expect(report.disks[0]).toMatchObject({ what: 'staging and install root', needed: 2 });
    expect(report.disks[0]!.free).toBeGreaterThan(0);
    expect(report.memory.available).toBeGreaterThan(0);
  });
});
