/**
 * Issue 25 item 6: the CLI's output is never cut short. A `--json` result of more than 1 MB piped to a reader that
 * takes its time arrives whole (before: 64-128 KB of it, exit 0, because the process exited right after writing to
 * the pipe); a reader that goes away (EPIPE) makes the exit status non-zero.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { presetConfig } from '../../../native/models/vit.js';
import { runCli } from '../../helpers/cli.js';
import { ROOT } from '../../helpers/engine-process.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { writeViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const IMAGE = fixturePath('synthetic', 'masks', '0010.png');

function cli(args: string[], home: string) {
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'native', 'cli-main.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, FLANEUR_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('CLI output through a pipe', () => {
  const home = tmpDir();
  const project = path.join(tmpDir(), 'p');
  // 256 images x 384 numbers: about 2 MB of JSON.
  const args = [
    'embed',
    ...Array.from({ length: 256 }, () => IMAGE),
    '--size',
    '16',
    '--json',
    '--model',
    '1',
    '--project',
    project,
  ];

  it('delivers a > 1 MB --json result whole to a slow reader, and exits 0', async () => {
    process.env.FLANEUR_HOME = home;
    // Its own model is #1 (--model 1 above): no starter model.
    expect((await runCli(['project', 'create', project, '--no-starter-model'])).code).toBe(0);
    const model = writeViT(path.join(tmpDir(), 'vit.safetensors'), { ...presetConfig('vit_s16'), depth: 1 }, 1);
    expect((await runCli(['model', 'import', model, '--project', project])).code).toBe(0);

    const child = cli(args, home);
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    // A slow reader: 16 KB at a time, with a pause between reads (the pipe fills and the writer must wait).
    child.stdout.pause();
    const reading = (async () => {
      for (;;) {
        const chunk = child.stdout.read(16 * 1024) ?? child.stdout.read();
        if (chunk) chunks.push(chunk as Buffer);
        else if (child.stdout.readableEnded || child.stdout.destroyed) break;
        else await new Promise<void>((r) => child.stdout.once('readable', () => r()).once('end', () => r()));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    await reading;
    const text = Buffer.concat(chunks).toString('utf8');
    expect(code, stderr).toBe(0);
    expect(text.length).toBeGreaterThan(1_000_000);
    const res = JSON.parse(text) as { dim: number; vectors: number[][] };
    expect(res.dim).toBe(384);
    expect(res.vectors).toHaveLength(256);
    expect(res.vectors.every((v) => v.length === 384 && v.every(Number.isFinite))).toBe(true);
  }, 120_000);

  it('exits non-zero when the reader goes away before the output is written (EPIPE)', async () => {
    const child = cli(args, home);
    // Close our end at once: every write the CLI makes meets a broken pipe.
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
  }, 120_000);
});
