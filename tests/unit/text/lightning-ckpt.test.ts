/**
 * Official ShareLock checkpoints are PyTorch Lightning .ckpt files whose pickle holds OmegaConf objects besides the
 * state dict: their tensors are read with those classes as inert placeholders, a REDUCE of os.system anywhere is
 * still refused (and nothing runs), and the head refuses a language model or vision encoder other than its own.
 * Fixtures: tools/sharelock_ckpt_fixture.py.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePytorchCheckpoint } from '../../../native/models/pytorch.js';
import { modelFileSource } from '../../../native/models/safetensors.js';
import { checkHeadPairing } from '../../../native/text/head-file.js';
import { readShareLockCheckpoint } from '../../../native/text/lightning-ckpt.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { tmpDir } from '../../helpers/tmp.js';

const ckpt = fixturePath('text', 'sharelock_lightning.ckpt');
const expected = JSON.parse(fs.readFileSync(fixturePath('text', 'sharelock_lightning.json'), 'utf8')) as {
  config: { textDim: number; visionDim: number; hidden: number; layers: number };
  languageEncoder: string;
  visionEncoder: string;
  pwned: string;
  tensors: Record<string, number[]>;
};

const vision = (family: string, patchSize: number, dim: number, registers = 0) => ({
  id: 1,
  name: 'a vision model',
  sha256: 'f'.repeat(64),
  architecture: { family, patchSize, dim, registers },
});

describe('official ShareLock checkpoints', () => {
  beforeAll(() => fs.rmSync(expected.pwned, { force: true }));

  it('reads the head of a Lightning checkpoint with OmegaConf hyper-parameters, and what it expects', () => {
    const head = readShareLockCheckpoint(ckpt);
    expect(head.weights.config).toMatchObject({ ...expected.config, dropout: 0.2 });
    expect([...head.weights.tensors.keys()].sort()).toEqual(Object.keys(expected.tensors).sort());
    for (const [name, want] of Object.entries(expected.tensors)) {
      const got = head.weights.tensors.get(name) as Float32Array;
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i] as number, 6);
    }
    expect(head.textModel).toEqual({ key: null, name: 'meta-llama/Meta-Llama-3-8B', dim: expected.config.textDim });
    expect(head.vision).toMatchObject({
      name: 'dinov2_vitl14',
      architecture: { family: 'dinov2', patchSize: 14, dim: expected.config.visionDim, registers: 0 },
    });
    expect(head.origin).toMatch(/official ShareLock checkpoint \(PyTorch Lightning 2\.1\.0, 1500 steps\)/);
  });

  it('keeps refusing those classes where a state dict is expected (a model import)', () => {
    expect(() => parsePytorchCheckpoint(modelFileSource(ckpt, 'x.ckpt'), 'x.ckpt')).toThrow(
      /was refused: its pickle names "(numpy|omegaconf)\..*Nothing in the file was run/,
    );
  });

  for (const where of ['hparams', 'callbacks']) {
    it(`refuses a checkpoint whose ${where} REDUCE os.system, and runs nothing`, () => {
      const file = fixturePath('text', `sharelock_hostile_${where}.ckpt`);
      expect(() => readShareLockCheckpoint(file)).toThrow(
        /its pickle calls "posix\.system".*Nothing in the file was run/,
      );
      expect(fs.existsSync(expected.pwned)).toBe(false);
    });
  }

  it('pairs only with the language model and vision encoder named in its hyper-parameters', () => {
    const head = readShareLockCheckpoint(ckpt);
    const { textDim, visionDim } = expected.config;
    const llm = (name: string, dim = textDim) => ({ key: 'k', names: [name], dim });
    expect(() => checkHeadPairing('h', head, llm('/models/Meta-Llama-3-8B.Q4_K_M.gguf'), null)).not.toThrow();
    expect(() => checkHeadPairing('h', head, llm('Meta Llama 3 8B'), null)).not.toThrow();
    for (const other of ['Meta-Llama-3-8B-Instruct.gguf', 'Qwen2.5-0.5B.gguf', 'SmolLM-135M.gguf'])
      expect(() => checkHeadPairing('h', head, llm(other), null)).toThrow(/was trained on the features of meta-llama/);
    expect(() => checkHeadPairing('h', head, llm('Meta-Llama-3-8B.gguf', 2048), null)).toThrow(/gives other features/);
    expect(() => checkHeadPairing('h', head, null, vision('dinov2', 14, visionDim))).not.toThrow();
    expect(() => checkHeadPairing('h', head, null, vision('dinov2', 14, visionDim, 4))).toThrow(/dinov2_vitl14/);
    expect(() => checkHeadPairing('h', head, null, vision('dino', 16, visionDim))).toThrow(/places images elsewhere/);
  });

  describe('imported into a project', () => {
    const work = tmpDir('flaneur-ckpt-');
    const { engine, call } = dispatchEngine({ jobWorkers: false });
    beforeAll(() => call('project.create', { path: path.join(work, 'p') }));
    afterAll(() => engine.close());

    it('becomes a registered head that says what it pairs with; a hostile one registers nothing', async () => {
      const r = await call('text.models.import', { path: ckpt });
      expect(r).toMatchObject({ kind: 'sharelock-head', name: 'sharelock_lightning', existed: false });
      expect(r.head?.textModel.name).toBe('meta-llama/Meta-Llama-3-8B');
      expect(r.head?.vision.name).toBe('dinov2_vitl14');
      expect(r.summary).toMatch(/for meta-llama\/Meta-Llama-3-8B and dinov2_vitl14/);
      expect(fs.existsSync(path.join(work, 'p', r.file))).toBe(true);
      await expect(
        call('text.models.import', { path: fixturePath('text', 'sharelock_hostile_hparams.ckpt') }),
      ).rejects.toThrow(/posix\.system/);
      expect((await call('text.models.list', {})).map((m) => m.id)).toEqual([r.id]);
      expect(fs.existsSync(expected.pwned)).toBe(false);
    });
  });
});
