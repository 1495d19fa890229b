// Preloaded with `node --import` into a CLI under test: prints the process's
// peak RSS on exit, so a test can bound the memory of a whole command.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  writeSync(2, `peak-rss-kib ${process.resourceUsage().maxRSS}\n`);
});
