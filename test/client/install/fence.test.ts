import { describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Fence } from '../../../client/install/fence.js';
import { isAirlockError } from '../../../manifests/errors.js';
import { failure, sandbox } from './hostile.js';

describe('Fence', () => {
  // links planted in the root, and where a path through them really is (null: EPATH)
  const cases: Array<[string, Array<[string, string]>, string, string | null]> = [
    ['no link', [], 'opt/app/x', 'opt/app/x'],
    ['a relative link inside', [['opt', 'srv']], 'opt/app', 'srv/app'],
    ['`a -> .` then a/var', [['a', '.']], 'a/var/lib', 'var/lib'],
    ['a link to .. at the top', [['up', '..']], 'up/escaped', null],
    ['a link out and back in by its real name', [['x', '../root/y']], 'x/z', 'y/z'],
    ['a relative link out', [['var', '../escaped']], 'var/lib/gems', null],
    ['an absolute link out', [['var', '/tmp']], 'var/x', null],
    ['a link loop', [['l1', 'l2'], ['l2', 'l1']], 'l1/x', null],
    ['a deep link out', [['d/e', '../../../escaped']], 'd/e/f', null],
  ];
  for (const [label, links, path, expected] of cases) {
    it(`${label}: ${path} → ${expected ?? 'EPATH'}`, async () => {
      const { root, outside } = sandbox('fencing');
      for (const [at, to] of links) {
        mkdirSync(join(root, at, '..'), { recursive: true });
        symlinkSync(to, join(root, at));
      }
      const fence = await Fence.of(root);
      if (expected === null) {
        const err = await failure(fence.mkdir(join(root, path), 'test'));
        expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
        expect((err as Error).message).not.toMatch(/\n/);
      } else {
        expect(await fence.resolve(join(root, path), 'test')).toBe(join(fence.real, expected));
        expect((await fence.mkdir(join(root, path), 'test')).real).toBe(join(fence.real, expected));
      }
      expect(outside()).toEqual([]);
    });
  }

  it('refuses a path that is not under the root', async () => {
    const { root } = sandbox('fencing');
    const err = await failure((await Fence.of(root)).mkdir(join(root, '..', 'escaped', 'x'), 'test'));
    expect(isAirlockError(err, 'EPATH')).toBe(true);
  });

  it('reports the folders it made, outermost first (for a rollback)', async () => {
    const { root } = sandbox('fencing');
    const fence = await Fence.of(root);
    const made = await fence.mkdir(join(root, 'a', 'b', 'c'), 'test');
    expect(made.created).toEqual(['a', 'a/b', 'a/b/c'].map((p) => join(fence.real, p)));
    expect(readdirSync(join(root, 'a', 'b'))).toEqual(['c']);
  });
});
