/**
 * Job: the DAVIS benchmark runner (`flaneur eval davis`). For every sequence of a DAVIS-layout folder
 * (JPEGImages/<resolution>/<seq>/*.jpg, Annotations/<resolution>/<seq>/*.png: palette PNGs, DAVIS-2016 0/255 or
 * DAVIS-2017 multi-object ids), the first frame's masks are propagated with DINO's protocol and every frame but the
 * first and the last is scored (J, F per object, as the DAVIS toolkit's semi-supervised evaluation does). Frames are
 * read from the folder and features computed in memory: nothing enters the library or the feature store; predicted
 * masks are written only when asked. Resumable per sequence.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { type DavisResult, EvalDavisArgs, type SequenceScore } from '../api/propagate.js';
import { loadRegisteredModel } from '../features/extract.js';
import type { JobHandler } from '../jobs/types.js';
import { maxId, type ObjectScore, summarise, VideoScorer } from '../metrics/video.js';
import { prepareFolderDestination } from '../store/destination.js';
import { ContextSimilarity } from './affinity.js';
import { ImageFolderSource } from './frames.js';
import { instancePng, loadExtractor, propagatePass, readInstanceMask } from './propagate-job.js';

export interface DavisSequence {
  name: string;
  frames: string;
  annotations: string;
}

/** The sequences of a DAVIS root at a resolution (a root without the resolution level is read too). */
export function davisSequences(root: string, resolution: string, only?: readonly string[]): DavisSequence[] {
  const level = (kind: string) => {
    const withRes = path.join(root, kind, resolution);
    return fs.existsSync(withRes) ? withRes : path.join(root, kind);
  };
  const jpeg = level('JPEGImages');
  const ann = level('Annotations');
  if (!fs.existsSync(jpeg) || !fs.existsSync(ann))
    throw new FlaneurError(
      'NOT_FOUND',
      `${root} is not a DAVIS folder: it needs JPEGImages/${resolution}/<sequence>/ and Annotations/${resolution}/<sequence>/.`,
      { field: 'root' },
    );
  const names = fs
    .readdirSync(ann, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const missing = (only ?? []).filter((s) => !names.includes(s));
  if (missing.length)
    throw new FlaneurError('NOT_FOUND', `No sequence ${missing.join(', ')} in ${ann}.`, { field: 'sequences' });
  return (only ?? names).map((name) => ({
    name,
    frames: path.join(jpeg, name),
    annotations: path.join(ann, name),
  }));
}

interface DavisCheckpoint {
  sequences: number;
}

export const evalDavisJob: JobHandler<EvalDavisArgs, DavisCheckpoint> = {
  kind: 'eval.davis',
  args: EvalDavisArgs,
  title: (a) => `DAVIS evaluation of model #${a.modelId} on ${path.basename(a.root)}`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const sequences = davisSequences(a.root, a.resolution, a.sequences);
    if (sequences.length === 0) throw new FlaneurError('NOT_FOUND', `No sequences under ${a.root}.`, { field: 'root' });
    const { model } = loadRegisteredModel(project, a.modelId);
    const masksDir = a.masksDir ? prepareFolderDestination(a.masksDir, 'masksDir') : null;
    const sources = new Map<string, ImageFolderSource>();
    let total = 0;
    for (const s of sequences) {
      const src = await ImageFolderSource.open(s.frames, /\.jpe?g$/i);
      sources.set(s.name, src);
      total += src.count;
    }
    const finished = ctx.finishedKeys();
    let done = sequences
      .filter((s) => finished.has(`seq:${s.name}`))
      .reduce((n, s) => n + (sources.get(s.name) as ImageFolderSource).count, 0);
    const extractor = await loadExtractor(
      model,
      a.size,
      ctx.runtime,
      sequences[0] ? (sources.get(sequences[0].name) as ImageFolderSource) : { width: a.size, height: a.size },
    );
    const similarity = new ContextSimilarity(model.config.dim, ctx.runtime);
    ctx.phase(`propagating on ${extractor.provider}`, { total, unit: 'frames', done });
    let seqCount = 0;
    try {
      for (const s of sequences) {
        const source = sources.get(s.name) as ImageFolderSource;
        seqCount++;
        if (finished.has(`seq:${s.name}`)) continue;
        ctx.throwIfAborted();
        const t0 = performance.now();
        const stem = (f: string) => path.basename(f).replace(/\.[^.]+$/, '');
        const truthFile = (i: number) => {
          const f = path.join(s.annotations, `${stem(source.files[i] as string)}.png`);
          return fs.existsSync(f) ? f : null;
        };
        const first = truthFile(0);
        if (!first)
          throw new FlaneurError(
            'NOT_FOUND',
            `Sequence ${s.name} has no annotation of its first frame (${stem(source.files[0] as string)}.png).`,
          );
        const startIds = await readInstanceMask(first, source.width, source.height);
        const objects = maxId(startIds);
        const scorer = new VideoScorer(objects);
        const out = masksDir ? prepareFolderDestination(path.join(masksDir, s.name)) : null;
        if (out)
          fs.writeFileSync(
            path.join(out, `${stem(source.files[0] as string)}.png`),
            instancePng(startIds, source.width, source.height),
          );
        await propagatePass({
          source,
          extractor,
          classes: objects + 1,
          options: a,
          start: 0,
          startIds,
          direction: 'forward',
          similarity,
          throwIfAborted: () => ctx.throwIfAborted(),
          onFrame: async (i, ids) => {
            if (out)
              fs.writeFileSync(
                path.join(out, `${stem(source.files[i] as string)}.png`),
                instancePng(ids, source.width, source.height),
              );
            const t = i < source.count - 1 ? truthFile(i) : null;
            if (t) scorer.add(ids, await readInstanceMask(t, source.width, source.height), source.width, source.height);
            ctx.progress(++done, total);
          },
        });
        ctx.progress(++done, total);
        const score = scorer.score();
        const result: SequenceScore & { ms: number } = {
          sequence: s.name,
          frames: source.count,
          J: score.J,
          F: score.F,
          JF: score.JF,
          objects: score.objects,
          ms: performance.now() - t0,
        };
        ctx.commit([{ key: `seq:${s.name}`, status: 'ok', result }], { sequences: seqCount });
      }
    } finally {
      await extractor.release();
      await similarity.release();
    }
    const rows = project.jobs
      .items(ctx.jobId, { limit: 1000000 })
      .items.filter((i) => i.key.startsWith('seq:'))
      .map((i) => i.result as SequenceScore & { ms: number });
    const bySeq = new Map(rows.map((r) => [r.sequence, r]));
    const ordered = sequences.map((s) => bySeq.get(s.name)).filter((r): r is SequenceScore & { ms: number } => !!r);
    const all: ObjectScore[] = ordered.flatMap((r) => r.objects);
    const mean = summarise(all);
    const frames = ordered.reduce((n, r) => n + r.frames, 0);
    const summary: DavisResult = {
      J: mean.J,
      F: mean.F,
      JF: mean.JF,
      sequences: ordered.map(({ ms: _ms, ...r }) => r),
      frames,
      msPerFrame: frames ? ordered.reduce((n, r) => n + r.ms, 0) / frames : 0,
      settings: {
        modelId: a.modelId,
        size: a.size,
        context: a.context,
        topk: a.topk,
        radius: a.radius,
        temperature: a.temperature,
        firstRadius: a.firstRadius ?? a.radius,
        firstPrior: a.firstPrior,
        reidentify: a.reidentify,
        upsample: a.upsample,
        resolution: a.resolution,
        masksDir,
        provider: extractor.provider,
      },
    };
    ctx.commit([{ key: 'summary', status: 'ok', result: summary }], { sequences: seqCount });
  },
};
