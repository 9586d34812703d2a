// Byte-level BPE encoder for Hugging Face `tokenizers` files (tokenizer.json) of the GPT-2 / GPT-NeoX
// family: optional NFC/NFD/NFKC/NFKD normalizer, ByteLevel pre-tokenizer with the GPT-2 regex, BPE
// merges, added (special) tokens matched before everything else, and an optional TemplateProcessing
// post-processor. Q-DOVE uses it to turn query text into ids exactly as Python's `tokenizers` does.
import { appendAll } from '../base/arrays';
import { DoveError } from '../base/errors';
import { parseJson, preview } from '../base/json';

// The GPT-2 pre-tokenisation pattern (contractions, letters, numbers, other, whitespace runs).
const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's reversible byte -> printable unicode character table. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table = new Array<string>(256);
  bs.forEach((b, i) => {
    table[b] = String.fromCodePoint(cs[i]!);
  });
  return table;
}
const BYTE_CHARS = bytesToUnicode();

interface AddedToken {
  id: number;
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
  special?: boolean;
}

interface NormalizerSpec {
  type: string;
  normalizers?: NormalizerSpec[];
}

interface PreTokenizerSpec {
  type: string;
  add_prefix_space?: boolean;
  use_regex?: boolean;
  pretokenizers?: PreTokenizerSpec[];
}

type TemplatePiece = { SpecialToken: { id: string } } | { Sequence: { id: 'A' | 'B' } };

interface PostProcessorSpec {
  type: string;
  single?: TemplatePiece[];
  special_tokens?: { [name: string]: { ids: number[] } };
  processors?: PostProcessorSpec[];
}

interface TokenizerJson {
  added_tokens?: AddedToken[];
  normalizer?: NormalizerSpec | null;
  pre_tokenizer?: PreTokenizerSpec | null;
  post_processor?: PostProcessorSpec | null;
  model: {
    type?: string;
    vocab: { [token: string]: number };
    merges: (string | [string, string])[];
    unk_token?: string | null;
    ignore_merges?: boolean;
    continuing_subword_prefix?: string | null;
    end_of_word_suffix?: string | null;
    byte_fallback?: boolean;
  };
}

function invalid(what: string): never {
  throw new DoveError(`tokenizer.json: invalid ${what}`, 'INVALID_ARGUMENT');
}

/** A "type" field in a message: a string as is, anything else previewed. */
function typeName(value: unknown): string {
  return typeof value === 'string' ? value.slice(0, 80) : preview(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A token id: a non-negative integer that fits int64 exactly (ids travel to the model as BigInt). */
function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function unsupported(what: string): never {
  throw new DoveError(`tokenizer.json: unsupported ${what} (only byte-level BPE tokenizers of the GPT-2/GPT-NeoX kind are read)`, 'INVALID_ARGUMENT');
}

export class BpeTokenizer {
  private readonly vocab: Map<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly added: AddedToken[];
  private readonly addedPattern: RegExp | null;
  private readonly normalForms: ('NFC' | 'NFD' | 'NFKC' | 'NFKD')[] = [];
  private readonly addPrefixSpace: boolean;
  private readonly useRegex: boolean;
  private readonly prefixIds: number[] = [];
  private readonly suffixIds: number[] = [];
  private readonly ignoreMerges: boolean;
  private readonly unkId: number | null;
  private readonly cache = new Map<string, number[]>();

  /** Parses the text of a tokenizer.json; throws a DoveError for anything it cannot reproduce exactly. */
  static fromJson(text: string): BpeTokenizer {
    if (typeof text !== 'string') throw new DoveError(`Expected the text of a tokenizer.json but received ${preview(text)}`, 'INVALID_ARGUMENT');
    // At most MAX_JSON_DEPTH levels: the Sequence walks below recurse once per level.
    const parsed = parseJson(text, 'tokenizer.json', 'INVALID_ARGUMENT');
    if (!isObject(parsed)) invalid(`expected a JSON object but found ${preview(parsed)}`);
    return new BpeTokenizer(parsed as unknown as TokenizerJson);
  }

  private constructor(spec: TokenizerJson) {
    const model = spec.model;
    if (!isObject(model) || (model.type !== undefined && model.type !== 'BPE')) unsupported(`model type ${typeName(isObject(model) ? model.type : model)}`);
    if (!isObject(model.vocab) || !Array.isArray(model.merges)) unsupported('model without vocab/merges');
    if (model.continuing_subword_prefix || model.end_of_word_suffix) unsupported('subword prefix/suffix');
    this.vocab = new Map();
    for (const [token, id] of Object.entries(model.vocab)) {
      if (!isId(id)) invalid(`vocab entry ${preview(token)} has id ${preview(id)}, expected a non-negative integer`);
      this.vocab.set(token, id);
    }
    model.merges.forEach((merge: unknown, rank) => {
      if (typeof merge === 'string') {
        const [a, b] = splitMerge(merge);
        this.ranks.set(`${a}\u0000${b}`, rank);
      } else if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === 'string' && typeof merge[1] === 'string') {
        this.ranks.set(`${merge[0]}\u0000${merge[1]}`, rank);
      } else {
        invalid(`merges[${rank}] is ${preview(merge)}, expected "a b" or ["a", "b"]`);
      }
    });
    this.ignoreMerges = model.ignore_merges === true;
    this.unkId = typeof model.unk_token === 'string' && model.unk_token.length > 0 ? (this.vocab.get(model.unk_token) ?? null) : null;

    const added: unknown = spec.added_tokens ?? [];
    if (!Array.isArray(added)) invalid(`added_tokens is ${preview(added)}, expected a list`);
    (added as unknown[]).forEach((t, i) => {
      const ok = isObject(t) && typeof t.content === 'string' && t.content.length > 0 && isId(t.id);
      if (!ok) invalid(`added_tokens[${i}] is ${preview(t)}, expected {id, content} with a non-empty content`);
    });
    this.added = [...(added as AddedToken[])].sort((x, y) => y.content.length - x.content.length);
    this.addedPattern = this.added.length > 0 ? new RegExp(this.added.map((t) => escapeRegExp(t.content)).join('|'), 'gu') : null;

    this.collectNormalizers(spec.normalizer ?? null);
    const pre = this.findByteLevel(spec.pre_tokenizer ?? null);
    this.addPrefixSpace = pre.add_prefix_space === true;
    this.useRegex = pre.use_regex !== false;
    this.collectTemplate(spec.post_processor ?? null);
  }

  private collectNormalizers(spec: NormalizerSpec | null): void {
    if (spec === null) return;
    if (!isObject(spec)) invalid(`normalizer ${preview(spec)}`);
    if (spec.type === 'Sequence') {
      const list: unknown = spec.normalizers ?? [];
      if (!Array.isArray(list)) invalid(`normalizers ${preview(list)}, expected a list`);
      for (const n of list as NormalizerSpec[]) this.collectNormalizers(n);
    } else if (spec.type === 'NFC' || spec.type === 'NFD' || spec.type === 'NFKC' || spec.type === 'NFKD') {
      this.normalForms.push(spec.type);
    } else {
      unsupported(`normalizer ${typeName(spec.type)}`);
    }
  }

  private findByteLevel(spec: PreTokenizerSpec | null): PreTokenizerSpec {
    if (spec === null) unsupported('missing pre_tokenizer');
    if (!isObject(spec)) invalid(`pre_tokenizer ${preview(spec)}`);
    if (spec.type === 'ByteLevel') return spec;
    if (spec.type === 'Sequence' && Array.isArray(spec.pretokenizers) && spec.pretokenizers.length === 1) return this.findByteLevel(spec.pretokenizers[0]!);
    unsupported(`pre_tokenizer ${typeName(spec.type)}`);
  }

  private collectTemplate(spec: PostProcessorSpec | null): void {
    if (spec === null) return;
    if (!isObject(spec)) invalid(`post_processor ${preview(spec)}`);
    if (spec.type === 'ByteLevel') return;
    if (spec.type === 'Sequence') {
      const list: unknown = spec.processors ?? [];
      if (!Array.isArray(list)) invalid(`processors ${preview(list)}, expected a list`);
      for (const p of list as PostProcessorSpec[]) this.collectTemplate(p);
      return;
    }
    if (spec.type !== 'TemplateProcessing') unsupported(`post_processor ${typeName(spec.type)}`);
    const single: unknown = spec.single ?? [];
    if (!Array.isArray(single)) invalid(`post_processor single ${preview(single)}, expected a list`);
    const specials: unknown = spec.special_tokens ?? {};
    if (!isObject(specials)) invalid(`post_processor special_tokens ${preview(specials)}, expected an object`);
    let seenSequence = false;
    for (const piece of single as unknown[]) {
      if (isObject(piece) && 'Sequence' in piece) {
        seenSequence = true;
        continue;
      }
      const id = isObject(piece) && isObject(piece.SpecialToken) ? piece.SpecialToken.id : undefined;
      if (typeof id !== 'string') invalid(`post_processor piece ${preview(piece)}, expected {SpecialToken: {id}} or {Sequence: {id}}`);
      const entry = Object.hasOwn(specials as object, id as string) ? (specials as Record<string, unknown>)[id as string] : undefined;
      const ids: unknown = isObject(entry) ? entry.ids : [];
      if (!Array.isArray(ids) || !ids.every(isId)) invalid(`special token ${preview(id)} has ids ${preview(ids)}, expected a list of non-negative integers`);
      appendAll(seenSequence ? this.suffixIds : this.prefixIds, ids as number[]);
    }
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  /** Token id of a vocabulary entry or added token, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.vocab.get(token) ?? this.added.find((t) => t.content === token)?.id;
  }

  /** Encodes text to ids exactly as `Tokenizer.from_file(...).encode(text).ids` does in Python. */
  encode(text: string): number[] {
    if (typeof text !== 'string') {
      throw new DoveError(`Expected string for query but received ${typeof text}`, 'INVALID_ARGUMENT');
    }
    const ids: number[] = [...this.prefixIds];
    for (const segment of this.splitAdded(text)) {
      if (typeof segment === 'number') ids.push(segment);
      else this.encodeOrdinary(segment, ids);
    }
    appendAll(ids, this.suffixIds);
    return ids;
  }

  /** Splits text around added tokens (they bypass normalisation and BPE). */
  private splitAdded(text: string): (string | number)[] {
    if (this.addedPattern === null) return [text];
    const out: (string | number)[] = [];
    let last = 0;
    for (const match of text.matchAll(this.addedPattern)) {
      const token = this.added.find((t) => t.content === match[0])!;
      let before = text.slice(last, match.index);
      if (token.lstrip) before = before.trimEnd();
      if (before.length > 0) out.push(before);
      out.push(token.id);
      last = match.index + match[0].length;
      if (token.rstrip) {
        while (last < text.length && /\s/u.test(text[last]!)) last++;
      }
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  private encodeOrdinary(raw: string, ids: number[]): void {
    let text = raw;
    for (const form of this.normalForms) text = text.normalize(form);
    if (this.addPrefixSpace && !text.startsWith(' ')) text = ` ${text}`;
    const words = this.useRegex ? (text.match(GPT2_PATTERN) ?? []) : [text];
    for (const word of words) {
      let mapped = '';
      for (const byte of Buffer.from(word, 'utf8')) mapped += BYTE_CHARS[byte]!;
      appendAll(ids, this.bpe(mapped));
    }
  }

  private bpe(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached !== undefined) return cached;
    let result: number[];
    const whole = this.vocab.get(word);
    if (this.ignoreMerges && whole !== undefined) {
      result = [whole];
    } else {
      let parts = Array.from(word);
      while (parts.length > 1) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i < parts.length - 1; i++) {
          const rank = this.ranks.get(`${parts[i]}\u0000${parts[i + 1]}`);
          if (rank !== undefined && rank < bestRank) {
            bestRank = rank;
            best = i;
          }
        }
        if (best < 0) break;
        // Merge every non-overlapping occurrence of the best pair, left to right (as HF does).
        const [a, b] = [parts[best]!, parts[best + 1]!];
        const merged: string[] = [];
        for (let i = 0; i < parts.length; ) {
          if (i < parts.length - 1 && parts[i] === a && parts[i + 1] === b) {
            merged.push(a + b);
            i += 2;
          } else {
            merged.push(parts[i]!);
            i += 1;
          }
        }
        parts = merged;
      }
      result = [];
      for (const part of parts) {
        const id = this.vocab.get(part);
        if (id !== undefined) result.push(id);
        else if (this.unkId !== null) result.push(this.unkId);
        else throw new DoveError(`tokenizer.json: symbol ${JSON.stringify(part)} is not in the vocabulary and there is no unk_token`, 'INVALID_ARGUMENT');
      }
    }
    if (this.cache.size < 10000) this.cache.set(word, result);
    return result;
  }
}

function splitMerge(merge: string): [string, string] {
  const i = merge.indexOf(' ', 1);
  if (i < 0) unsupported(`merge entry ${JSON.stringify(merge)}`);
  return [merge.slice(0, i), merge.slice(i + 1)];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
