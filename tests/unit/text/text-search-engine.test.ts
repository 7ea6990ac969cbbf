/**
 * Text search through the engine and the CLI (issue 29): Fashion-MNIST frames with features of a ViT, a tiny GGUF
 * language model and a ShareLock head written so that "a photo of a {class}" lands on each class's centroid
 * (tests/helpers/text-head.ts). Retrieval by a text is then ranking by cosine with that centroid, and zero-shot with
 * that template is the nearest-centroid classifier: both recomputed here from the stored features.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelInfo, TextModelInfo } from '../../../native/api/contract.js';
import { runCli } from '../../helpers/cli.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { writeInitViT } from '../../helpers/models.js';
import { type CentroidHead, writeCentroidHead, writeTinyGgufLlm } from '../../helpers/text-head.js';
import { tmpDir } from '../../helpers/tmp.js';

const ROOT = fixturePath('fashion', 'train');
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * (b[i] as number), 0);

describe('text search over a project', () => {
  const work = tmpDir('flaneur-textsearch-engine-');
  const projectDir = path.join(work, 'p');
  const { engine, call } = dispatchEngine({ jobWorkers: false });
  let vision: ModelInfo;
  let llm: TextModelInfo;
  let runId: number;
  let head: CentroidHead;
  let headId: number;

  beforeAll(async () => {
    await call('project.create', { path: projectDir });
    await call('library.add', { paths: [ROOT] });
    await engine.requireProject().runner.idle();
    vision = await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
    await call('features.extract', { modelId: vision.id, size: 32 });
    await engine.requireProject().runner.idle();
    runId = (await call('features.runs', {}))[0]?.id as number;
  }, 300_000);
  afterAll(() => engine.close());

  it('says what is missing before a head and its language model are imported', async () => {
    const none = await call('text.search.ready', {});
    expect(none).toMatchObject({ ready: false, head: null });
    expect(none.why).toMatch(
      /No ShareLock head in this project: import one in Models → "Language models and text heads" \(or `flaneur text import HEAD`\)/,
    );
    await expect(call('retrieve.text', { text: 'a dog' })).rejects.toThrow(/No ShareLock head in this project/);

    const llmFile = writeTinyGgufLlm(work);
    const file = llmFile.file;
    head = await writeCentroidHead({ dir: work, projectDir, runId, root: ROOT, llm: llmFile, vision });
    // a head alone: it names the language model it needs
    headId = (await call('text.models.import', { path: head.file, name: 'centroids' })).id;
    const alone = await call('text.search.ready', {});
    expect(alone).toMatchObject({ ready: false, head: headId, textModel: null });
    expect(alone.why).toContain('needs the language model it was trained on (tiny-llama-test)');
    expect(alone.why).toContain('in Models → "Language models and text heads"');
    llm = await call('text.models.import', { path: file });
    const ready = await call('text.search.ready', {});
    expect(ready).toMatchObject({ ready: true, why: null, head: headId, textModel: llm.id, runId });
  }, 120_000);

  it('ranks the frames by cosine with the text’s embedding, best first, with their scores', async () => {
    const r = await call('retrieve.text', { text: 'a photo of a trouser', k: 12 });
    expect(r).toMatchObject({ head: headId, textModel: llm.id, runId, searched: 300, computed: 1 });
    const trouser = head.centroids[head.classes.indexOf('trouser')] as Float32Array;
    const brute = head.frames
      .map((f) => ({ mediaId: f.mediaId, frameIdx: f.frameIdx, sim: dot(f.vector, trouser), label: f.label }))
      .sort((a, b) => b.sim - a.sim);
    expect(r.results.map((x) => x.mediaId)).toEqual(brute.slice(0, 12).map((x) => x.mediaId));
    r.results.forEach((x, i) => {
      expect(x.sim).toBeCloseTo(brute[i]?.sim as number, 4);
    });
    // the trouser centroid's neighbours are mostly trousers (a random-init ViT still separates them)
    expect(brute.slice(0, 12).filter((x) => x.label === 'trouser').length).toBeGreaterThanOrEqual(8);
    // a new text is encoded once, then read from the project's cache
    expect((await call('retrieve.text', { text: 'something new' })).computed).toBe(1);
    expect((await call('retrieve.text', { text: 'something new' })).computed).toBe(0);
  }, 120_000);

  it('classifies by class names as the nearest class centroid does, scored on the labelled folder', async () => {
    const r = await call('classify.zeroShot', {
      classes: head.classes,
      templates: ['a photo of a {}'],
      root: ROOT,
    });
    const predicted = head.frames.map((f) => {
      let best = 0;
      head.centroids.forEach((c, i) => {
        if (dot(f.vector, c) > dot(f.vector, head.centroids[best] as Float32Array)) best = i;
      });
      return best;
    });
    const correct = head.frames.filter((f, i) => head.classes[predicted[i] as number] === f.label).length;
    expect(r.method).toBe('zero-shot');
    expect(r.evaluated).toBe(300);
    expect(r.accuracy).toBeCloseTo(correct / 300, 6);
    expect(r.accuracy).toBeGreaterThan(0.3); // chance: 0.1
    expect(r.confusion.flat().reduce((a, b) => a + b, 0)).toBe(300);
    expect(r.confusion.map((row, i) => row[i]).reduce((a, b) => (a as number) + (b as number), 0)).toBe(correct);
    expect(r.predictions).toEqual([]); // every frame is labelled
  }, 120_000);

  it('matches typed names to folder names regardless of case, _ and -, and says which folders no class names', async () => {
    const classes = head.classes.filter((c) => c !== 'bag').map((c) => c.replaceAll('_', ' ').toUpperCase());
    const r = await call('classify.zeroShot', { classes, root: ROOT });
    expect(r.templates.length).toBeGreaterThan(1);
    expect(r.evaluated).toBe(270);
    expect(r.unmatched).toBe(30);
    expect(r.unmatchedFolders).toEqual(['bag']);
    await expect(call('classify.zeroShot', { classes: ['car', 'plane'], root: ROOT })).rejects.toThrow(
      /No sub-folder of .* is named as one of the classes/,
    );
  }, 120_000);

  it('scores every point of a map by its similarity to a text', async () => {
    await call('map.build', { runId, method: 'pca' });
    await engine.requireProject().runner.idle();
    const map = await call('map.get', { id: 1 });
    const r = await call('map.textSimilarity', { mapId: 1, text: 'a photo of a sandal' });
    const sandal = head.centroids[head.classes.indexOf('sandal')] as Float32Array;
    const byKey = new Map(head.frames.map((f) => [`${f.mediaId}:${f.frameIdx}`, f.vector]));
    expect(r.sims).toHaveLength(map.points.length);
    map.points.forEach((p, i) => {
      expect(r.sims[i]).toBeCloseTo(dot(byKey.get(`${p.mediaId}:${p.frameIdx}`) as Float32Array, sandal), 4);
    });
    expect(r.max).toBe(Math.max(...r.sims));
  }, 120_000);

  it('releases a removed head’s projector and a removed language model at once', async () => {
    const heads = (await call('text.models.list', {})).filter((m) => m.kind === 'sharelock-head');
    const headKey = heads.find((m) => m.id === headId)?.key as string;
    await call('retrieve.text', { text: 'a photo of a bag' });
    expect(engine.textSearch.heldKeys()).toEqual([headKey, llm.key]);
    await call('text.models.remove', { id: headId });
    expect(engine.textSearch.heldKeys()).toEqual([]);
    await call('text.features', { model: llm.id, texts: ['not cached yet'] });
    expect(engine.textEncoders.heldKey()).toBe(llm.key); // the language model was not removed
    const llmFile = llm.file;
    await call('text.models.remove', { id: llm.id });
    expect(engine.textEncoders.heldKey()).toBeNull();
    // imported again for the command-line tests below
    headId = (await call('text.models.import', { path: head.file, name: 'centroids' })).id;
    llm = await call('text.models.import', { path: llmFile });
  }, 120_000);

  describe('from the command line', () => {
    beforeAll(() => engine.closeProject());

    it('`flaneur retrieve text "<query>" --top N` prints the best frames with their scores', async () => {
      const r = await runCli(['retrieve', 'text', 'a photo of a trouser', '--top', '5', '--project', projectDir]);
      expect(r.stderr).toContain(`ShareLock head #${headId} "centroids"`);
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(5);
      const sims = lines.map((l) => Number(l.split('\t')[0]));
      expect(sims).toEqual([...sims].sort((a, b) => b - a));
      expect(lines[0]).toMatch(/^\d\.\d{4}\t\S+\.png:1$/);
      const json = await runCli([
        'retrieve',
        'text',
        'a photo of a trouser',
        '--top',
        '5',
        '--project',
        projectDir,
        '--json',
      ]);
      expect(json.json<{ results: { sim: number }[] }>().results.map((x) => Number(x.sim.toFixed(4)))).toEqual(sims);
    }, 120_000);

    it('`flaneur classify --zero-shot classes.txt --test DIR` prints accuracy and the confusion matrix', async () => {
      const file = path.join(work, 'classes.txt');
      fs.writeFileSync(file, `# Fashion-MNIST\n${head.classes.join('\n')}\n\n`);
      const r = await runCli(['classify', '--zero-shot', file, '--test', ROOT, '--project', projectDir]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /^accuracy \d+\.\d\d% over 300 frames \(zero-shot from 10 class names, 8 prompt templates\)/,
      );
      expect(r.stdout).toContain('confusion (rows: truth, columns: predicted): ankle_boot, bag');
      const one = path.join(work, 'one.txt');
      fs.writeFileSync(one, 'dog\n');
      const bad = await runCli(['classify', '--zero-shot', one, '--project', projectDir]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('zero-shot needs at least two');
      const usage = await runCli(['classify', '--project', projectDir]);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain('give --train DIR (kNN from examples) or --zero-shot classes.txt');
    }, 180_000);
  });
});
