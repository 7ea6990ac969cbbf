/**
 * Commands whose work is heavy host-side computation: decoding a .pth pickle and hashing it (`models.import`, also
 * the engine's registration of a trained encoder), a bank from drawn masks, segmenting a frame and comparing models
 * on labelled frames (extraction, kNN, mask painting, PNG encoding), classifying a folder by kNN, k-means over a
 * run's patches, counting on a large frame (density maps, peaks), an UnCo run's collage preview. The engine runs them in its task worker
 * (jobs/worker-host.ts's TaskWorker) so that its event loop keeps answering; with job workers off, in the engine
 * itself. Each gets its own warm extractors, kNN sessions and count state where it runs.
 */
import path from 'node:path';
import type { CommandArgs, ParsedArgs } from '../api/contract.js';
import { classifyFolder } from '../classify/knn-classify.js';
import { CountService } from '../count/service.js';
import { previewCollages } from '../count/unco-preview.js';
import { ExtractorCache } from '../features/extractor-cache.js';
import { ExactKnn } from '../features/knn.js';
import type { RuntimeSettings } from '../runtime/session.js';
import { compareModels } from '../segment/compare.js';
import type { MaskEncoding } from '../segment/masks.js';
import { createBank, createClusterBank, segmentFrame } from '../segment/service.js';
import type { Project } from '../store/project.js';
import { folderLabels, labelsByContent } from './labelled-content.js';
import { modelCatalog, type RegisterArgs, registerModel } from './models.js';
import { importTextModel, TextEncoderCache, textFeatures } from './text-models.js';
import { TextSearchService } from './text-search.js';

export interface TaskDeps {
  extractors: ExtractorCache;
  knn: ExactKnn;
  counting: CountService;
  /** The language model kept loaded for `text.features`. */
  textEncoders: TextEncoderCache;
  /** A ShareLock head's projector and a run's embeddings kept warm for text queries. */
  textSearch: TextSearchService;
}

/** The deps of a worker process: its own caches, made with the Device settings of the call being run. */
export function workerDeps(): { deps: TaskDeps; setRuntime(r: RuntimeSettings): void } {
  let runtime: RuntimeSettings = { provider: 'auto', threads: null };
  const extractors = new ExtractorCache(() => runtime);
  const textEncoders = new TextEncoderCache(() => runtime);
  return {
    deps: {
      extractors,
      knn: new ExactKnn(() => runtime),
      counting: new CountService(extractors),
      textEncoders,
      textSearch: new TextSearchService(textEncoders, () => runtime),
    },
    setRuntime: (r) => {
      runtime = r;
    },
  };
}

export function commandTasks(d: TaskDeps) {
  return {
    // The command's arguments, or the engine's own registrations (a trained encoder: origin, provenance).
    'models.import': (project: () => Project, a: CommandArgs<'models.import'> | RegisterArgs) =>
      registerModel(project(), a, modelCatalog()),
    'segment.createBank': async (project: () => Project, a: ParsedArgs<'segment.createBank'>) => {
      const row = await createBank(project(), {
        ...a,
        extractors: d.extractors,
        examples: a.examples.map((e) => ({
          mediaId: e.mediaId,
          frameIdx: e.frameIdx,
          mask: path.resolve(e.mask),
          encoding: maskEncoding(e.encoding, e.palette),
        })),
      });
      const { id, name, runId, classes, patches, warnings } = row;
      return { id, name, runId, classes, patches, warnings };
    },
    'segment.apply': async (
      project: () => Project,
      { truthMask, truthEncoding, truthPalette, ...a }: ParsedArgs<'segment.apply'>,
    ) => {
      const truth = truthMask
        ? { truthMask: { path: path.resolve(truthMask), encoding: maskEncoding(truthEncoding, truthPalette) } }
        : {};
      const {
        mask: _mask,
        scores: _scores,
        grid: _grid,
        ...r
      } = await segmentFrame(project(), d.knn, {
        ...a,
        extractors: d.extractors,
        ...truth,
      });
      return r;
    },
    'segment.compareModels': (project: () => Project, a: ParsedArgs<'segment.compareModels'>) =>
      compareModels(project(), { ...a, extractors: d.extractors, knn: d.knn }),
    'classify.knn': async (project: () => Project, a: ParsedArgs<'classify.knn'>) => {
      // Labelled files whose content is already in the library (added from elsewhere) label those items; files
      // that label nothing are said with why.
      const folders = [
        await labelsByContent(project(), a.root, 'root'),
        ...(a.queryRoot ? [await labelsByContent(project(), a.queryRoot, 'queryRoot')] : []),
      ];
      const r = await classifyFolder(project(), d.knn, a, folders.map(folderLabels));
      const unlabelled = folders.flatMap((f) => f.unlabelled);
      return { ...r, unlabelled: { total: unlabelled.length, files: unlabelled.slice(0, 50) } };
    },
    'segment.clusterBank': async (project: () => Project, a: CommandArgs<'segment.clusterBank'>) => {
      const row = await createClusterBank(project(), d.knn, { ...a, extractors: d.extractors });
      return { id: row.id, name: row.name, runId: row.runId, classes: row.classes, patches: row.patches };
    },
    'count.exemplar': (project: () => Project, a: CommandArgs<'count.exemplar'>) => d.counting.exemplar(project(), a),
    'count.auto': (project: () => Project, a: CommandArgs<'count.auto'>) => d.counting.auto(project(), d.knn, a),
    'count.unco': (project: () => Project, a: CommandArgs<'count.unco'>) => d.counting.unco(project(), a),
    'train.uncoPreview': (project: () => Project, a: ParsedArgs<'train.uncoPreview'>) =>
      previewCollages(project(), a, d.extractors.settings()),
    'count.peaks': (_project: () => Project, a: CommandArgs<'count.peaks'>) => d.counting.peaks(a.token, a.threshold),
    'text.models.import': (project: () => Project, a: CommandArgs<'text.models.import'>) =>
      importTextModel(project(), a),
    'text.features': (project: () => Project, a: CommandArgs<'text.features'>) =>
      textFeatures(project(), d.textEncoders, a),
    // The engine's own call after `text.models.remove`: what this process keeps loaded of that model goes now.
    'text.models.forget': async (_project: () => Project, a: { key: string }) => {
      const encoder = await d.textEncoders.forget(a.key);
      const projector = await d.textSearch.forget(a.key);
      return { released: Number(encoder) + Number(projector) };
    },
    'retrieve.text': (project: () => Project, a: CommandArgs<'retrieve.text'>) => d.textSearch.retrieve(project(), a),
    'classify.zeroShot': async (project: () => Project, a: CommandArgs<'classify.zeroShot'>) =>
      d.textSearch.zeroShot(project(), a, a.root ? (await labelsByContent(project(), a.root)).labels : undefined),
    'map.textSimilarity': (project: () => Project, a: CommandArgs<'map.textSimilarity'>) =>
      d.textSearch.mapSimilarity(project(), a),
  };
}

/** A mask's encoding from a command's arguments: a palette when given, else the chosen kind (auto by default). */
function maskEncoding(kind: 'auto' | 'ids' | 'binary' | undefined, palette?: [number, number, number][]): MaskEncoding {
  return palette ? { kind: 'palette', colours: palette } : { kind: kind ?? 'auto' };
}

export type CommandTasks = ReturnType<typeof commandTasks>;
export type TaskName = keyof CommandTasks;
