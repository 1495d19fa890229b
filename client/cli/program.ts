/**
 * The `airlock-node` command tree: `upgrade`, `status` and `apt-source`. Same frame as
 * the cache node's CLI: config parsed once, `runAction` maps errors to exit
 * codes and one-line messages.
 */
import { Command, Option } from 'commander';
import { runAction } from '../../common/cli.js';
import type { CliTestHooks } from '../../common/test-hooks.js';
import { writeAptSource } from '../apt-source.js';
import { loadNodeConfig, type NodeFlags } from '../config.js';
import { nodeStatus } from '../status.js';
import { upgrade } from '../upgrade.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

const EXIT_HELP =
  '\nExit status: 0 ok (or already at that release), 1 failure, 2 usage, 3 verification failed\n' +
  '(signature, expiry, rollback, integrity, unsafe path), 4 preflight failed (disk, memory),\n' +
  '5 network: the cache could not be reached (after --wait-for-cache); re-run to resume where it stopped.';

interface AptSourceFlags {
  cache?: string;
  product: string;
  suite: string;
  root: string;
  fingerprint?: string;
  format: string;
  json?: boolean;
}

interface UpgradeFlags extends NodeFlags {
  release?: string;
  downloadOnly?: boolean;
  force?: boolean;
  updateClient?: boolean;
}

export function buildProgram(argv: readonly string[] = process.argv.slice(2), hooks: CliTestHooks = {}): Command {
  const program = new Command('airlock-node')
    .description(
      'airlock-node: upgrade this node offline from an airlock cache node.\n' +
        'The cache is an untrusted mirror: every manifest is checked against this node\'s own\n' +
        'trust root, every byte against the signed manifest.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_HELP)
    // set before the subcommands are made, so that they inherit it
    .exitOverride()
    .configureOutput({ writeErr: () => {} });

  program
    .command('upgrade')
    .description(
      'Install a release from the cache: verify its signed manifest (signatures, expiry, serial),\n' +
        'self-update check, version check, preflight (disk, memory), download this node\'s\n' +
        'artifacts into staging (resumable, verified), then install them in manifest order with a\n' +
        'journal so that a re-run resumes after the last finished step; finally record the release.',
    )
    .option('--cache <url,...>', 'the cache node, e.g. http://cache:7070; several separated by commas are tried in order, a download resuming on the next (or "cache" in the config)')
    .option('--release <name>', 'release to install (default: the newest ready release on the cache)')
    .option('--download-only', 'stage the artifacts, install nothing')
    .option('--force', 'run even when this node already runs that release')
    .option('--root <dir>', 'install root (default /, the real system)')
    .addOption(new Option('--role <role>', "this node's role (repeatable); artifacts for other roles are skipped").argParser(collect))
    .option('--trust <root.json>', 'trusted root got out of band; kept under the state dir on first use')
    .option('--ca-file <pem>', 'extra CA certificates for a cache served over https (or ca_file in the config)')
    .option('--wait-for-cache <duration>', 'when the cache is briefly away (503, 502, 504, refused or reset), wait this long for it, e.g. 10m; 0: fail at once (default 5m, or cache_wait in the config)')
    .option('--accept-expired-until <date>', 'accept an expired manifest until this date (logged; skips no other check)')
    .option('--state-dir <dir>', 'node state: trust copy, serials, staging, journal (default /var/lib/airlock-node)')
    .option('--update-client', 'when the release carries a newer airlock-node, install it first and re-run with it')
    .option('--config <file>', 'config file (default /etc/airlock-node.yml when present)')
    .option('--json', 'machine-readable output: one JSON object per line')
    .addHelpText('after', EXIT_HELP)
    .action(async (flags: UpgradeFlags) => {
      await runAction(Boolean(flags.json), async (out) => {
        const config = loadNodeConfig(flags);
        const r = await upgrade(
          config,
          { release: flags.release, downloadOnly: Boolean(flags.downloadOnly), force: Boolean(flags.force), updateClient: Boolean(flags.updateClient), argv },
          out,
          { afterStep: hooks.afterInstallStep, downloadBytes: hooks.downloadBytes },
        );
        if (r.status === 'client-updated') return r.exitCode;
        out.result({ status: r.status, ...r.data }, r.text);
      });
    });

  program
    .command('status')
    .description('Show the installed release, what is staged for each known release, and the install journal.')
    .option('--state-dir <dir>', 'node state (default /var/lib/airlock-node)')
    .option('--config <file>', 'config file (default /etc/airlock-node.yml when present)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', EXIT_HELP)
    .action(async (flags: NodeFlags) => {
      await runAction(Boolean(flags.json), async (out) => {
        const config = loadNodeConfig(flags);
        const { data, text } = await nodeStatus(config.stateDir);
        out.result({ ...data }, text);
      });
    });
  program
    .command('apt-source')
    .description(
      "Point this node's apt at a product's signed repository on the cache: write\n" +
        'ROOT/etc/apt/keyrings/airlock.gpg (the cache\'s key, fetched from it) and\n' +
        'ROOT/etc/apt/sources.list.d/airlock.list (or airlock.sources). The key comes from the\n' +
        'cache: pin it with --fingerprint (shown by `airlock serve`\'s /apt/RELEASE/ page).',
    )
    .requiredOption('--cache <url>', 'the cache node, e.g. http://cache:7070')
    .requiredOption('--product <name>', 'the product whose repository to use')
    .option('--suite <name>', 'a release name, or current: the newest ready release', 'current')
    .option('--root <dir>', 'install root (default /, the real system)', '/')
    .option('--fingerprint <fpr>', "the key's expected fingerprint (40 hex); a mismatch writes nothing")
    .addOption(new Option('--format <format>', 'list: one-line .list file; deb822: .sources file').choices(['list', 'deb822']).default('list'))
    .option('--json', 'machine-readable output')
    .addHelpText('after', EXIT_HELP)
    .action(async (flags: AptSourceFlags) => {
      await runAction(Boolean(flags.json), async (out) => {
        const r = await writeAptSource({
          cache: flags.cache!,
          product: flags.product,
          suite: flags.suite,
          root: flags.root,
          fingerprint: flags.fingerprint ?? null,
          format: flags.format === 'deb822' ? 'deb822' : 'list',
        });
        if (!r.pinned) {
          out.warn(`the key came from the cache unchecked: compare its fingerprint ${r.fingerprint} with the cache node's, or pass --fingerprint`, {
            fingerprint: r.fingerprint,
          });
        }
        out.result({ ...r }, `wrote ${r.keyring} (key ${r.fingerprint}${r.pinned ? ', as pinned' : ''}) and ${r.source}:\n${r.entry.trimEnd()}`);
      });
    });
  return program;
}
