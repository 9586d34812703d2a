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
  const error = { instanceOf: DoveError, code: 'INVALID_ARGUMENT' } as const;
  t.throws(() => BpeTokenizer.fromJson('{not json'), { ...error, message: /not valid JSON/ });
  t.throws(() => BpeTokenizer.fromJson(JSON.stringify({ model: { type: 'WordPiece', vocab: {} } })), { ...error, message: /unsupported model type "WordPiece"/ });
  const neox = JSON.parse(readFileSync(join(API_FIXTURES, 'bpe_neox.json'), 'utf8')) as Record<string, unknown>;
  const variant = (change: Record<string, unknown>): string => JSON.stringify({ ...neox, ...change });
  t.throws(() => BpeTokenizer.fromJson(variant({ normalizer: { type: 'NoSuchNormalizer' } })), { ...error, message: /Unknown Normalizer type: NoSuchNormalizer/ });
  t.throws(() => BpeTokenizer.fromJson(variant({ post_processor: { type: 'TemplateProcessing', single: 5 } })), { ...error, message: /unsupported or invalid/ });
  t.throws(() => BpeTokenizer.fromJson(variant({ added_tokens: [{ id: -1, content: 'x' }] })), { ...error, message: /added_tokens\[0\]/ });
  // A pattern from the file would run on the JS thread, where one that backtracks without end cannot be stopped.
  const split = { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false };
  t.throws(() => BpeTokenizer.fromJson(variant({ pre_tokenizer: { type: 'Sequence', pretokenizers: [split] } })), { ...error, message: /unsupported regular expression/ });
});

test('a symbol with no id (unk_token outside the vocabulary) is a DoveError at encode', (t) => {
  const tok = BpeTokenizer.fromJson(JSON.stringify({ model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'], unk_token: '<unk>' } }));
  t.deepEqual(tok.encode('abab'), [2, 2]);
  t.throws(() => tok.encode('abc'), { instanceOf: DoveError, code: 'INVALID_ARGUMENT', message: /has no id/ });
});
