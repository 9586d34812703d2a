import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpeTokenizer } from '../../lib/model/bpe';
import { DoveError } from '../../lib/base/errors';
import { API_FIXTURES } from './helpers';

const reference = JSON.parse(readFileSync(join(API_FIXTURES, 'bpe_reference.json'), 'utf8')) as { [name: string]: [string, number[]][] };

for (const name of Object.keys(reference)) {
  test(`ids equal Python tokenizers for ${name}`, (t) => {
    const tok = BpeTokenizer.fromJson(readFileSync(join(API_FIXTURES, `bpe_${name}.json`), 'utf8'));
    t.true(reference[name]!.length >= 10);
    for (const [text, ids] of reference[name]!) {
      t.deepEqual(tok.encode(text), ids, JSON.stringify(text));
    }
  });
}

test('special tokens and vocabulary lookups', (t) => {
  const tok = BpeTokenizer.fromJson(readFileSync(join(API_FIXTURES, 'bpe_neox.json'), 'utf8'));
  t.is(tok.tokenToId('<|endoftext|>'), 0);
  t.true(tok.vocabSize > 256);
  t.deepEqual(tok.encode('<|endoftext|>'), [0]);
});

test('unsupported or broken tokenizer files are DoveErrors', (t) => {
  t.throws(() => BpeTokenizer.fromJson('{not json'), { instanceOf: DoveError, message: /not valid JSON/ });
  t.throws(() => BpeTokenizer.fromJson(JSON.stringify({ model: { type: 'WordPiece', vocab: {} } })), { instanceOf: DoveError, message: /unsupported model type WordPiece/ });
  const neox = JSON.parse(readFileSync(join(API_FIXTURES, 'bpe_neox.json'), 'utf8')) as { normalizer: unknown };
  neox.normalizer = { type: 'Lowercase' };
  t.throws(() => BpeTokenizer.fromJson(JSON.stringify(neox)), { instanceOf: DoveError, message: /unsupported normalizer Lowercase/ });
});
