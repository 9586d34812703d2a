// Type test: a consumer file compiles under --strict against the package's published types
// (package.json "types"), resolved through node_modules like an installed dependency.
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support';


function tsc(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), ...args], { cwd, timeout: 120_000 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, output: `${stdout}${stderr}` });
    });
  });
}

test('a consumer compiles with --strict against the published types, none of them any', async (t) => {
  t.true(existsSync(join(ROOT, 'dist', 'lib', 'index.d.ts')), 'dist/lib/index.d.ts exists (npx tsc -p tsconfig.json)');
  const dir = mkdtempSync(join(tmpdir(), 'dove-types-'));
  try {
    mkdirSync(join(dir, 'node_modules'), { recursive: true });
    symlinkSync(ROOT, join(dir, 'node_modules', 'dove-encoder'), 'dir');
    symlinkSync(join(ROOT, 'node_modules', '@types'), join(dir, 'node_modules', '@types'), 'dir');
    // The consumer sits outside the repository so `dove-encoder` resolves only through node_modules.
    copyFileSync(join(ROOT, 'test', 'types', 'consumer.cts'), join(dir, 'consumer.cts'));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'node16',
          moduleResolution: 'node16',
          lib: ['ES2022', 'ESNext.Disposable'],
          types: ['node'],
          // Checks the .d.ts files too: an import they cannot resolve is an error, not a silent any.
          skipLibCheck: false,
          preserveSymlinks: false,
        },
        files: ['consumer.cts'],
      }),
    );
    const result = await tsc(['-p', 'tsconfig.json'], dir);
    t.is(result.code, 0, result.output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
