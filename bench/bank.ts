/**
 * Building a memory bank of 10^6 patches: per frame, f16 vectors (dim 384) and soft labels from a label map (4
 * classes, 14x14 patches), rare-class-first sampling off, stored in the project's SQLite. Prints patches/s and the
 * bytes each patch takes in the database file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../native/base/rng.js';
import { toF16 } from '../native/features/extract.js';
import { l2normalizeRows } from '../native/features/knn.js';
import { patchLabels } from '../native/segment/labels.js';
import { Project } from '../native/store/project.js';

export async function benchBank(args: string[]): Promise<Record<string, unknown>> {
  const target = Number(args[0] ?? 1_000_000);
  const dim = 384;
  const grid = 14;
  const C = 4;
  const perFrame = grid * grid;
  const frames = Math.ceil(target / perFrame);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-bench-bank-'));
  try {
    const project = Project.create(path.join(dir, 'p'), { appVersion: 'bench' });
    // A model and run row for the bank's provenance.
    const model = project.models.insert({ name: 'bench', sha256: 'bench', file: 'none', bytes: 0, manifest: {} });
    const run = project.features.ensureRun({
      modelId: model.id,
      modelSha256: 'bench',
      inputSize: 224,
      grid,
      dim,
      preprocessing: {},
      codeVersion: 'bench',
    });
    const bank = project.features.createBank({
      name: 'bench',
      runId: run.id,
      classes: ['a', 'b', 'c', 'd'],
      settings: {},
    });
    const r = new Rng(1);
    const sizeBefore = fs.statSync(path.join(project.dir, 'project.sqlite')).size;
    // Inputs are made before the clock starts: the benchmark times labelling, conversion and storage.
    const vec = l2normalizeRows(
      Float32Array.from({ length: perFrame * dim }, () => r.normal()),
      dim,
    );
    const W = 224;
    const labelsMap = Uint8Array.from({ length: W * W }, (_, i) => ((i % W) >> 6) % C);
    const t0 = performance.now();
    for (let f = 0; f < frames; f++) {
      const labels = patchLabels(labelsMap, W, W, { gridH: grid, gridW: grid }, C);
      project.features.addBankItem(bank.id, { mediaId: 1, frameIdx: f, n: perFrame, vectors: toF16(vec), labels });
    }
    const s = (performance.now() - t0) / 1000;
    project.db.pragma('wal_checkpoint(TRUNCATE)');
    const bytes = fs.statSync(path.join(project.dir, 'project.sqlite')).size - sizeBefore;
    const patches = frames * perFrame;
    project.close();
    return {
      patches,
      dim,
      classes: C,
      s: Number(s.toFixed(2)),
      patches_per_s: Math.round(patches / s),
      bytes_per_patch: Number((bytes / patches).toFixed(1)),
      raw_bytes_per_patch: dim * 2 + C * 4,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
