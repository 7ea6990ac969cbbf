/**
 * The hash-folder job end to end (walk, hash, per-item commits, progress) vs coreutils `sha256sum` over the same
 * files, in the same run. Figure: files/s and MB/s, and ours/reference throughput.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashFolderJob } from '../native/ingest/hash-folder.js';
import { JobRunner } from '../native/jobs/runner.js';
import { Project } from '../native/store/project.js';

export async function benchHash(args: string[]): Promise<Record<string, unknown>> {
  const files = Number(args[0] ?? 2000);
  const size = Number(args[1] ?? 256 * 1024);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-bench-hash-'));
  try {
    const data = path.join(dir, 'data');
    fs.mkdirSync(data);
    const buf = Buffer.alloc(size, 3);
    const names: string[] = [];
    for (let i = 0; i < files; i++) {
      buf.writeUInt32LE(i, 0);
      const name = `f${String(i).padStart(6, '0')}.bin`;
      fs.writeFileSync(path.join(data, name), buf);
      names.push(name);
    }
    // Warm the page cache so both sides read from memory.
    execFileSync('cat', names, { cwd: data, stdio: 'ignore', maxBuffer: 1 << 30 });

    const t0 = performance.now();
    execFileSync('sha256sum', names, { cwd: data, stdio: 'ignore', maxBuffer: 1 << 30 });
    const sRef = (performance.now() - t0) / 1000;

    const project = Project.create(path.join(dir, 'project'), { appVersion: 'bench' });
    const runner = new JobRunner(project, () => {});
    runner.register(hashFolderJob);
    const t1 = performance.now();
    runner.enqueue('ingest.hashFolder', { root: data, algorithm: 'sha256' });
    await runner.idle();
    const sOurs = (performance.now() - t1) / 1000;
    project.close();

    const mb = (files * size) / 1e6;
    console.error(`hash: ${files} files x ${size} B: ours ${sOurs.toFixed(2)} s, sha256sum ${sRef.toFixed(2)} s`);
    return {
      bench: 'hash',
      files,
      bytes_per_file: size,
      s_ours: Number(sOurs.toFixed(3)),
      s_sha256sum: Number(sRef.toFixed(3)),
      mb_per_s_ours: Number((mb / sOurs).toFixed(1)),
      mb_per_s_sha256sum: Number((mb / sRef).toFixed(1)),
      ratio_vs_sha256sum: Number((sRef / sOurs).toFixed(3)),
      cpus: os.cpus().length,
      node: process.versions.node,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
