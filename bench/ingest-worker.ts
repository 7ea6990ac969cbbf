/**
 * One ingest in its own process, so its peak RSS is its own: `node --import tsx bench/ingest-worker.ts VIDEO DIR`.
 * Prints one JSON line: seconds, frames, peak RSS.
 */
import path from 'node:path';
import { ingestMediaJob } from '../native/ingest/ingest-media.js';
import { JobRunner } from '../native/jobs/runner.js';
import { Project } from '../native/store/project.js';

const [video, dir] = process.argv.slice(2) as [string, string];
const project = Project.create(path.join(dir, `p-${process.pid}`), { appVersion: 'bench' });
const runner = new JobRunner(project, () => {});
runner.register(ingestMediaJob);
const t0 = performance.now();
const job = runner.enqueue('ingest.media', {
  paths: [video],
  sampling: { policy: 'fps', fps: 1 },
  frameSize: { mode: 'square', size: 224 },
});
await runner.idle();
const s = (performance.now() - t0) / 1000;
const row = project.jobs.get(job.id);
const media = project.media.byPath(path.resolve(video));
project.close();
console.log(
  JSON.stringify({
    state: row?.state,
    s,
    frames: media?.frameCount ?? 0,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  }),
);
