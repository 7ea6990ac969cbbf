/**
 * The command handlers: the one place where contract commands meet the engine. Every transport dispatches here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ProjectInfo } from '../api/contract.js';
import { createDispatcher, type Dispatcher, type Handlers } from '../api/dispatcher.js';
import { FlaneurError } from '../api/errors.js';
import { APP_VERSION } from '../base/version.js';
import { listUncoCounters } from '../count/unco-counter.js';
import { emptyFolder, isUncoExport } from '../count/unco-export.js';
import { uncoVideoInputs } from '../count/unco-video.js';
import { runPolicy } from '../features/extract.js';
import { mapPoints } from '../map/build.js';
import { binaryVersion, findBinaries, videoDecoders } from '../media/ffmpeg.js';
import { FrameStore } from '../media/frame-store.js';
import { duplicatePairs, similarImages, similarPatches } from '../retrieve/service.js';
import { sourceSize } from '../segment/batch.js';
import { bankClasses, relabelBank, saveDrawnMask } from '../segment/service.js';
import { checkFolderDestination, prepareFolderDestination, writeFileDestination } from '../store/destination.js';
import { SCHEMA_VERSION } from '../store/migrations.js';
import { motCsv, writeInstanceMasks } from '../track/export.js';
import { propagationFrame } from '../track/propagate-job.js';
import { listPreviews } from '../train/previews.js';
import { type Engine, jobInfo } from './engine.js';
import { mediaInfo, requireMedia, resolveMedia } from './library.js';
import { downloadableEntry } from './model-download.js';
import { modelCatalog } from './models.js';
import { removeTextModel, requireTextModel, textModelInfo } from './text-models.js';

export function createHandlers(engine: Engine): Handlers {
  const open = () => engine.requireProject();
  const requireJob = (id: number) => {
    const row = open().project.jobs.get(id);
    if (!row) throw new FlaneurError('NOT_FOUND', `No job ${id} in this project.`, { field: 'id' });
    return row;
  };
  /** An UnCo run's frozen backbone: the one asked for, else the project's default model. */
  const uncoModel = (asked: number | undefined) => {
    const project = open().project;
    const model = asked ?? engine.models.defaultModel(project)?.id;
    if (!model || !project.models.get(model))
      throw new FlaneurError('NOT_FOUND', 'Choose the model whose features the counter reads (no such model).', {
        field: 'model',
      });
    return model;
  };
  return {
    'app.info': () => ({
      name: 'flaneur',
      version: APP_VERSION,
      schemaVersion: SCHEMA_VERSION,
      node: process.versions.node,
      platform: process.platform,
      arch: os.arch(),
      home: engine.home.dir,
    }),

    'project.create': (a) => engine.createProject(a.path, a.name),
    'project.open': (a) => engine.openProject(a.path),
    'project.openDemo': () => engine.openDemo(),
    'project.close': async () => {
      await engine.closeProject();
      return null;
    },
    'project.current': (): ProjectInfo | null => engine.projectInfo(),
    'project.check': () => engine.checkProject(),
    'project.restoreBackup': (a) => engine.restoreBackup(a.path),
    'project.rebuild': (a) => engine.rebuildProject(a.path),
    'project.recent': () => engine.home.recent(),
    'project.forgetRecent': (a) => engine.home.forgetRecent(a.path),

    'jobs.list': (a) => open().project.jobs.list(a).map(jobInfo),
    'jobs.get': (a) => jobInfo(requireJob(a.id)),
    'jobs.items': (a) => {
      requireJob(a.id);
      return open().project.jobs.items(a.id, a);
    },
    'jobs.cancel': (a) => jobInfo(open().runner.cancel(a.id)),
    'jobs.resume': (a) => jobInfo(open().runner.resume(a.id)),

    'models.import': async (a) => {
      const info = await engine.command('models.import', a);
      engine.emit({ type: 'models.changed', models: engine.models.list(open().project) });
      return info;
    },
    'models.list': () => engine.models.list(open().project),
    'models.default': () => engine.models.defaultModel(open().project),
    'models.setDefault': (a) => engine.models.setDefaultModel(open().project, a.id),
    'models.addBundled': () => engine.addBundledModel(),
    'models.catalog': () => engine.models.catalog(open().project),
    'models.download': (a) => {
      downloadableEntry(modelCatalog(), a.id); // refuse at once what cannot be downloaded
      return jobInfo(open().runner.enqueue('models.download', a));
    },
    'models.remove': async (a) => {
      const list = await engine.models.remove(open().project, a.id);
      engine.emit({ type: 'models.changed', models: list });
      return list;
    },
    'models.embed': (a) => engine.models.embed(open().project, a.id, a.paths, a.size),
    'runtime.info': () => engine.models.runtimeInfo(),
    'runtime.configure': (a) => engine.models.configure(a),

    'library.add': (a) => {
      const paths = a.paths.map((p) => path.resolve(p));
      requireExisting(paths, 'paths');
      return jobInfo(open().runner.enqueue('ingest.media', { ...a, paths }));
    },
    'library.list': (a) => {
      const { project } = open();
      const { total, items } = project.media.list(a);
      return { total, items: items.map(mediaInfo), counts: project.media.counts() };
    },
    'library.get': (a) => mediaInfo(requireMedia(open().project, a.id)),
    'library.frames': (a) => {
      const { project } = open();
      const row = requireMedia(project, a.id);
      const frames = project.media.frames(row.id, a.offset ?? 0, a.limit ?? 100000);
      return { total: row.frameCount, frames: frames.map((f) => ({ index: f.idx, pts: f.pts })) };
    },
    'library.resolve': async (a) => (await resolveMedia(open().project, a.refs)).map(mediaInfo),
    'library.remove': (a) => {
      const { project } = open();
      requireMedia(project, a.id);
      project.media.remove(a.id);
      new FrameStore(project.cacheDir).remove(a.id);
      return null;
    },
    'media.tools': () => {
      const { ffmpeg, ffprobe } = findBinaries();
      return {
        ffmpeg: { path: ffmpeg.path, source: ffmpeg.source, version: binaryVersion(ffmpeg.path) },
        ffprobe: { path: ffprobe.path, source: ffprobe.source, version: binaryVersion(ffprobe.path) },
        videoDecoders: videoDecoders(ffmpeg.path),
      };
    },

    'features.extract': (a) => jobInfo(open().runner.enqueue('features.extract', a)),
    'features.runs': () => {
      const { project } = open();
      return project.features.runs().map((r) => ({
        id: r.id,
        modelId: r.modelId,
        modelName: project.models.get(r.modelId)?.name ?? `model ${r.modelId}`,
        inputSize: r.inputSize,
        grid: r.grid,
        resize: runPolicy(r),
        dim: r.dim,
        frames: project.features.count(r.id),
        libraryFrames: project.media.doneFrames(),
        preprocessing: r.preprocessing,
        createdAt: r.createdAt,
      }));
    },
    'features.export': (a) =>
      jobInfo(open().runner.enqueue('features.export', { ...a, outDir: checkFolderDestination(a.outDir, 'outDir') })),
    'segment.createBank': (a) => engine.command('segment.createBank', a),
    'segment.clusterBank': (a) => engine.command('segment.clusterBank', a),
    'segment.relabelBank': (a) => {
      const row = relabelBank(open().project, a.bankId, a.names, a.into);
      return { id: row.id, name: row.name, runId: row.runId, classes: row.classes, patches: row.patches };
    },
    'segment.saveMask': (a) => ({
      path: saveDrawnMask(open().project, {
        mediaId: a.mediaId,
        frameIdx: a.frameIdx,
        labels: new Uint8Array(Buffer.from(a.data, 'base64')),
      }),
    }),
    'segment.bankClasses': (a) => bankClasses(open().project, a.bankId, a.perClass),
    'segment.banks': () => {
      const { project } = open();
      return project.features
        .banks()
        .map(({ settings: _s, ...b }) => ({ ...b, missingMedia: project.features.bankMissingMedia(b.id) }));
    },
    'segment.batch': (a) =>
      jobInfo(
        open().runner.enqueue('segment.batch', {
          ...a,
          // Checked now, so a bad folder is refused at once instead of failing the job later.
          ...(a.outDir ? { outDir: checkFolderDestination(a.outDir, 'outDir') } : {}),
          ...(a.truth ? { truth: a.truth.map((t) => ({ ...t, mask: path.resolve(t.mask) })) } : {}),
        }),
      ),
    'segment.compareModels': (a) => engine.command('segment.compareModels', a),
    'segment.apply': (a) => engine.command('segment.apply', a),
    'features.fungi': (a) => jobInfo(open().runner.enqueue('features.fungi', a)),
    'fungi.runs': () => {
      const { project } = open();
      return project.fungi.runs().map((r) => ({
        id: r.id,
        modelId: r.modelId,
        modelName: project.models.get(r.modelId)?.name ?? `model ${r.modelId}`,
        frames: project.fungi.count(r.id),
        libraryFrames: project.media.doneFrames(),
        dim: r.dim,
        pcaDim: r.pcaDim,
        settings: r.settings,
        createdAt: r.createdAt,
      }));
    },
    'classify.knn': (a) => engine.command('classify.knn', a),
    'map.build': (a) => jobInfo(open().runner.enqueue('map.build', a)),
    'map.list': () => {
      const { project } = open();
      return project.maps.list().map((m) => ({
        id: m.id,
        runId: m.runId,
        features: m.features,
        method: m.method,
        points: m.points,
        sourceFrames: m.features === 'fungi' ? project.fungi.count(m.sourceRun) : project.features.count(m.sourceRun),
        createdAt: m.createdAt,
      }));
    },
    'map.get': (a) => mapPoints(open().project, a.id, a.root),
    'retrieve.images': (a) => similarImages(open().project, engine.knn, { ...a, k: a.k ?? 12 }),
    'retrieve.duplicates': (a) =>
      duplicatePairs(open().project, engine.knn, {
        runId: a.runId,
        threshold: a.threshold ?? 0.95,
        limit: a.limit ?? 100,
      }),
    'retrieve.patches': (a) => similarPatches(open().project, engine.knn, { ...a, k: a.k ?? 12 }),
    'count.exemplar': (a) => engine.command('count.exemplar', a),
    'count.auto': (a) => engine.command('count.auto', a),
    'count.batch': (a) => jobInfo(open().runner.enqueue('count.batch', a)),
    'count.results': (a) => {
      const { project } = open();
      const { items } = project.jobs.items(a.jobId, { limit: 1000000 });
      return items
        .map((i) => i.result as { mediaId: number; frameIdx: number; pts: number; count: number } | null)
        .filter(
          (r): r is { mediaId: number; frameIdx: number; pts: number; count: number } =>
            r !== null && typeof r.count === 'number',
        )
        .map(({ mediaId, frameIdx, pts, count }) => ({ mediaId, frameIdx, pts, count }))
        .sort((x, y) => x.mediaId - y.mediaId || x.frameIdx - y.frameIdx);
    },
    'count.peaks': (a) => engine.command('count.peaks', a),
    'count.unco': (a) => engine.command('count.unco', a),
    'count.uncoVideo': (a) => {
      uncoVideoInputs(open().project, a);
      return jobInfo(open().runner.enqueue('count.uncoVideo', a));
    },
    'count.counters': () => listUncoCounters(open().project).map(({ file: _file, ...c }) => c),
    'track.start': (a) => jobInfo(open().runner.enqueue('track.dora', a)),
    'track.boxes': (a) => {
      const { project } = open();
      if (!project.tracks.run(a.runId))
        throw new FlaneurError('NOT_FOUND', `No track run ${a.runId}.`, { field: 'runId' });
      return project.tracks.boxes(a.runId).map(({ mask: _m, ...b }) => b);
    },
    'track.runs': (a) => {
      const { project } = open();
      return project.tracks.runsOf(a.mediaId).map((r) => ({
        id: r.id,
        modelId: r.modelId,
        objects: ((r.params as { heads?: number[] }).heads ?? []).length,
        grid: r.grid,
        frames: project.tracks.lastFrame(r.id) + 1,
        createdAt: r.createdAt,
      }));
    },
    'track.frame': (a) => {
      const { project } = open();
      const run = project.tracks.run(a.runId);
      if (!run) throw new FlaneurError('NOT_FOUND', `No track run ${a.runId}.`, { field: 'runId' });
      return {
        grid: run.grid,
        objects: project.tracks
          .boxes(a.runId, a.frameIdx)
          .map((b) => ({ object: b.object, box: b.box, area: b.area, mask: Array.from(b.mask) })),
      };
    },
    'track.mot': (a) => {
      const { project } = open();
      if (!project.tracks.run(a.runId))
        throw new FlaneurError('NOT_FOUND', `No track run ${a.runId}.`, { field: 'runId' });
      return { csv: motCsv(project.tracks.boxes(a.runId)) };
    },
    'track.exportMot': (a) => {
      const { project } = open();
      if (!project.tracks.run(a.runId))
        throw new FlaneurError('NOT_FOUND', `No track run ${a.runId}.`, { field: 'runId' });
      const csv = motCsv(project.tracks.boxes(a.runId));
      const file = writeFileDestination(a.path, csv, 'path');
      return { path: file, rows: csv.split('\n').length - 1 };
    },
    'track.exportMasks': (a) => {
      const { project } = open();
      const run = project.tracks.run(a.runId);
      if (!run) throw new FlaneurError('NOT_FOUND', `No track run ${a.runId}.`, { field: 'runId' });
      const media = project.media.get(run.mediaId);
      if (!media?.frameWidth || !media.frameHeight)
        throw new FlaneurError('NOT_FOUND', `Media ${run.mediaId} has no frames.`, { field: 'runId' });
      const dir = prepareFolderDestination(a.dir ?? path.join(project.dir, 'exports', `tracks-${a.runId}`), 'dir');
      const size =
        a.resolution === 'source' ? sourceSize(media) : { width: media.frameWidth, height: media.frameHeight };
      const { frames } = writeInstanceMasks(dir, project.tracks.boxes(a.runId), run.grid, size.width, size.height);
      return { dir, frames };
    },
    'track.propagate': (a) => jobInfo(open().runner.enqueue('track.propagate', a)),
    'eval.davis': (a) => jobInfo(open().runner.enqueue('eval.davis', a)),
    'track.propagation': (a) => propagationFrame(open().project, a.jobId, a.pts, a.width, a.height),
    'train.start': (a) => jobInfo(open().runner.enqueue('train.dino', a)),
    'train.export': (a) => jobInfo(open().runner.enqueue('train.export', a)),
    // An UnCo export (its folder with unco.json, or the decoder it wrote) comes back as a counter, not a model.
    'train.import': (a) =>
      jobInfo(open().runner.enqueue(isUncoExport(a.path) ? 'train.uncoImport' : 'train.import', a)),
    'train.unco': (a) => jobInfo(open().runner.enqueue('train.unco', { ...a, model: uncoModel(a.model) })),
    'train.uncoPreview': (a) => engine.command('train.uncoPreview', { ...a, model: uncoModel(a.model) }),
    'train.uncoExport': (a) => {
      emptyFolder(path.resolve(a.dir));
      return jobInfo(open().runner.enqueue('train.uncoExport', { ...a, model: uncoModel(a.model) }));
    },
    'train.uncoImport': (a) => jobInfo(open().runner.enqueue('train.uncoImport', a)),
    'train.log': (a) => open().project.trainLog.list(a.jobId),
    'train.previews': (a) => listPreviews(path.join(open().project.checkpointsDir, `train-${a.jobId}`), a.lastSteps),

    'text.models.list': () => open().project.textModels.list().map(textModelInfo),
    'text.models.import': (a) => engine.command('text.models.import', a),
    'text.models.remove': async (a) => {
      const { project } = open();
      const key = project.textModels.get(a.id)?.key;
      const left = removeTextModel(project, a.id);
      // the loaded model (or head's projector) is released now, not when another is next used
      if (key && !project.textModels.list().some((m) => m.key === key))
        await engine.command('text.models.forget', { key });
      return left;
    },
    'text.features': (a) => engine.command('text.features', a),
    'text.features.start': (a) => {
      const { project, runner } = open();
      requireTextModel(project, a.model, 'llm');
      return jobInfo(runner.enqueue('text.features', a));
    },
    'text.search.ready': (a) => engine.textSearch.ready(open().project, a),
    'retrieve.text': (a) => engine.command('retrieve.text', a),
    'classify.zeroShot': (a) => engine.command('classify.zeroShot', a),
    'map.textSimilarity': (a) => engine.command('map.textSimilarity', a),
    'train.sharelock': (a) => {
      const { project } = open();
      requireTextModel(project, a.textModel, 'llm', 'textModel');
      if (!project.features.run(a.runId))
        throw new FlaneurError('NOT_FOUND', `No feature run ${a.runId} in this project.`, { field: 'runId' });
      for (const [p, field] of [
        [a.classes?.root, 'classes'],
        [a.captions?.file, 'captions'],
      ] as const)
        if (p) requireExisting([path.resolve(p)], field);
      return jobInfo(open().runner.enqueue('train.sharelock', a));
    },

    'ingest.hashFolder': (a) => {
      const root = path.resolve(a.root);
      requireExisting([root], 'root');
      return jobInfo(open().runner.enqueue('ingest.hashFolder', { ...a, root }));
    },
  };
}

/**
 * A path the user typed that does not exist is refused before any job starts, with the path in the sentence, so the
 * UI can say it next to the field (a job would only record it as a failed item).
 */
function requireExisting(paths: readonly string[], field: string): void {
  const missing = paths.filter((p) => !fs.existsSync(p));
  if (missing.length === 0) return;
  const list = missing.length === 1 ? missing[0] : `${missing.length} of them, e.g. ${missing[0]}`;
  throw new FlaneurError(
    'NOT_FOUND',
    `No such file or folder: ${list}. Check the path (spelling, capitals, the drive is mounted) and try again; nothing was started.`,
    { field },
  );
}

export function createEngineDispatcher(engine: Engine): Dispatcher {
  return createDispatcher(createHandlers(engine));
}
