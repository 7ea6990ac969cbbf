/**
 * Ctrl-C during a CLI job: the process stops with a sentence saying how to continue (exit 130), the job keeps the
 * frames it finished, and `flaneur jobs resume` completes it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { ROOT } from '../../helpers/engine-process.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('a CLI job interrupted with Ctrl-C', () => {
  it('stops with exit 130, keeps its frames, and jobs resume finishes it', async () => {
    const home = tmpDir();
    const work = tmpDir();
    const project = path.join(work, 'p');
    process.env.FLANEUR_HOME = home;
    try {
      expect((await runCli(['project', 'create', project])).code).toBe(0);
      const add = ['add', fixturePath('synthetic', 'tour.mp4'), '--fps', '1', '--size', '240', '--project', project];
      expect((await runCli(add)).code).toBe(0);
      const model = writeInitViT(path.join(work, 'vit.safetensors'));
      expect((await runCli(['model', 'import', model, '--project', project])).code).toBe(0);

      // Batches of 2 frames: progress lines at every 10% (stderr is not a terminal here).
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(ROOT, 'native', 'cli-main.ts'),
          'features',
          '--all',
          '--batch',
          '2',
          '--project',
          project,
        ],
        { cwd: ROOT, env: { ...process.env, FLANEUR_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      let sent = false;
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /extracting[^\n]* (\d+)\/20 frames/g;
        for (const hit of stderr.matchAll(m)) {
          if (!sent && Number(hit[1]) >= 2) {
            sent = true;
            child.kill('SIGINT');
          }
        }
      });
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      expect(sent).toBe(true);
      expect(code).toBe(130);
      const id = /Job #(\d+) keeps what it finished: `flaneur jobs resume \1` continues it/.exec(stderr)?.[1];
      expect(id).toBeDefined();

      const shown = await runCli(['jobs', 'show', id as string, '--project', project, '--json']);
      const job = shown.json<{ job: { state: string; progress: { done: number } } }>().job;
      expect(job.state).toBe('interrupted');
      expect(job.progress.done).toBeGreaterThanOrEqual(2);
      expect(job.progress.done).toBeLessThan(20);

      const resumed = await runCli(['jobs', 'resume', id as string, '--project', project, '--json']);
      expect(resumed.code).toBe(0);
      expect(resumed.json()).toMatchObject({ state: 'done' });
      const runs = await runCli(['features', 'runs', '--project', project, '--json']);
      expect(runs.json<{ frames: number }[]>()[0]?.frames).toBe(20);
    } finally {
      delete process.env.FLANEUR_HOME;
    }
  }, 240_000);
});
