import { describe, expect, it } from 'vitest';
import {
  LAYOUT_VERSION,
  blobPath,
  envelopePath,
  levelDir,
  lockInfoPath,
  lockPath,
  partialPath,
  quarantinePath,
  tempPath,
} from '../../storage/paths.js';

const D = 'ab' + 'c'.repeat(62);

describe('storage paths', () => {
  it('has a layout version', () => expect(LAYOUT_VERSION).toBe(1));

  it.each([
    ['blob', () => blobPath('/c', D), `/c/blobs/sha256/ab/${D}`],
    ['partial', () => partialPath('/c', D), `/c/partial/${D}`],
    ['temp', () => tempPath('/c', D, 'x1'), `/c/partial/${D}.x1.tmp`],
    ['quarantine', () => quarantinePath('/c', D, new Date('2026-01-02T03:04:05.006Z')), `/c/quarantine/${D}.2026-01-02T03-04-05-006Z`],
    ['level', () => levelDir('/c'), '/c/index/level'],
    ['envelope', () => envelopePath('/c', '3.6.2'), '/c/index/envelopes/3.6.2.json'],
    ['lock', () => lockPath('/c'), '/c/lock'],
    ['lock info', () => lockInfoPath('/c'), '/c/lock.info'],
  ])('%s', (_name, fn, want) => expect(fn()).toBe(want));

  it.each([
    ['upper case', D.toUpperCase()],
    ['short', 'abc'],
    ['traversal', `../${D.slice(3)}`],
    ['prefixed', `sha256:${D}`],
    ['too long', `${D}0`],
    ['empty', ''],
  ])('refuses a digest that is %s', (_name, bad) => {
    expect(() => blobPath('/c', bad)).toThrow(expect.objectContaining({ code: 'EPATH' }));
    expect(() => partialPath('/c', bad)).toThrow(expect.objectContaining({ code: 'EPATH' }));
  });

  it.each(['../x', 'a/b', '.hidden', '', 'a..b', 'x\0y'])('refuses release name %j', (bad) => {
    expect(() => envelopePath('/c', bad)).toThrow(expect.objectContaining({ code: 'EPATH' }));
  });
});
