import type { OptionSpec } from './args';

/** A `dove` subcommand. Each lives in lib/cli/commands/<name>.ts and is listed in lib/cli/commands/index.ts. */
export interface Command {
  name: string;
  summary: string;
  /** Full --help text, with examples. */
  help: string;
  /** The options `run` parses (what the argument fuzzing in test/fuzz drives). */
  specs: { readonly [name: string]: OptionSpec };
  /** Returns the process exit code. */
  run(argv: string[]): Promise<number>;
}
