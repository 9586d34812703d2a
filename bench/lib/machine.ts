// What the numbers were measured on: they mean little without the CPU, the load and the versions.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  /** 1-minute load average when the run started and when it ended: other work on the machine skews every number. */
  loadAtStart: number;
  loadAtEnd: number | null;
  kernel: string;
  node: string;
  git: string | null;
  date: string;
}

function gitRevision(root: string): string | null {
  try {
    const rev = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${rev} (+uncommitted changes)` : rev;
  } catch {
    return null; // no commits yet, or not a git checkout (an npm pack)
  }
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.split(':')[1].trim();
  } catch {
    // not Linux: fall through to os.cpus()
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

export function machineInfo(root: string): MachineInfo {
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAtStart: os.loadavg()[0],
    loadAtEnd: null,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    git: gitRevision(root),
    date: new Date().toISOString(),
  };
}
