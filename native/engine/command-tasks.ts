/**
 * Commands whose work is heavy host-side computation (decoding a .pth pickle and hashing it, k-means over a run's
 * patches, counting on a large frame: density maps, peaks, mask painting, PNG encoding). The engine runs them in
 * its task worker (jobs/worker-host.ts's TaskWorker) so that its event loop keeps answering; with job workers off,
 * in the engine itself. Each gets its own warm extractors, kNN sessions and count state where it runs.
 */
import type { CommandArgs } from '../api/contract.js';
import { CountService } from '../count/service.js';
import { ExtractorCache } from '../features/extractor-cache.js';
import { ExactKnn } from '../features/knn.js';
import type { RuntimeSettings } from '../runtime/session.js';
import { createClusterBank } from '../segment/service.js';
import type { Project } from '../store/project.js';
import { modelCatalog, registerModel } from './models.js';

export interface TaskDeps {
  extractors: ExtractorCache;
  knn: ExactKnn;
  counting: CountService;
}

/** The deps of a worker process: its own caches, made with the Device settings of the call being run. */
export function workerDeps(): { deps: TaskDeps; setRuntime(r: RuntimeSettings): void } {
  let runtime: RuntimeSettings = { provider: 'auto', threads: null };
  const extractors = new ExtractorCache(() => runtime);
  return {
    deps: { extractors, knn: new ExactKnn(() => runtime), counting: new CountService(extractors) },
    setRuntime: (r) => {
      runtime = r;
    },
  };
}

export function commandTasks(d: TaskDeps) {
  return {
    'models.import': (project: () => Project, a: CommandArgs<'models.import'>) =>
      registerModel(project(), a, modelCatalog()),
    'segment.clusterBank': async (project: () => Project, a: CommandArgs<'segment.clusterBank'>) => {
      const row = await createClusterBank(project(), d.knn, { ...a, extractors: d.extractors });
      return { id: row.id, name: row.name, runId: row.runId, classes: row.classes, patches: row.patches };
    },
    'count.exemplar': (project: () => Project, a: CommandArgs<'count.exemplar'>) => d.counting.exemplar(project(), a),
    'count.auto': (project: () => Project, a: CommandArgs<'count.auto'>) => d.counting.auto(project(), d.knn, a),
    'count.unco': (project: () => Project, a: CommandArgs<'count.unco'>) => d.counting.unco(project(), a),
    'count.peaks': (_project: () => Project, a: CommandArgs<'count.peaks'>) => d.counting.peaks(a.token, a.threshold),
  };
}

export type CommandTasks = ReturnType<typeof commandTasks>;
export type TaskName = keyof CommandTasks;
