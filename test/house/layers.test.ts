// lib/ in layers: every import of every lib/ file goes to its own layer or one below, by the table
// in docs/ARCHITECTURE.md ("Layers of lib/"), the one copy of the layer map.
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from '../support';

const LIB = join(ROOT, 'lib');

interface Layer {
  rank: number;
  name: string;
  paths: string[];
}

/** The table's rows: rank, layer name, and its folders (ending in /) and files, relative to lib/. */
export function readLayerMap(markdown: string): Layer[] {
  const section = markdown.split('### Layers of lib/')[1]?.split('\n## ')[0] ?? '';
  const rows = [...section.matchAll(/^\| (\d+) \| (\w+) \| (.+) \|$/gm)];
  return rows.map((m) => ({ rank: Number(m[1]), name: m[2]!, paths: [...m[3]!.matchAll(/`([^`]+)`/g)].map((p) => p[1]!) }));
}

function layerOf(layers: readonly Layer[], file: string): Layer | undefined {
  return layers.find((l) => l.paths.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p)));
}

function libFiles(dir = LIB): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return libFiles(path);
    return e.name.endsWith('.ts') ? [relative(LIB, path)] : [];
  });
}

/** Relative specifiers of static imports, re-exports, import() and require() in TypeScript source. */
export function importsOf(source: string): string[] {
  const found = [
    ...source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms),
    ...source.matchAll(/\b(?:import|require)\(\s*'([^']+)'\s*\)/g),
  ].map((m) => m[1]!);
  return found.filter((s) => s.startsWith('.'));
}

const layers = readLayerMap(readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8'));

test('docs/ARCHITECTURE.md holds the layer map', (t) => {
  t.true(layers.length >= 4, `layers read: ${layers.map((l) => l.name).join(', ')}`);
  t.is(new Set(layers.map((l) => l.rank)).size, layers.length, 'one rank per layer');
});

test('every lib/ file has a layer and imports only from its own layer or lower ones', (t) => {
  const files = libFiles();
  t.true(files.length > 30, `${files.length} files under lib/`);
  const unplaced = files.filter((f) => layerOf(layers, f) === undefined);
  t.deepEqual(unplaced, [], 'files the layer table does not place');
  const upward: string[] = [];
  for (const file of files) {
    const from = layerOf(layers, file);
    if (from === undefined) continue;
    for (const spec of importsOf(readFileSync(join(LIB, file), 'utf8'))) {
      const target = relative(LIB, resolve(LIB, dirname(file), spec));
      if (target.startsWith('..')) continue; // binding.d.ts (types) and package.json sit outside lib/
      const candidates = [`${target}.ts`, join(target, 'index.ts'), target];
      const resolved = candidates.find((c) => files.includes(c));
      if (resolved === undefined) {
        upward.push(`${file}: import '${spec}' names no lib/ file`);
        continue;
      }
      const to = layerOf(layers, resolved)!;
      if (to !== undefined && to.rank > from.rank) upward.push(`${file} (${from.name}) imports ${resolved} (${to.name})`);
    }
  }
  t.deepEqual(upward, []);
});

test('every path the table names is in lib/, and every folder of lib/ is in the table', (t) => {
  const named = layers.flatMap((l) => l.paths);
  t.deepEqual(named.filter((p) => !existsSync(join(LIB, p))), [], 'rows naming what lib/ does not have');
  const folders = readdirSync(LIB, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${e.name}/`);
  t.deepEqual(folders.filter((f) => !named.includes(f)), [], 'folders of lib/ without a row of their own');
});

test('the import reader sees every form of import, so the check cannot pass by missing one', (t) => {
  const source = [
    "import { a } from './a';",
    "import type { B } from '../b';",
    "export { c } from './c';",
    "export * from './d';",
    'import {\n  e,\n  f,\n} from "./ignored-double-quotes";',
    "import {\n  g,\n} from './g';",
    "const h = require('./h');",
    "void import('./i');",
    "import sharp from 'sharp';",
  ].join('\n');
  t.deepEqual(importsOf(source).sort(), ['../b', './a', './c', './d', './g', './h', './i']);
  const map = readLayerMap('### Layers of lib/\n\n| rank | layer | lib/ paths |\n|---|---|---|\n| 1 | top | `cli/` |\n| 0 | low | `errors.ts` |\n\n## Next');
  t.deepEqual(map, [{ rank: 1, name: 'top', paths: ['cli/'] }, { rank: 0, name: 'low', paths: ['errors.ts'] }]);
});
