// The JSON the server sends and the pages read: one definition for both sides (web/ imports these
// types; this file must stay free of Node imports so the browser build can type-check it).

/** GET /v1/model. */
export interface ModelInfo {
  name: string;
  variant: 'dove' | 'qdove';
  configName: string;
  imageSize: number;
  maxTokens: number;
  tokenDim: number;
  eosThreshold: number;
  device: string;
  limits: { bodyLimit: number; maxInputPixels: number; maxBatch: number; maxQueue: number; timeoutMs: number };
}

/** POST /v1/explore: images are PNG data URLs. */
export interface ExploreReply {
  imageSize: number;
  maxTokens: number;
  threshold: number;
  /** The EOS-chosen length. */
  length: number;
  eosProbabilities: number[];
  /** Index L-1 holds the value for L tokens; null where undefined (identical images, too small for SSIM). */
  psnr: (number | null)[];
  ssim: (number | null)[];
  /** Tiles per row of `sprite`: tile L-1 is the reconstruction from L tokens. */
  columns: number;
  input: string;
  sprite: string;
  /** The `dove reconstruct` grid: input, powers of two, the EOS choice, labelled. */
  grid: string;
}

export interface RunFile {
  name: string;
  bytes: number;
  modified: string;
}

/** GET /v1/runs/:id. */
export interface RunSummary {
  id: string;
  name: string;
  /** A `done` record is in the log. */
  finished: boolean;
  logBytes: number;
  updatedAt: string | null;
  lossCurve: RunFile | null;
  grids: RunFile[];
  checkpoints: { name: string; step: number; files: RunFile[] }[];
}

/** GET /v1/runs/:id/log?offset=N. */
export interface LogChunk {
  /** Where the next poll starts: just after the last complete line returned. */
  offset: number;
  /** True when the asked offset lay beyond the file (a new run in the same folder): reading restarted at 0. */
  reset: boolean;
  records: unknown[];
}
