/**
 * Issue 26 on the engine side: a new project gets the starter model in one call, every model says what it is and
 * how good it is known to be, and a labelled folder of copies labels the library items that hold the same content.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_DIR } from '../../../native/engine/engine.js';
import { aboutModel, TRAINED_HERE } from '../../../native/engine/model-about.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

describe("a newcomer's second hour, engine side", () => {
  const { engine, call, d } = dispatchEngine();
  afterAll(() => engine.close());
  const work = tmpDir();

  it('adds the bundled starter model to a new project once, and says from its manifest that it learned little', async () => {
    await call('project.create', { path: path.join(work, 'p') });
    expect(await call('models.list', {})).toEqual([]);
    const manifest = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'manifest.json'), 'utf8')) as {
      name: string;
      training: { steps: number };
      evaluation: { miou: number; miou_vit_s16_init: number };
    };
    const m = await call('models.addBundled', {});
    expect(m.name).toBe(manifest.name);
    expect(m.about).toMatchObject({ kind: 'bundled', verified: false, suggestPublished: true });
    expect(m.about?.budget).toContain(`${manifest.training.steps} steps`);
    expect(m.about?.verdict).toContain(manifest.evaluation.miou.toFixed(2));
    expect(m.about?.verdict).toContain(manifest.evaluation.miou_vit_s16_init.toFixed(2));
    // A second click registers nothing new.
    expect((await call('models.addBundled', {})).id).toBe(m.id);
    expect((await call('models.list', {})).length).toBe(1);
  });

  it('says an unknown imported file is not verified and names it', async () => {
    const m = await call('models.import', { path: writeInitViT(path.join(work, 'mine.safetensors')) });
    expect(m.about).toMatchObject({ kind: 'imported', verified: false, suggestPublished: false });
    expect(m.about?.provenance).toContain('mine.safetensors');
  });

  it('says a model trained in the project is its own and not evaluated, a catalog file verified only by checksum', () => {
    const trained = aboutModel({
      source: '/p/checkpoints/train-6/export/encoder.safetensors',
      bytes: 10,
      licence: TRAINED_HERE,
    });
    expect(trained).toMatchObject({ kind: 'trained', verified: false });
    expect(trained.verdict).toMatch(/Compare base and adapted/);
    const byName = aboutModel({
      source: '/d/dino_deitsmall16_pretrain.pth',
      bytes: 10,
      catalog: { id: 'dino-vits16', by: 'file name' },
    });
    expect(byName).toMatchObject({ kind: 'published', verified: false });
    expect(byName.verdict).toMatch(/Recognised by its file name/);
    expect(aboutModel({ source: '/d/x.pth', bytes: 10, catalog: { id: 'dino-vits16', by: 'sha256' } }).verified).toBe(
      true,
    );
  });

  it('labels library items by content when the labelled folder holds copies of them at other paths', async () => {
    // The images go into the library from a flat folder; the labelled folder holds the same bytes by class.
    const inbox = path.join(work, 'inbox');
    const labelled = path.join(work, 'labelled');
    fs.mkdirSync(inbox, { recursive: true });
    const classes = ['bag', 'coat'];
    for (const c of classes) {
      fs.mkdirSync(path.join(labelled, c), { recursive: true });
      const files = fs.readdirSync(fixturePath('fashion', 'train', c)).slice(0, 4);
      for (const f of files) {
        fs.copyFileSync(fixturePath('fashion', 'train', c, f), path.join(inbox, `${c}-${f}`));
        fs.copyFileSync(fixturePath('fashion', 'train', c, f), path.join(labelled, c, f));
      }
    }
    await call('library.add', { paths: [inbox] });
    await engine.requireProject().runner.idle();
    const model = (await call('models.list', {})).find((x) => x.about?.kind === 'imported');
    if (!model) throw new Error('no imported model');
    await call('features.extract', { modelId: model.id, size: 64 });
    await engine.requireProject().runner.idle();
    const run = (await call('features.runs', {})).find((r) => r.modelId === model.id);
    if (!run) throw new Error('no feature run');
    const r = await call('classify.knn', { runId: run.id, root: labelled, k: 3 });
    expect(r.classes).toEqual(classes);
    expect(r.attachedByContent).toBe(8);
    expect(r.evaluated).toBe(8);
    // Adding the labelled folder itself skips its files as duplicates, and the labels still attach by content.
    await call('library.add', { paths: [labelled] });
    await engine.requireProject().runner.idle();
    expect((await call('library.list', { limit: 100 })).total).toBe(8);
    expect((await call('classify.knn', { runId: run.id, root: labelled, k: 3 })).attachedByContent).toBe(8);
  });
  it('says why the files of a labelled folder label nothing, and refuses a folder it cannot read', async () => {
    // A project of its own: bag images added from elsewhere, coat images never added, one bag image under both.
    await call('project.create', { path: path.join(work, 'why') });
    const model = await call('models.import', { path: writeInitViT(path.join(work, 'why.safetensors')) });
    const inbox = path.join(work, 'why-inbox');
    const labelled = path.join(work, 'why-labelled');
    for (const d of [inbox, path.join(labelled, 'bag'), path.join(labelled, 'coat')])
      fs.mkdirSync(d, { recursive: true });
    const bags = fs.readdirSync(fixturePath('fashion', 'train', 'bag')).slice(0, 3);
    for (const f of bags) {
      fs.copyFileSync(fixturePath('fashion', 'train', 'bag', f), path.join(inbox, f));
      fs.copyFileSync(fixturePath('fashion', 'train', 'bag', f), path.join(labelled, 'bag', f));
    }
    fs.copyFileSync(fixturePath('fashion', 'train', 'bag', bags[0] as string), path.join(labelled, 'coat', 'same.png'));
    const coats = fs.readdirSync(fixturePath('fashion', 'train', 'coat')).slice(0, 2);
    for (const f of coats) fs.copyFileSync(fixturePath('fashion', 'train', 'coat', f), path.join(labelled, 'coat', f));
    await call('library.add', { paths: [inbox] });
    await engine.requireProject().runner.idle();
    await call('features.extract', { modelId: model.id, size: 64 });
    await engine.requireProject().runner.idle();
    const runId = (await call('features.runs', {}))[0]?.id as number;

    // One class is left (bag: two items; the third lies under both classes): refused, with every reason.
    const refused = await d.dispatch('classify.knn', { runId, root: labelled, k: 1 });
    if (refused.ok) throw new Error('classified a folder with one class');
    expect(refused.error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'root' });
    expect(refused.error.message).toContain('(found 1)');
    expect(refused.error.message).toMatch(
      /2 files \(e\.g\. train_\d+\.png\): not in the library, by its path or as a copy of an item/,
    );
    expect(refused.error.message).toMatch(
      /2 files \(e\.g\. \S+\.png\): a copy of library item #\d+, whose content lies under bag and coat/,
    );

    // The coat images added: two classes, and the files that still label nothing listed with why.
    await call('library.add', { paths: coats.map((f) => path.join(labelled, 'coat', f)) });
    await engine.requireProject().runner.idle();
    await call('features.extract', { modelId: model.id, size: 64 });
    await engine.requireProject().runner.idle();
    const r = await call('classify.knn', { runId, root: labelled, k: 1 });
    expect(r.classes).toEqual(['bag', 'coat']);
    expect(r.attachedByContent).toBe(2);
    expect(r.evaluated).toBe(4);
    expect(r.unlabelled?.files.map((f) => [path.relative(labelled, f.path), f.code]).sort()).toEqual(
      [
        [path.join('bag', bags[0] as string), 'TWO_CLASSES'],
        [path.join('coat', 'same.png'), 'TWO_CLASSES'],
      ].sort(),
    );

    // A folder that is not there is refused as such, naming the field.
    const missing = await d.dispatch('classify.knn', { runId, root: path.join(work, 'nowhere'), k: 1 });
    expect(missing).toMatchObject({
      ok: false,
      error: {
        code: 'NOT_FOUND',
        field: 'root',
        message: expect.stringMatching(/nowhere cannot be read: it does not exist\.$/),
      },
    });
  });
});
