/**
 * A newcomer's second hour (issue 26), end to end in browser mode against the real engine: a new project (not the
 * demo) sees with the starter model and says what that model is; every disabled button says why beside it; a
 * labelled folder of copies labels the library by content; the heads field and the import confirmation; waits show
 * progress where the user clicked and cannot be started twice; the Train view never shows another run's figures;
 * finished jobs, imports, mask names and the token-less address read right.
 *
 * The cases share the engine and the browser, never data: each makes the project it needs (`ownProject`), so any one
 * of them runs alone (`-t`) or in any order.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../native/api/contract.js';
import { DEFAULT_MODEL_DIR } from '../../native/engine/engine.js';
import { fixturePath } from '../helpers/fixtures.js';
import { TINY_VIT, writeInitViT, writeViT } from '../helpers/models.js';
import { fillNecoRun, type Session, useAppSession } from './browser.js';

/** Engine calls the page made, by command name (counted from the HTTP requests of the typed client). */
function countCalls(page: Page): (command: string) => number {
  const seen: string[] = [];
  page.on('request', (r) => {
    if (!r.url().endsWith('/api/call')) return;
    const m = /"command":"([^"]+)"/.exec(r.postData() ?? '');
    if (m?.[1]) seen.push(m[1]);
  });
  return (command) => seen.filter((c) => c === command).length;
}

/**
 * Starts recording, at every change of the page, the text of the elements `selector` matches (joined by " | ");
 * `recorded()` returns what was seen. Catches a state however briefly it was on screen.
 */
async function recordTexts(page: Page, selector: string): Promise<() => Promise<string[]>> {
  const key = `__rec${Math.random().toString(36).slice(2)}`;
  await page.evaluate(`(() => {
    const seen = (window.${key} = []);
    const rec = () => {
      const t = [...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => e.textContent).join(' | ');
      if (t && seen[seen.length - 1] !== t) seen.push(t);
    };
    rec();
    new MutationObserver(rec).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  })()`);
  return () => page.evaluate(`window.${key}`) as Promise<string[]>;
}

/**
 * Disabled buttons on screen with no visible reason beside them: the reason is the element the button's
 * aria-describedby names, shown, a sentence long, on the button's line (within 120 px vertically). Also how many
 * disabled buttons were checked.
 */
function unexplainedDisabled(page: Page): Promise<{ checked: number; bad: string[] }> {
  return page.evaluate(`(() => {
    const bad = [];
    let checked = 0;
    for (const b of document.querySelectorAll('button')) {
      if (!b.disabled) continue;
      const r = b.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      checked++;
      const ids = (b.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean);
      const why = ids
        .map((id) => document.getElementById(id))
        .find((e) => e && (e.textContent || '').trim().length >= 8 && e.getBoundingClientRect().width > 0);
      if (!why) {
        bad.push((b.textContent || '').trim() + ': no reason shown');
        continue;
      }
      const w = why.getBoundingClientRect();
      if (Math.abs((w.top + w.bottom) / 2 - (r.top + r.bottom) / 2) > 120)
        bad.push((b.textContent || '').trim() + ': reason not beside it');
    }
    return { checked, bad };
  })()`);
}

/** The views of the navigation, each with an element that shows it has loaded. */
const VIEWS: { link: string; ready: (p: Page) => ReturnType<Page['getByRole']> }[] = [
  { link: 'Project', ready: (p) => p.getByRole('heading', { name: 'New project' }) },
  { link: 'Library', ready: (p) => p.getByRole('button', { name: 'Add to library' }) },
  { link: 'Models', ready: (p) => p.getByRole('heading', { name: 'In this project' }) },
  { link: 'Segment', ready: (p) => p.getByRole('button', { name: 'Extract features for the library' }) },
  { link: 'Retrieve', ready: (p) => p.getByRole('heading', { name: 'Retrieve', level: 1 }) },
  { link: 'Map', ready: (p) => p.getByRole('heading', { name: 'Map', level: 1 }) },
  { link: 'Classify', ready: (p) => p.getByRole('heading', { name: 'Classify', level: 1 }) },
  { link: 'Count', ready: (p) => p.getByRole('heading', { name: 'Count', level: 1 }) },
  { link: 'Train', ready: (p) => p.getByRole('button', { name: 'Start training' }) },
  { link: 'Jobs', ready: (p) => p.getByRole('heading', { name: 'All jobs' }) },
  { link: 'Device', ready: (p) => p.getByRole('heading', { name: 'Device', level: 1 }) },
];

/** Visits every view (and the player of the first video), checks its disabled buttons and takes its screenshot. */
async function walkViews(s: Session, prefix: string): Promise<number> {
  const { page } = s;
  let checked = 0;
  const check = async (name: string) => {
    // Views fill in from the engine; the check runs once what they show has settled.
    await page.waitForTimeout(600);
    const r = await unexplainedDisabled(page);
    expect(r.bad, `${name}: disabled buttons without a reason`).toEqual([]);
    checked += r.checked;
    await s.shot(`${prefix}-${name.toLowerCase()}`);
  };
  // A tall window: each view's screenshot shows the whole of it (the main column scrolls on its own).
  const viewport = page.viewportSize();
  await page.setViewportSize({ width: 1280, height: 2400 });
  for (const v of VIEWS) {
    await page.getByRole('link', { name: v.link, exact: true }).click();
    await v.ready(page).first().waitFor();
    await check(v.link);
  }
  await page.getByRole('link', { name: 'Library', exact: true }).click();
  await page.locator('[data-testid^="media-"]').first().waitFor();
  const video = page.locator('[data-testid^="media-"][data-kind="video"]').first().getByRole('link');
  if ((await video.count()) > 0) {
    await video.click();
    await page.getByRole('button', { name: 'Discover and track objects' }).waitFor();
    await check('Player');
  }
  if (viewport) await page.setViewportSize(viewport);
  return checked;
}

/**
 * The Segment view's line of feature run `id` once the run holds `frames` frames: its own count ("— 21 frames"), never
 * the stale note's "covers 13 of the library's 21 frames" shown while the extraction is still under way.
 */
function runLine(page: Page, id: number, frames: number) {
  return page.getByTestId(`run-${id}`).filter({ hasText: new RegExp(`— ${frames} frames`) });
}

/** Waits for a job the test started through the engine to end, and says how it ended if not done. */
async function waitJob(s: Session, job: JobInfo, timeout = 180_000): Promise<void> {
  await expect
    .poll(async () => (await s.engine.call('jobs.get', { id: job.id })).state, { timeout })
    .toMatch(/^(done|failed|cancelled|interrupted)$/);
  const end = await s.engine.call('jobs.get', { id: job.id });
  expect(end.state, `${end.title}: ${end.error?.message ?? ''}`).toBe('done');
}

/**
 * A project of the case's own at `dir`, made through the engine as the Project view makes one: with the starter model
 * unless `starter` is false, the files of `media` added (1 fps, 240 px) and ingested, and the page showing it.
 */
async function ownProject(s: Session, dir: string, o: { starter?: boolean; media?: string[] } = {}): Promise<void> {
  // From the Project view, as a user switches projects: no view is left showing the previous project's items.
  await s.page.getByRole('link', { name: 'Project', exact: true }).click();
  await s.page.getByRole('heading', { name: 'New project' }).waitFor();
  await s.engine.call('project.create', { path: dir });
  if (o.starter !== false) await s.engine.call('models.addBundled', {});
  if (o.media?.length) {
    const job = await s.engine.call('library.add', {
      paths: o.media,
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await waitJob(s, job);
  }
  await s.page
    .getByTestId('project-name')
    .filter({ hasText: path.basename(dir) })
    .waitFor();
}

/** Features of the whole library with the project's model #`modelId` at 224 px, as a run the views list. */
async function extractAll(s: Session, modelId = 1): Promise<void> {
  await waitJob(s, await s.engine.call('features.extract', { modelId, size: 224 }));
}

describe("a newcomer's second hour, end to end in browser mode", () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  let calls: (command: string) => number;
  beforeAll(() => {
    s = app.session();
    calls = countCalls(s.page);
  });
  // Each case answers for the console errors of its own steps only.
  beforeEach(() => {
    s.errors.length = 0;
  });
  const manifest = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'manifest.json'), 'utf8')) as {
    name: string;
    evaluation: { miou: number; miou_vit_s16_init: number };
  };

  it('explains the launch token on a page when the address is opened without it', async () => {
    const { page } = s;
    // As a browser that never had the launch address (one browser process here: its cookie is cleared instead).
    const before = s.errors.length;
    await page.goto('about:blank');
    await page.context().clearCookies();
    const res = await page.goto(`${s.engine.url}/`);
    expect(res?.status()).toBe(401);
    await page.getByRole('heading', { name: 'Open Flaneur with its launch address' }).waitFor();
    await expect(page.locator('body').textContent()).resolves.toMatch(/\/\?token=.*npm start/s);
    await s.shot('80-token-page');
    // The launch address opens the app again.
    await page.goto(`${s.engine.url}/?token=${s.engine.token}`);
    await page.getByRole('link', { name: 'Project', exact: true }).waitFor();
    // The browser logs the refused loads (the page, its icon) as console errors: expected here, and only here.
    const added = s.errors.splice(before);
    expect(added.filter((e) => !/status of 401/.test(e))).toEqual([]);
  });

  it('every disabled button in every view of a bare project says why, beside it', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Project', exact: true }).click();
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'bare'));
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'bare' }).waitFor();
    // A video, so that the player and Count show their controls; no model.
    await s.engine.call('library.add', {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await expect.poll(async () => (await s.engine.call('library.list', { status: 'done' })).total).toBe(1);
    const checked = await walkViews(s, '81-bare');
    // Enough disabled buttons were met for the walk to mean something (Extract, Track, Count, Train forms, …).
    expect(checked).toBeGreaterThanOrEqual(8);
    // The player's tracking button says it needs a model, and the starter model is one click away there.
    await expect(page.getByRole('button', { name: 'Discover and track objects' }).isDisabled()).resolves.toBe(true);
    await page.getByTestId('no-model').getByRole('button', { name: 'Add the starter model' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'Discover and track objects' }).isEnabled()).toBe(true);
    await page.getByTestId('model-about').filter({ hasText: 'Not verified' }).waitFor();
    expect(s.errors).toEqual([]);
  });

  it('gives a new project the starter model and says what it is, from its manifest, where a model is chosen', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Project', exact: true }).click();
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'starter'));
    // Left as it is: a new project gets the starter model.
    await expect(page.getByLabel('Add the starter model').isChecked()).resolves.toBe(true);
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'starter' }).waitFor();
    expect((await s.engine.call('project.current', {}))?.isDemo).toBe(false);

    await page.getByRole('link', { name: 'Models', exact: true }).click();
    const row = page.getByTestId('model-1');
    await row.filter({ hasText: manifest.name }).waitFor();
    const about = row.getByTestId('model-about');
    await expect(about.getAttribute('data-kind')).resolves.toBe('bundled');
    const text = (await about.textContent()) ?? '';
    expect(text).toMatch(/^Not verified/);
    expect(text).toContain(manifest.evaluation.miou.toFixed(2));
    expect(text).toContain(manifest.evaluation.miou_vit_s16_init.toFixed(2));
    expect(text).toMatch(/\d+ steps of \d+ frames/);
    await about.getByRole('link', { name: 'the Models view, under Get models' }).waitFor();
    await expect(page.locator('main').textContent()).resolves.not.toContain('arrives with the Dora training feature');
  });

  it('extracts features, tracks and counts with the starter model, no model imported by hand; waits show progress where clicked and start once', async () => {
    const { page } = s;
    // A new project as the Project view makes it, with nothing imported by hand.
    await ownProject(s, path.join(work, 'seeing'));
    const media = path.join(work, 'seeing-media');
    fs.mkdirSync(media, { recursive: true });
    fs.copyFileSync(fixturePath('synthetic', 'tour.mp4'), path.join(media, 'tour.mp4'));
    fs.copyFileSync(fixturePath('count', 'coins.png'), path.join(media, 'coins.png'));
    await s.engine.call('library.add', {
      paths: [media],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await expect.poll(async () => (await s.engine.call('library.list', { status: 'done' })).total).toBe(2);
    expect((await s.engine.call('models.list', {})).map((m) => m.name)).toEqual([manifest.name]);

    // Features: the chosen model says what it is beside the picker.
    await page.getByRole('link', { name: 'Segment' }).click();
    await page.locator('#features-model').locator('..').getByTestId('model-about').waitFor();
    await page.getByRole('button', { name: 'Extract features for the library' }).click();
    await runLine(page, 1, 21).waitFor({ timeout: 180_000 });
    await s.shot('82-segment-starter');

    // Tracking: a double click starts one job; its progress shows beside the button until it ends.
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"][data-kind="video"]').first().getByRole('link').click();
    const track = page.getByRole('button', { name: 'Discover and track objects' });
    await track.waitFor();
    const trackWhy = await recordTexts(page, '[data-testid="why"], [data-testid="track-status"]');
    const tracksBefore = calls('track.start');
    await track.dblclick();
    await page
      .locator('#track-run option')
      .filter({ hasText: /^Run #1/ })
      .waitFor({ state: 'attached', timeout: 180_000 });
    expect(calls('track.start') - tracksBefore).toBe(1);
    expect((await trackWhy()).join('\n')).toMatch(/Starting the tracking job|Tracking #\d+/);
    await s.shot('83-player-tracked');

    // Counting automatically: one request for a double click, "Counting…" where the number goes meanwhile.
    await page.getByRole('link', { name: 'Count' }).click();
    await page.locator('#count-media').selectOption({ label: 'coins.png (1 frame)' });
    await page.getByTestId('count-stage').waitFor();
    const number = page.getByTestId('count-number');
    const counting = await recordTexts(page, '[data-testid="count-number"]');
    const countsBefore = calls('count.auto');
    await page.getByRole('button', { name: 'Count automatically' }).dblclick();
    await expect.poll(async () => Number(await number.textContent()), { timeout: 120_000 }).toBeGreaterThan(0);
    expect(calls('count.auto') - countsBefore).toBe(1);
    expect((await counting()).join('\n')).toContain('Counting automatically…');
    // An automatic count says how far it can be trusted, with the measured figures behind it.
    await expect
      .poll(() => page.getByTestId('count-auto-caveat').textContent(), { timeout: 60_000 })
      .toContain('worse than guessing their average count');
    await s.shot('84-count-starter');
    expect(s.errors).toEqual([]);
  });

  it('labels library items by content when a labelled folder holds copies of them, and says which files label nothing', async () => {
    const { page } = s;
    await ownProject(s, path.join(work, 'labels'));
    const inbox = path.join(work, 'labels-inbox');
    const labelled = path.join(work, 'labelled');
    fs.mkdirSync(inbox, { recursive: true });
    for (const c of ['bag', 'coat']) {
      fs.mkdirSync(path.join(labelled, c), { recursive: true });
      for (const f of fs.readdirSync(fixturePath('fashion', 'train', c)).slice(0, 4)) {
        fs.copyFileSync(fixturePath('fashion', 'train', c, f), path.join(inbox, `${c}-${f}`));
        fs.copyFileSync(fixturePath('fashion', 'train', c, f), path.join(labelled, c, f));
      }
    }
    // A third class whose images were never added: its files label nothing, and the view says so and why.
    fs.mkdirSync(path.join(labelled, 'shirt'));
    for (const f of fs.readdirSync(fixturePath('fashion', 'train', 'shirt')).slice(0, 2))
      fs.copyFileSync(fixturePath('fashion', 'train', 'shirt', f), path.join(labelled, 'shirt', f));
    await waitJob(s, await s.engine.call('library.add', { paths: [inbox] }));
    // The library shows this project's pictures (28x28, stored square), never those another project showed at the
    // same ids earlier in the page's life (the case of features and tracking shows a 4:3 tour and the coins there).
    await page.getByRole('link', { name: 'Library', exact: true }).click();
    const thumbs = page.locator('[data-testid^="media-"] img');
    await expect
      .poll(() =>
        thumbs.evaluateAll((imgs) =>
          (imgs as unknown as { complete: boolean; naturalWidth: number; naturalHeight: number }[]).map((i) =>
            i.complete && i.naturalWidth ? i.naturalWidth / i.naturalHeight : 0,
          ),
        ),
      )
      .toEqual(new Array(8).fill(1));
    await page.getByRole('link', { name: 'Segment', exact: true }).click();
    await page.getByRole('button', { name: 'Extract features for the library' }).click();
    await runLine(page, 1, 8).waitFor({ timeout: 180_000 });

    await page.getByRole('link', { name: 'Classify', exact: true }).click();
    await page.getByLabel('Labelled folder (sub-folder = class)').fill(labelled);
    await page.getByLabel('Neighbours k').fill('3');
    await page.getByRole('button', { name: 'Classify', exact: true }).click();
    await expect
      .poll(() => page.getByTestId('classify-by-content').textContent(), { timeout: 60_000 })
      .toMatch(/^8 library items labelled by content/);
    await expect(page.getByRole('heading', { name: /^Accuracy/ }).textContent()).resolves.toMatch(
      /8 frames, 2 classes/,
    );
    const unlabelled = page.getByTestId('classify-unlabelled');
    await expect(unlabelled.locator('summary').textContent()).resolves.toMatch(
      /^2 files under the class folders label nothing/,
    );
    await unlabelled.locator('summary').click();
    await expect(unlabelled.getByRole('listitem').allTextContents()).resolves.toEqual([
      expect.stringMatching(/shirt\/train_\d+\.png: not in the library, by its path or as a copy of an item/),
      expect.stringMatching(/shirt\/train_\d+\.png: not in the library, by its path or as a copy of an item/),
    ]);
    await s.shot('85-classify-by-content');
    expect(s.errors).toEqual([]);
  });

  it('imports with the heads field and confirms the import beside the button', async () => {
    const { page } = s;
    // The starter model is #1 there.
    await ownProject(s, path.join(work, 'importing'));
    await page.getByRole('link', { name: 'Models', exact: true }).click();
    await page.getByLabel('Weights file').fill(writeInitViT(path.join(work, 'mine.safetensors')));
    await page.getByLabel('Attention heads (only if the import asks)').fill('3');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const done = page.getByTestId('model-imported');
    await expect.poll(() => done.textContent(), { timeout: 30_000 }).toMatch(/^Imported “mine” as model #2/);
    const b = await page.getByRole('button', { name: 'Import', exact: true }).boundingBox();
    const d = await done.boundingBox();
    expect(b && d && Math.abs(d.y + d.height / 2 - (b.y + b.height / 2))).toBeLessThan(40);
    expect((await s.engine.call('models.list', {})).find((m) => m.id === 2)?.architecture.heads).toBe(3);
    await s.shot('86-model-imported');
  });

  it("shows a new run nothing of the previous run's figures, and compares base and adapted with progress, once", async () => {
    const { page } = s;
    await ownProject(s, path.join(work, 'training'), {
      starter: false,
      media: [fixturePath('synthetic', 'tour.mp4'), fixturePath('count', 'coins.png')],
    });
    await page.getByRole('link', { name: 'Train' }).click();
    await page.getByRole('button', { name: 'Start training' }).waitFor();
    // Only the tour (its 20 frames at 240 px) is trained on.
    for (const box of await page.locator('fieldset').first().getByRole('checkbox').all()) {
      const label = (await box.locator('..').textContent()) ?? '';
      if (label.includes('tour.mp4')) await box.check();
      else await box.uncheck();
    }
    // A first run: plain DINO on the tiny ViT, a few steps.
    await page.getByLabel('Start from').selectOption('scratch:tiny');
    await page.getByLabel('Method').selectOption('dino');
    await page.getByLabel('Batch').fill('2');
    await page.getByLabel('Steps').fill('3');
    await page.getByLabel('Crop size').fill('32');
    await page.getByLabel('Device').selectOption('cpu');
    await page.getByRole('button', { name: 'Start training' }).click();
    const status = page.getByTestId('train-status');
    await status.filter({ hasText: /^Step 3 \/ 3.*loss/ }).waitFor({ timeout: 120_000 });
    const first = (await status.textContent()) ?? '';
    const firstLoss = /loss \d+\.\d{4}/.exec(first)?.[0] as string;
    const firstRate = /[\d.]+ views\/s/.exec(first)?.[0] as string;
    expect(firstLoss).toBeTruthy();

    // The second run: NeCo adapting a tiny registered model. From the click on, whatever the Run picker shows as
    // the new run never carries the first run's loss or throughput.
    const base = await s.engine.call('models.import', {
      path: writeViT(path.join(work, 'tiny-base.safetensors'), TINY_VIT, 11),
      name: 'tiny base',
    });
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.getByRole('link', { name: 'Train' }).click();
    await fillNecoRun(page, { baseId: base.id, steps: 2 });
    const seen = await recordTexts(page, 'select[aria-label="Run"] option:checked, [data-testid="train-status"]');
    await page.getByRole('button', { name: 'Start training' }).click();
    await status.filter({ hasText: /^Step 2 \/ 2.*queue \d+% filled/ }).waitFor({ timeout: 120_000 });
    const shownForNeco = (await seen()).filter((t) => /with NeCo/.test(t));
    expect(shownForNeco.length).toBeGreaterThan(0);
    for (const t of shownForNeco) {
      expect(t).not.toContain(firstLoss);
      expect(t).not.toContain(firstRate);
    }
    await expect(page.getByTestId('entropy-note').count()).resolves.toBe(0);
    const lossNote = page.getByTestId('loss-note');
    if ((await lossNote.count()) > 0) await expect(lossNote.textContent()).resolves.not.toMatch(/teacher entropy/);
    await expect
      .poll(() => page.getByLabel('Run', { exact: true }).locator('option:checked').textContent(), { timeout: 30_000 })
      .toMatch(/with NeCo, 2 steps — done/);
    await expect
      .poll(async () => (await s.engine.call('models.list', {})).map((m) => m.origin ?? '').join())
      .toMatch(/NeCo adaptation of model #\d+ "tiny base"/);

    // Compare: a double click compares once, with progress beside the button meanwhile.
    const compareText = await recordTexts(page, '[data-testid="why"], [data-testid="compare-progress"]');
    const compare = page.getByRole('button', { name: 'Compare base and adapted (in-context segmentation)' });
    const comparesBefore = calls('segment.compareModels');
    await compare.dblclick();
    await page.getByTestId('neco-comparison').waitFor({ timeout: 120_000 });
    expect(calls('segment.compareModels') - comparesBefore).toBe(1);
    expect((await compareText()).join('\n')).toContain('Comparing: features of both models');
    await expect(compare.isEnabled()).resolves.toBe(true);
    await s.shot('87-train-neco-compare');
    expect(s.errors).toEqual([]);
  });

  it('reads right when a job had nothing to do, when an import ends, and names a segmented frame by its number', async () => {
    const { page } = s;
    await ownProject(s, path.join(work, 'odds'), { media: [fixturePath('synthetic', 'tour.mp4')] });
    await extractAll(s);
    // A hash job over an empty folder: finished, with a full bar and no "done: 0 files".
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty, { recursive: true });
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.getByLabel('Folder', { exact: true }).fill(empty);
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    const hashJob = page.locator('[data-testid^="job-"][data-state="done"]').filter({ hasText: 'Hash' }).first();
    await hashJob.waitFor({ timeout: 60_000 });
    const bar = hashJob.getByTestId('job-progress');
    await expect(bar.evaluate((p: { value: number; max: number }) => p.value === p.max)).resolves.toBe(true);
    await expect(hashJob.textContent()).resolves.not.toMatch(/done: 0 /);
    await s.shot('88-jobs-nothing-to-do');

    // An import's outcome appears only once its card no longer says ingesting.
    const shirt = path.join(work, 'shirt.png');
    fs.copyFileSync(fixturePath('fashion', 'train', 'ankle_boot', 'train_00000.png'), shirt);
    await page.getByRole('link', { name: 'Library' }).click();
    const both = await recordTexts(page, '[data-testid="import-outcome"], [data-testid^="media-"]');
    await page.getByLabel('Folder or file').fill(shirt);
    await page.getByRole('button', { name: 'Add to library' }).click();
    await page
      .getByTestId('import-outcome')
      .filter({ hasText: /1 file added/ })
      .waitFor({ timeout: 60_000 });
    for (const t of await both()) if (/1 file added/.test(t)) expect(t).not.toContain('ingesting');

    // Segment frame 5 of the tour with a bank of clusters: the class-id PNG is named frame5, not frame 4.
    const tour = (await s.engine.call('library.list', { status: 'done' })).items.find((m) => m.name === 'tour.mp4');
    if (!tour) throw new Error('no tour');
    const run = (await s.engine.call('features.runs', {}))[0];
    if (!run) throw new Error('no feature run');
    await s.engine.call('segment.clusterBank', {
      runId: run.id,
      name: 'clusters of tour.mp4',
      clusters: 3,
      frames: [0, 10].map((frameIdx) => ({ mediaId: tour.id, frameIdx })),
    });
    await page.getByRole('link', { name: 'Segment' }).click();
    await page.locator('#apply-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#apply-frame').fill('5');
    await page.getByRole('button', { name: 'Segment', exact: true }).click();
    const label = page.getByText(/^Class-id PNG: /);
    await label.waitFor({ timeout: 60_000 });
    await expect(label.textContent()).resolves.toMatch(new RegExp(`item${tour.id}-frame5\\.labels\\.png$`));
    expect(s.errors).toEqual([]);
  });

  it('every disabled button in every view of a project in use says why, beside it', async () => {
    // In use: items, features, a track run, a bank of clusters.
    await ownProject(s, path.join(work, 'in-use'), {
      media: [fixturePath('synthetic', 'tour.mp4'), fixturePath('count', 'coins.png')],
    });
    await extractAll(s);
    const tour = (await s.engine.call('library.list', {})).items.find((m) => m.name === 'tour.mp4');
    if (!tour) throw new Error('no tour');
    await waitJob(s, await s.engine.call('track.start', { modelId: 1, mediaId: tour.id, objects: 2 }));
    await s.engine.call('segment.clusterBank', {
      runId: 1,
      name: 'clusters of tour.mp4',
      clusters: 3,
      frames: [{ mediaId: tour.id, frameIdx: 0 }],
    });
    // The Project view counts the jobs run since the project opened.
    await s.page.getByRole('link', { name: 'Project', exact: true }).click();
    await expect.poll(() => s.page.getByTestId('project-jobs').textContent()).toBe('3 (0 running)');
    await walkViews(s, '89-in-use');
    expect(s.errors).toEqual([]);
  });
});
