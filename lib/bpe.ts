// Byte-level BPE encoder for Hugging Face `tokenizers` files (tokenizer.json) of the GPT-2 / GPT-NeoX
// family: optional NFC/NFD/NFKC/NFKD normalizer, ByteLevel pre-tokenizer with the GPT-2 regex, BPE
// merges, added (special) tokens matched before everything else, and an optional TemplateProcessing
// post-processor. Q-DOVE uses it to turn query text into ids exactly as Python's `tokenizers` does.
import { DoveError } from './errors';

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
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new DoveError(`tokenizer.json: not valid JSON (${(error as Error).message})`, 'INVALID_ARGUMENT');
    }
    return new BpeTokenizer(parsed as TokenizerJson);
  }

  private constructor(spec: TokenizerJson) {
    const model = spec.model;
    if (typeof model !== 'object' || model === null || (model.type !== undefined && model.type !== 'BPE')) unsupported(`model type ${String(model?.type)}`);
    if (typeof model.vocab !== 'object' || !Array.isArray(model.merges)) unsupported('model without vocab/merges');
    if (model.continuing_subword_prefix || model.end_of_word_suffix) unsupported('subword prefix/suffix');
    this.vocab = new Map(Object.entries(model.vocab));
    model.merges.forEach((merge, rank) => {
      const [a, b] = typeof merge === 'string' ? splitMerge(merge) : merge;
      this.ranks.set(`${a}\u0000${b}`, rank);
    });
    this.ignoreMerges = model.ignore_merges === true;
    this.unkId = model.unk_token ? (this.vocab.get(model.unk_token) ?? null) : null;

    this.added = [...(spec.added_tokens ?? [])].sort((x, y) => y.content.length - x.content.length);
    this.addedPattern = this.added.length > 0 ? new RegExp(this.added.map((t) => escapeRegExp(t.content)).join('|'), 'gu') : null;

    this.collectNormalizers(spec.normalizer ?? null);
    const pre = this.findByteLevel(spec.pre_tokenizer ?? null);
    this.addPrefixSpace = pre.add_prefix_space === true;
    this.useRegex = pre.use_regex !== false;
    this.collectTemplate(spec.post_processor ?? null);
  }

  private collectNormalizers(spec: NormalizerSpec | null): void {
    if (spec === null) return;
    if (spec.type === 'Sequence') {
      for (const n of spec.normalizers ?? []) this.collectNormalizers(n);
    } else if (spec.type === 'NFC' || spec.type === 'NFD' || spec.type === 'NFKC' || spec.type === 'NFKD') {
      this.normalForms.push(spec.type);
    } else {
      unsupported(`normalizer ${spec.type}`);
    }
  }

  private findByteLevel(spec: PreTokenizerSpec | null): PreTokenizerSpec {
    if (spec === null) unsupported('missing pre_tokenizer');
    if (spec.type === 'ByteLevel') return spec;
    if (spec.type === 'Sequence' && spec.pretokenizers?.length === 1) return this.findByteLevel(spec.pretokenizers[0]!);
    unsupported(`pre_tokenizer ${spec.type}`);
  }

  private collectTemplate(spec: PostProcessorSpec | null): void {
    if (spec === null || spec.type === 'ByteLevel') return;
    if (spec.type === 'Sequence') {
      for (const p of spec.processors ?? []) this.collectTemplate(p);
      return;
    }
    if (spec.type !== 'TemplateProcessing') unsupported(`post_processor ${spec.type}`);
    let seenSequence = false;
    for (const piece of spec.single ?? []) {
      if ('Sequence' in piece) {
        seenSequence = true;
        continue;
      }
      const ids = spec.special_tokens?.[piece.SpecialToken.id]?.ids ?? [];
      (seenSequence ? this.suffixIds : this.prefixIds).push(...ids);
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
    ids.push(...this.suffixIds);
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
      ids.push(...this.bpe(mapped));
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
