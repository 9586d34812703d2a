// The Q-DOVE query tokenizer: a Hugging Face `tokenizer.json` (byte-level BPE, as python/dove's
// exports embed it) turned into ids by @huggingface/tokenizers, Hugging Face's own JavaScript
// implementation, so that ids equal Python `tokenizers`' (test/api/bpe.test.ts compares them). The
// file arrives inside a model file, so it is checked here before the library sees it: BPE only, ids
// that fit int64, and no regular expression written in the file (the library would run it on the JS
// thread, where a pattern that backtracks without end cannot be stopped). Whatever the library still
// refuses, or fails on, becomes an INVALID_ARGUMENT DoveError.
import { Tokenizer } from '@huggingface/tokenizers';
import { appendAll } from '../base/arrays';
import { DoveError } from '../base/errors';
import { isJsonObject, parseJson, preview } from '../base/json';

function invalid(what: string): never {
  throw new DoveError(`tokenizer.json: invalid ${what}`, 'INVALID_ARGUMENT');
}

function unsupported(what: string): never {
  throw new DoveError(`tokenizer.json: unsupported ${what} (only byte-level BPE tokenizers of the GPT-2/GPT-NeoX kind are read)`, 'INVALID_ARGUMENT');
}

/** A token id: a non-negative integer that fits int64 exactly (ids travel to the model as BigInt). */
function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The error the library threw, as a DoveError that names the file. */
function libraryError(error: unknown): DoveError {
  return new DoveError(`tokenizer.json: unsupported or invalid (${error instanceof Error ? error.message : preview(error)})`, 'INVALID_ARGUMENT');
}

/** Whether any object in `value` has a `Regex` key (a pattern of a Split pre-tokenizer or Replace normalizer); no recursion. */
function holdsRegex(value: unknown): boolean {
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (!Array.isArray(v) && Object.hasOwn(v, 'Regex')) return true;
    appendAll(stack, Object.values(v));
  }
  return false;
}

/** Checks what the library trusts; returns the vocabulary's size. */
function checkSpec(spec: Record<string, unknown>): number {
  const model = spec.model;
  if (!isJsonObject(model) || model.type !== 'BPE') unsupported(`model type ${preview(isJsonObject(model) ? model.type : model)}`);
  if (!isJsonObject(model.vocab) || !Array.isArray(model.merges)) unsupported('model without vocab/merges');
  for (const [token, id] of Object.entries(model.vocab)) {
    if (!isId(id)) invalid(`vocab entry ${preview(token)} has id ${preview(id)}, expected a non-negative integer`);
  }
  model.merges.forEach((merge: unknown, rank) => {
    const pair = Array.isArray(merge) && merge.length === 2 && merge.every((part) => typeof part === 'string');
    if (!pair && !(typeof merge === 'string' && merge.indexOf(' ', 1) > 0)) invalid(`merges[${rank}] is ${preview(merge)}, expected "a b" or ["a", "b"]`);
  });
  const added: unknown = spec.added_tokens ?? [];
  if (!Array.isArray(added)) invalid(`added_tokens is ${preview(added)}, expected a list`);
  added.forEach((t: unknown, i) => {
    if (!(isJsonObject(t) && typeof t.content === 'string' && t.content.length > 0 && isId(t.id))) invalid(`added_tokens[${i}] is ${preview(t)}, expected {id, content} with a non-empty content`);
  });
  if (holdsRegex(spec)) unsupported('regular expression pattern');
  return Object.keys(model.vocab).length;
}

export class BpeTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    /** Entries of the model's vocabulary (added tokens not counted). */
    readonly vocabSize: number,
  ) {}

  /** Parses the text of a tokenizer.json; throws a DoveError for anything it cannot encode as Python does. */
  static fromJson(text: string): BpeTokenizer {
    if (typeof text !== 'string') throw new DoveError(`Expected the text of a tokenizer.json but received ${preview(text)}`, 'INVALID_ARGUMENT');
    const spec = parseJson(text, 'tokenizer.json', 'INVALID_ARGUMENT');
    if (!isJsonObject(spec)) invalid(`expected a JSON object but found ${preview(spec)}`);
    const vocabSize = checkSpec(spec);
    // The library wants every component key present; Python's writer omits none, hand-written files may.
    const complete = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...spec };
    try {
      const tokenizer = new Tokenizer(complete, {});
      tokenizer.encode('a 1'); // the library reads some components only when it first encodes: fail at load
      return new BpeTokenizer(tokenizer, vocabSize);
    } catch (error) {
      throw libraryError(error);
    }
  }

  /** Token id of a vocabulary entry or added token, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** Encodes text to ids exactly as `Tokenizer.from_file(...).encode(text).ids` does in Python. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new DoveError(`Expected string for query but received ${typeof text}`, 'INVALID_ARGUMENT');
    let ids: unknown[];
    try {
      ids = this.tokenizer.encode(text).ids;
    } catch (error) {
      throw libraryError(error);
    }
    const bad = ids.findIndex((id) => !isId(id));
    if (bad >= 0) throw new DoveError(`tokenizer.json: token ${bad} of ${preview(text)} has no id (not in the vocabulary, and no unk_token that is)`, 'INVALID_ARGUMENT');
    return ids as number[];
  }
}
