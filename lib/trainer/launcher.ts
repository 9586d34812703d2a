// Multi-process launcher with torchrun's contract: N worker processes per node, each with RANK,
// LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in its environment. The first worker to fail takes
// the job down: the others are terminated (SIGTERM, then SIGKILL after a grace period) and the
// launcher reports which rank failed and how.
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { DoveError } from '../base/errors';
import { integerAtLeast, integerInRange } from '../base/validate';

export interface LaunchOptions {
  /** Module run by each worker (the CLI entry point). */
  script: string;
  /** Arguments for each worker. */
  args: string[];
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  /** 0 = pick a free port (single node only). */
  masterPort?: number;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
  /** Grace period between SIGTERM and SIGKILL when tearing the job down. */
  killGraceMs?: number;
  onWorkerExit?: (rank: number, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface LaunchResult {
  /** 0 when every worker exited 0. */
  exitCode: number;
  /** The first failure, in words. */
  error?: string;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Runs the workers; resolves when all have exited (after a failure: when the rest were stopped). */
export async function launchWorkers(options: LaunchOptions): Promise<LaunchResult> {
  const nnodes = integerAtLeast(options.nnodes ?? 1, 'nnodes', 1);
  const nodeRank = integerInRange(options.nodeRank ?? 0, 'nodeRank', 0, nnodes - 1);
  const n = integerAtLeast(options.nprocPerNode, 'nprocPerNode', 1);
  const masterAddr = options.masterAddr ?? '127.0.0.1';
  let masterPort = options.masterPort ?? 0;
  if (masterPort === 0) {
    if (nnodes > 1) throw new DoveError('multi-node training needs an explicit master port (--master-port)', 'INVALID_ARGUMENT');
    masterPort = await freePort(masterAddr);
  }
  const worldSize = nnodes * n;
  const grace = options.killGraceMs ?? 5000;
  const children: ChildProcess[] = [];
  let failure: string | undefined;
  let exitCode = 0;

  const stopAll = (signal: NodeJS.Signals): void => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    }
  };
  let killTimer: NodeJS.Timeout | undefined;
  const teardown = (): void => {
    stopAll('SIGTERM');
    killTimer ??= setTimeout(() => stopAll('SIGKILL'), grace);
  };
  // Ctrl-C / SIGTERM to the launcher is passed on: workers finish their step and checkpoint (their own handler).
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);

  try {
    const exits = Array.from({ length: n }, (_, local) => {
      const rank = nodeRank * n + local;
      const child = fork(options.script, options.args, {
        env: {
          ...process.env,
          ...options.env,
          RANK: String(rank),
          LOCAL_RANK: String(local),
          WORLD_SIZE: String(worldSize),
          LOCAL_WORLD_SIZE: String(n),
          GROUP_RANK: String(nodeRank),
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
        },
        stdio: 'inherit',
      });
      children.push(child);
      return new Promise<void>((resolveExit) => {
        child.once('error', (error) => {
          failure ??= `worker rank ${rank} could not start: ${error.message}`;
          exitCode = 1;
          teardown();
          resolveExit();
        });
        child.once('exit', (code, signal) => {
          options.onWorkerExit?.(rank, code, signal);
          if (code !== 0 && failure === undefined) {
            failure = signal !== null ? `worker rank ${rank} was killed by ${signal}` : `worker rank ${rank} exited with code ${code}`;
            exitCode = 1;
            teardown();
          }
          resolveExit();
        });
      });
    });
    await Promise.all(exits);
  } finally {
    if (killTimer !== undefined) clearTimeout(killTimer);
    process.off('SIGINT', stopAll);
    process.off('SIGTERM', stopAll);
  }
  return failure === undefined ? { exitCode } : { exitCode, error: failure };
}
