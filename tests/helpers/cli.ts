/** Runs the `flaneur` CLI in this process (main() of native/cli/main.ts) and captures what it prints. */
import fs from 'node:fs';
import { expect, vi } from 'vitest';
import { main } from '../../native/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for --json runs). */
  json<T = Record<string, unknown>>(): T;
}

export async function runCli(args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out.push(a.join(' '));
  });
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err.push(a.join(' '));
  });
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err.push(String(chunk));
    return true;
  });
  try {
    const code = await main(args);
    const stdout = out.join('\n');
    return { code, stdout, stderr: err.join(''), json: <T>() => JSON.parse(stdout) as T };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}

/** `flaneur ARGS --project DIR --json`, expected to succeed (no error line, exit 0): its JSON. */
export function projectCli(project: string) {
  return async (...args: string[]): Promise<Record<string, unknown>> => {
    const r = await runCli([...args, '--project', project, '--json']);
    expect(r.stderr + r.stdout).not.toMatch(/^error/m);
    expect(r.code).toBe(0);
    return r.json<Record<string, unknown>>();
  };
}

/** Reads a float32 C-order .npy file, checking its header as numpy would. */
export function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not an .npy file`);
  const len = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + len);
  if (!header.includes("'descr': '<f4'") || !header.includes("'fortran_order': False") || (10 + len) % 64 !== 0)
    throw new Error(`${file}: unexpected header ${header}`);
  const shape = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
    .map(Number);
  const body = buf.subarray(10 + len);
  const data = new Float32Array(body.length / 4);
  new Uint8Array(data.buffer).set(body);
  if (data.length !== shape.reduce((a, d) => a * d, 1))
    throw new Error(`${file}: ${data.length} values, shape ${shape}`);
  return { shape, data };
}
