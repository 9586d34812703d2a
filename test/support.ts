// What every test folder shares: where the repository and its generated fixtures are, the compiled
// CLI, and temporary folders. Folder helpers (test/*/helpers.ts) build on these.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Repository root (tests run from dist/test/<folder>/, this file from dist/test/). */
export const ROOT = resolve(__dirname, '..', '..');
/** Seeded exports and data written by python/dove/fixtures*.py during scripts/setup. */
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'generated');
export const CLI = join(ROOT, 'dist', 'lib', 'cli', 'main.js');

/** A fresh folder under the system temp dir, and the function that removes it. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `dove-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
