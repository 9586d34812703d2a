// Preloaded (`node --require`) by test/hardening/helpers.ts runNode: prints the process's peak RSS to
// stderr when it exits, so a test can bound the memory a command used.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  writeSync(2, `@@maxrss=${process.resourceUsage().maxRSS}\n`);
});
