// The built front end (web/ → dist/web by scripts/build-web), read into memory once at start: a few
// small files, served by name from a fixed list, so no request path ever reaches the file system.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DoveError } from '../base/errors';

export interface WebAsset {
  type: string;
  body: Buffer;
}

const TYPES: { readonly [ext: string]: string } = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

/** dist/web beside dist/lib (this file is dist/lib/serve/web-assets.js). */
export function webRoot(): string {
  return resolve(__dirname, '..', '..', 'web');
}

export function loadWebAssets(root = webRoot()): Map<string, WebAsset> {
  if (!existsSync(join(root, 'explorer.html'))) {
    throw new DoveError(`No built front end in ${root}; run \`npm run build:web\` (scripts/setup does it)`, 'FILE_NOT_FOUND');
  }
  const assets = new Map<string, WebAsset>();
  for (const name of readdirSync(root)) {
    const dot = name.lastIndexOf('.');
    const type = TYPES[dot >= 0 ? name.slice(dot) : ''];
    if (type !== undefined) assets.set(name, { type, body: readFileSync(join(root, name)) });
  }
  return assets;
}
