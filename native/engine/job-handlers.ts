/**
 * The registry of job kinds: what the engine's runner accepts and what a job worker process
 * (job-worker-main.ts) can run. Kept apart from engine.ts so that a worker loads the handlers, not the engine.
 */

import { countBatchJob } from '../count/batch.js';
import { trainUncoJob } from '../count/train-unco.js';
import { trainUncoExportJob, trainUncoImportJob } from '../count/unco-export.js';
import { countUncoVideoJob } from '../count/unco-video.js';
import { exportFeaturesJob } from '../features/export.js';
import { extractFeaturesJob } from '../features/extract.js';
import { fungiJob } from '../fungi/job.js';
import { hashFolderJob } from '../ingest/hash-folder.js';
import { ingestMediaJob } from '../ingest/ingest-media.js';
import type { AnyJobHandler } from '../jobs/types.js';
import { mapJob } from '../map/build.js';
import { segmentBatchJob } from '../segment/batch.js';
import { evalDavisJob } from '../track/davis.js';
import { propagateJob } from '../track/propagate-job.js';
import { trackJob } from '../track/track-job.js';
import { trainExportJob } from '../train/export-run.js';
import { trainImportJob } from '../train/import-run.js';
import { trainDinoJob } from '../train/train-dino.js';
import { trainShareLockJob } from '../train/train-sharelock.js';
import { downloadModelJob } from './model-download.js';
import { textFeaturesJob } from './text-features-job.js';

export const JOB_HANDLERS: readonly AnyJobHandler[] = [
  hashFolderJob,
  ingestMediaJob,
  trainDinoJob,
  trainExportJob,
  trainImportJob,
  trainUncoJob,
  trainUncoExportJob,
  trainUncoImportJob,
  extractFeaturesJob,
  exportFeaturesJob,
  segmentBatchJob,
  countBatchJob,
  countUncoVideoJob,
  trackJob,
  propagateJob,
  evalDavisJob,
  fungiJob,
  mapJob,
  downloadModelJob,
  trainShareLockJob,
  textFeaturesJob,
];
