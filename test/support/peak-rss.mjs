// Preloaded with `node --import` into a CLI under test: prints the process's
// peak RSS on exit, so a test can bound the memory of a whole command.
//
// VmHWM (this address space's high-water mark), not getrusage's ru_maxrss:
// on Linux ru_maxrss survives execve, so a process spawned by a big parent
// (a test runner, a benchmark holding its blobs) starts with the parent's RSS
// at fork as its "peak": 50 nodes spawned by scale-out.mjs each reported the
// ~330 MiB the script itself held. ru_maxrss only where /proc is missing.
import { readFileSync, writeSync } from 'node:fs';

process.on('exit', () => {
  let kib = process.resourceUsage().maxRSS;
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) kib = Number(hwm[1]);
  } catch {
    // not Linux: ru_maxrss it is
  }
  writeSync(2, `peak-rss-kib ${kib}\n`);
});
