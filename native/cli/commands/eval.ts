/**
 * `flaneur eval davis`: the DAVIS benchmark runner. A registered model (--model ID in the project) or a weights file
 * (--model FILE.safetensors: imported into a temporary project that is deleted afterwards, unless --keep-project),
 * every sequence propagated from its first frame's masks and scored as the DAVIS toolkit does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DavisResult } from '../../api/propagate.js';
import { UsageError } from '../errors.js';
import { command, formatJob } from '../session.js';
import { propagationOptions } from './track.js';

export const davis = command(
  async (s) => {
    const root = path.resolve(s.inv.positionals[0] as string);
    const modelRef = s.opt('model');
    if (!modelRef) throw new UsageError('eval davis: missing --model ID|FILE.safetensors');
    const byFile = !/^\d+$/.test(modelRef);
    let temp: string | null = null;
    let modelId: number;
    if (byFile) {
      if (!fs.existsSync(modelRef))
        throw new UsageError(`eval davis: --model ${modelRef} is neither a model id nor a file`);
      temp = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-davis-'));
      await s.call('project.create', { path: temp, name: 'DAVIS evaluation (temporary)' });
      modelId = (await s.call('models.import', { path: path.resolve(modelRef), name: path.basename(modelRef) })).id;
    } else {
      await s.openProject();
      modelId = Number(modelRef);
    }
    try {
      const out = s.opt('out');
      const masks = s.opt('masks');
      const sequences = s.opt('sequences');
      const resolution = s.opt('resolution');
      const job = await s.call('eval.davis', {
        modelId,
        root,
        ...propagationOptions(s),
        ...(resolution ? { resolution } : {}),
        ...(sequences ? { sequences: sequences.split(',').map((x) => x.trim()) } : {}),
        ...(masks ? { masksDir: path.resolve(masks) } : {}),
      });
      const done = await s.waitJob(job);
      const summary = (await s.jobItems(done.id)).find((i) => i.key === 'summary')?.result as DavisResult;
      if (out) fs.writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
      const f = (x: number) => (100 * x).toFixed(1);
      s.out(summary, () =>
        [
          formatJob(done),
          'sequence\tJ\tF\tJ&F',
          ...summary.sequences.map((q) => `${q.sequence}\t${f(q.J)}\t${f(q.F)}\t${f(q.JF)}`),
          `mean\t${f(summary.J)}\t${f(summary.F)}\t${f(summary.JF)}\t(${summary.frames} frames, ${summary.msPerFrame.toFixed(0)} ms/frame)`,
          ...(out ? [`results in ${path.resolve(out)}`] : []),
        ].join('\n'),
      );
    } finally {
      if (temp && !s.flag('keep-project')) {
        await s.engine.closeProject();
        s.engine.home.forgetRecent(temp);
        fs.rmSync(temp, { recursive: true, force: true });
      } else if (temp) s.note(`the temporary project is kept in ${temp}`);
    }
  },
  { project: false },
);
