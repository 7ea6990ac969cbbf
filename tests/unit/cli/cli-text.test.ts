/** `flaneur text import | models | remove | features`: the project's language models and ShareLock heads from the CLI. */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TextModelInfo } from '../../../native/api/contract.js';
import { runCli } from '../../helpers/cli.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { randomLlamaWeights, tinyLlamaConfig, writeTinyLlama } from '../../helpers/llama-models.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('flaneur text', () => {
  const work = tmpDir('flaneur-cli-text-');
  const project = path.join(work, 'p');
  const c = tinyLlamaConfig();
  const gguf = writeTinyLlama(path.join(work, 'llm'), 'gguf', randomLlamaWeights(c, 3), c);

  beforeAll(async () => {
    process.env.FLANEUR_HOME = path.join(work, 'home');
    expect((await runCli(['project', 'create', project])).code).toBe(0);
  });

  it('imports a language model and an official checkpoint, and lists them', async () => {
    const llm = await runCli(['text', 'import', gguf, '--project', project]);
    expect(llm.code).toBe(0);
    expect(llm.stdout).toMatch(/#1\tllm\ttiny-llama-test\tlanguage model, llama width 32/);
    expect(llm.stdout).toMatch(/needs about .* of memory/);
    const head = await runCli([
      'text',
      'import',
      fixturePath('text', 'sharelock_lightning.ckpt'),
      '--project',
      project,
    ]);
    expect(head.code).toBe(0);
    expect(head.stdout).toMatch(/ShareLock head for meta-llama\/Meta-Llama-3-8B \+ dinov2_vitl14/);
    const list = await runCli(['text', 'models', '--json', '--project', project]);
    expect(list.json<TextModelInfo[]>().map((m) => [m.id, m.kind])).toEqual([
      [1, 'llm'],
      [2, 'sharelock-head'],
    ]);
    const hostile = await runCli([
      'text',
      'import',
      fixturePath('text', 'sharelock_hostile_callbacks.ckpt'),
      '--project',
      project,
    ]);
    expect(hostile.code).not.toBe(0);
    expect(hostile.stderr).toMatch(/posix\.system.*Nothing in the file was run/);
  }, 180_000);

  it('prints the features of texts given on the line or in a file, encoding each once', async () => {
    const first = await runCli(['text', 'features', 'a photo of a dog', 'a photo of a cat', '--project', project]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/2 texts: 2 encoded now/);
    const file = path.join(work, 'texts.txt');
    fs.writeFileSync(file, 'a photo of a dog\n\na photo of a bird\n');
    const r = await runCli(['text', 'features', '--file', file, '--json', '--project', project]);
    expect(r.code).toBe(0);
    const out = r.json<{ dim: number; computed: number; texts: string[]; features: number[][] }>();
    expect(out).toMatchObject({ dim: 32, computed: 1, texts: ['a photo of a dog', 'a photo of a bird'] });
    expect(out.features.map((f) => f.length)).toEqual([32, 32]);
  }, 180_000);

  it('encodes a list of over 1000 texts as a job, with its progress, then prints them all', async () => {
    const file = path.join(work, 'long.txt');
    fs.writeFileSync(file, Array.from({ length: 1100 }, (_, i) => `line ${i} of a long file`).join('\n'));
    const r = await runCli(['text', 'features', '--file', file, '--project', project]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/text features/);
    expect(r.stdout).toMatch(/^1100 texts: 1100 encoded now/);
    const again = await runCli(['text', 'features', '--file', file, '--json', '--project', project]);
    const out = again.json<{ computed: number; features: number[][] }>();
    expect(out.computed).toBe(0);
    expect(out.features).toHaveLength(1100);
  }, 180_000);

  it('trains a ShareLock head with `train --objective sharelock`, saying which classes were held out', async () => {
    const labelled = path.join(work, 'labelled');
    for (const cls of ['bag', 'coat', 'dress']) {
      fs.mkdirSync(path.join(labelled, cls), { recursive: true });
      for (const f of fs.readdirSync(fixturePath('fashion', 'train', cls)).slice(0, 3))
        fs.copyFileSync(fixturePath('fashion', 'train', cls, f), path.join(labelled, cls, f));
    }
    const vit = writeInitViT(path.join(work, 'vit.safetensors'));
    for (const args of [
      ['add', labelled],
      ['model', 'import', vit],
      ['features', '--all', '--size', '32'],
    ]) {
      const step = await runCli([...args, '--project', project]);
      expect(step.code, step.stderr).toBe(0);
    }
    const r = await runCli([
      'train',
      '--objective',
      'sharelock',
      '--classes',
      labelled,
      '--unseen',
      'coat',
      '--steps',
      '2',
      '--batch',
      '4',
      '--hidden',
      '16',
      '--layers',
      '2',
      '--project',
      project,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/trained on: bag, dress; held out \(unseen\): coat/);
    expect(r.stdout).toMatch(/head #3 ShareLock head for tiny-llama-test/);
    const usage = await runCli(['train', '--objective', 'sharelock', '--project', project]);
    expect(usage.code).not.toBe(0);
    expect(usage.stderr).toMatch(/give --classes DIR/);
  }, 300_000);

  it('removes a text model with `text remove ID` and lists the ones left', async () => {
    const r = await runCli(['text', 'remove', '3', '--project', project]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Removed text model #3\.\n#1\tllm\t.*\n#2\tsharelock-head\t/);
    const list = await runCli(['text', 'models', '--json', '--project', project]);
    expect(list.json<TextModelInfo[]>().map((m) => m.id)).toEqual([1, 2]);
    const again = await runCli(['text', 'remove', '3', '--project', project]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/No language model or ShareLock head 3 in this project/);
  }, 60_000);

  it('validates on held-out images and stops early with `--val-fraction`, `--val-every` and `--patience`', async () => {
    const common = ['train', '--objective', 'sharelock', '--classes', path.join(work, 'labelled'), '--unseen', 'coat'];
    const tiny = ['--batch', '4', '--hidden', '16', '--layers', '2', '--project', project];
    // 6 seen images, 2 held out; within the warm-up the head barely moves: no fall of 0.1 after the first validation
    const r = await runCli([
      ...common,
      '--steps',
      '50',
      '--val-fraction',
      '0.34',
      '--val-every',
      '2',
      '--patience',
      '1',
      ...tiny,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/stopped early: early stopping at step 4: the validation loss did not fall 0.1 below/);
    const bad = await runCli([...common, '--patience', '2', ...tiny]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/early stopping \(patience\) needs a validation split/);
  }, 180_000);
});
