// Small strict argument parser for the dove subcommands: declared options only, typed values,
// range checks with messages of the form "Expected integer between 1 and 64 for --lengths but received 0".
import { appendAll } from '../base/arrays';
import { DoveError } from '../base/errors';
import { integerInRange } from '../base/validate';

/** A usage mistake: printed without a stack, exit code 2. A DoveError (INVALID_ARGUMENT) like every other refusal. */
export class UsageError extends DoveError {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message, 'INVALID_ARGUMENT');
    this.name = 'UsageError';
  }
}

export type OptionType = 'string' | 'int' | 'float' | 'flag' | 'intList';

export interface OptionSpec {
  type: OptionType;
  /** One-letter alias, e.g. 'o' for --output. */
  alias?: string;
  min?: number;
  max?: number;
  choices?: readonly string[];
}

export type OptionValue = string | number | boolean | number[];

export interface ParsedArgs {
  positionals: string[];
  options: Map<string, OptionValue>;
}

function describeRange(kind: string, spec: OptionSpec): string {
  if (spec.min !== undefined && spec.max !== undefined) return `${kind} between ${spec.min} and ${spec.max}`;
  if (spec.min !== undefined) return `${kind} >= ${spec.min}`;
  if (spec.max !== undefined) return `${kind} <= ${spec.max}`;
  return kind;
}

/** Parses one integer the way every flag does (no "1e3", no "12abc", no hex). */
export function parseIntStrict(raw: string, flag: string, min?: number, max?: number): number {
  const value = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || (min !== undefined && value < min) || (max !== undefined && value > max)) {
    throw new UsageError(`Expected ${describeRange('integer', { type: 'int', min, max })} for ${flag} but received ${raw === '' ? "''" : raw}`);
  }
  return value;
}

function convert(flag: string, raw: string, spec: OptionSpec): OptionValue {
  switch (spec.type) {
    case 'string':
      if (spec.choices !== undefined && !spec.choices.includes(raw)) {
        throw new UsageError(`Expected one of ${spec.choices.join(', ')} for ${flag} but received ${raw}`);
      }
      return raw;
    case 'int':
      return parseIntStrict(raw, flag, spec.min, spec.max);
    case 'float': {
      const value = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isFinite(value) || (spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) {
        throw new UsageError(`Expected ${describeRange('number', spec)} for ${flag} but received ${raw}`);
      }
      return value;
    }
    case 'intList': {
      const parts = raw.split(',').map((p) => p.trim());
      if (parts.length === 0 || parts.some((p) => p === '')) {
        throw new UsageError(`Expected comma-separated integers for ${flag} but received '${raw}'`);
      }
      return parts.map((p) => parseIntStrict(p, flag, spec.min, spec.max));
    }
    case 'flag':
      throw new UsageError(`${flag} takes no value`);
  }
}

/**
 * Parses argv against `specs` (keys are long names without dashes). Accepts `--name value`,
 * `--name=value`, `-a value`, and `--` to end options. Unknown flags and missing values are errors.
 */
export function parseArgs(argv: readonly string[], specs: { readonly [name: string]: OptionSpec }): ParsedArgs {
  const options = new Map<string, OptionValue>();
  const positionals: string[] = [];
  const byAlias = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) if (spec.alias) byAlias.set(spec.alias, name);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      appendAll(positionals, argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      positionals.push(arg);
      continue;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else {
      name = byAlias.get(arg.slice(1));
      if (name === undefined) throw new UsageError(`Unknown option ${arg}`);
    }
    // Own keys only: "--constructor" or "--__proto__" must not find Object.prototype's members.
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (spec === undefined) {
      const close = Object.keys(specs).find((k) => k.startsWith(name.slice(0, 3)));
      throw new UsageError(`Unknown option --${name}${close ? ` (did you mean --${close}?)` : ''}`);
    }
    const flag = `--${name}`;
    if (spec.type === 'flag') {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value but received ${inline}`);
      options.set(name, true);
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`Missing value for ${flag}`);
      raw = next;
      i++;
    }
    if (options.has(name)) throw new UsageError(`${flag} given more than once`);
    options.set(name, convert(flag, raw, spec));
  }
  return { positionals, options };
}

// Typed getters (the spec guarantees the type; these only narrow it for TypeScript).
export function getString(args: ParsedArgs, name: string): string | undefined {
  const v = args.options.get(name);
  return typeof v === 'string' ? v : undefined;
}
export function getNumber(args: ParsedArgs, name: string): number | undefined {
  const v = args.options.get(name);
  return typeof v === 'number' ? v : undefined;
}
export function getFlag(args: ParsedArgs, name: string): boolean {
  return args.options.get(name) === true;
}
export function getIntList(args: ParsedArgs, name: string): number[] | undefined {
  const v = args.options.get(name);
  return Array.isArray(v) ? v : undefined;
}

/**
 * Pulls each `--name value` / `--name=value` of the flags `names` out of argv, for flags the option
 * parser must not see (a repeatable --run, the launcher's own flags): their values, and the rest in order.
 */
export function takeFlags(argv: readonly string[], names: readonly string[]): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = names.find((n) => arg === n || arg.startsWith(`${n}=`));
    if (name === undefined) {
      rest.push(arg);
    } else if (arg === name) {
      const value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`Missing value for ${name}`);
      values.push(value);
    } else {
      values.push(arg.slice(name.length + 1));
    }
  }
  return { values, rest };
}

/** Checks list values against a range only known later (e.g. the model's maxTokens). */
export function checkIntRange(values: readonly number[], flag: string, min: number, max: number): void {
  asUsage(() => {
    for (const v of values) integerInRange(v, flag, min, max);
  });
}

/** `<real-dir> <fake-dir>`, or `<real-dir>` alone with --per-length <root> (`dove fid`, `dove quality`). */
export function realAndFakeDirs(args: ParsedArgs): { realDir: string; fakeDir: string; root: undefined } | { realDir: string; fakeDir: undefined; root: string } {
  const root = getString(args, 'per-length');
  const [realDir, fakeDir] = args.positionals;
  if (root === undefined && args.positionals.length === 2) return { realDir: realDir!, fakeDir: fakeDir!, root };
  if (root !== undefined && args.positionals.length === 1) return { realDir: realDir!, fakeDir: undefined, root };
  const count = args.positionals.length;
  throw new UsageError(root === undefined ? `Expected <real-dir> <fake-dir> but received ${count} folder(s)` : `Expected only <real-dir> with --per-length but received ${count} folder(s)`);
}

/** Runs a library check; its INVALID_ARGUMENT becomes a UsageError (exit 2, with a --help hint). */
export function asUsage(check: () => void): void {
  try {
    check();
  } catch (error) {
    if (error instanceof DoveError && error.code === 'INVALID_ARGUMENT' && !(error instanceof UsageError)) throw new UsageError(error.message);
    throw error;
  }
}

/** Runs a command body; a UsageError prints its message and a --help hint and exits with 2. */
export async function withUsage(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`dove ${command}: ${error.message}\nRun \`dove ${command} --help\` for usage and examples.\n`);
      return error.exitCode;
    }
    throw error;
  }
}

/** --trust-model, for every command that loads a model file. */
export const TRUST_MODEL_HELP = `      --trust-model         load a model whose TorchScript touches files or the process (refused
                            otherwise: a model file is code; docs/MODEL_FORMAT.md), and run the
                            compiled package beside it (<model>.aoti.pt2, native code) if it matches`;

/** The model file and where it runs: every command that loads a DOVE model. */
export const MODEL_FILE_OPTIONS = {
  model: { type: 'string', alias: 'm' },
  device: { type: 'string' },
  'trust-model': { type: 'flag' },
} as const satisfies { [name: string]: OptionSpec };

/** Options every model-running command shares. */
export const MODEL_OPTIONS = {
  ...MODEL_FILE_OPTIONS,
  threshold: { type: 'float', min: 0, max: 1 },
  fit: { type: 'string', choices: ['cover', 'contain', 'fill'] },
  'max-input-pixels': { type: 'int', min: 1 },
} as const satisfies { [name: string]: OptionSpec };

export const MODEL_OPTIONS_HELP = `  -m, --model <file.pt>     DOVE/Q-DOVE export (default: the embedded model models/dove-tiny.pt)
      --device <dev>        cpu (default), cuda, cuda:N
${TRUST_MODEL_HELP}
      --threshold <p>       EOS probability threshold in (0,1) (default: the model's eosThreshold)
      --fit <policy>        cover (default: short side + centre crop), contain (pad), fill (stretch)
      --max-input-pixels <n>  refuse images whose header claims more pixels (default 268402689)`;
