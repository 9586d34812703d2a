import type { Command } from '../command';

// One line per subcommand; each module default-exports its Command. Loaded lazily so `dove --help`
// does not load libtorch.
export const commandLoaders: Record<string, () => Promise<Command>> = {
  reconstruct: async () => (await import('./reconstruct')).default,
  'reconstruct-batch': async () => (await import('./reconstruct-batch')).default,
  tokenize: async () => (await import('./tokenize')).default,
  fid: async () => (await import('./fid')).default,
  quality: async () => (await import('./quality')).default,
  probe: async () => (await import('./probe')).default,
  stats: async () => (await import('./stats')).default,
  train: async () => (await import('./train')).default,
  doctor: async () => (await import('./doctor')).default,
  serve: async () => (await import('./serve')).default,
};
