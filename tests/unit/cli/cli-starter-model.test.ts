/**
 * A project made from the command line sees at once, as one made in the app does (issue 26): `flaneur project create`
 * adds the starter model that ships with Flaneur, so features, tracking and counting work with no model imported by
 * hand. Each step is the exact command line a user types (the project comes from FLANEUR_PROJECT).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_DIR } from '../../../native/engine/engine.js';
import { runCli } from '../../helpers/cli.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { tmpDir } from '../../helpers/tmp.js';

const flaneur = async (line: string) => {
  const r = await runCli(line.replace(/^flaneur /, '').split(/\s+/));
  if (r.code !== 0) throw new Error(`${line} exited ${r.code}: ${r.stderr}`);
  return r;
};

// The starter model (a ViT-Ti) over 21 frames, then tracking and counting, on 2 shared cores: minutes under load.
describe('a project made from the CLI, with the starter model', { timeout: 300_000 }, () => {
  const home = tmpDir();
  const work = tmpDir();
  const manifest = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'manifest.json'), 'utf8')) as {
    name: string;
  };

  beforeEach(() => {
    process.env.FLANEUR_HOME = home;
  });
  afterAll(() => {
    delete process.env.FLANEUR_HOME;
    delete process.env.FLANEUR_PROJECT;
  });

  it('extracts features, tracks and counts with no model imported by hand: flaneur project create DIR', async () => {
    const project = path.join(work, 'street');
    process.env.FLANEUR_PROJECT = project;
    const data = path.join(work, 'data');
    fs.mkdirSync(data);
    fs.copyFileSync(fixturePath('synthetic', 'tour.mp4'), path.join(data, 'tour.mp4'));
    fs.copyFileSync(fixturePath('count', 'coins.png'), path.join(data, 'coins.png'));

    const created = await flaneur(`flaneur project create ${project}`);
    expect(created.stdout).toContain(`with the starter model #1 ${manifest.name}: `);
    const models = (await flaneur('flaneur model list --json')).json<{ id: number; name: string }[]>();
    expect(models.map((m) => [m.id, m.name])).toEqual([[1, manifest.name]]);

    await flaneur(`flaneur add ${data} --fps 1 --size 240`);
    const features = await flaneur('flaneur features --all');
    expect(features.stderr).toContain(`model #1 ${manifest.name} (the project's default`);
    const tracked = (await flaneur('flaneur track tour.mp4 --objects 2 --json')).json<{
      objects: number;
      frames: number;
    }>();
    expect(tracked.frames).toBe(20);
    expect(tracked.objects).toBeGreaterThan(0);
    const counted = (await flaneur('flaneur count coins.png --auto --json')).json<{ count: number }>();
    expect(counted.count).toBeGreaterThan(0);
  });

  it('starts with no model when asked: flaneur project create DIR --no-starter-model', async () => {
    const project = path.join(work, 'bare');
    process.env.FLANEUR_PROJECT = project;
    const created = await flaneur(`flaneur project create ${project} --no-starter-model --json`);
    expect(created.json()).toMatchObject({ isDemo: false, starterModel: null });
    expect((await flaneur('flaneur model list --json')).json()).toEqual([]);
    const r = await runCli(['features', '--all']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the project has no model yet: add the starter model with `flaneur model starter`/);
  });

  it('adds the starter model to a project without one, once: flaneur model starter', async () => {
    const project = path.join(work, 'later');
    process.env.FLANEUR_PROJECT = project;
    await flaneur(`flaneur project create ${project} --no-starter-model`);
    const added = await flaneur('flaneur model starter');
    expect(added.stdout.split(': ')[0]).toBe(`#1 ${manifest.name}`);
    expect(added.stdout).toContain(': It learned little');
    const again = await flaneur('flaneur model starter');
    expect(again.stdout).toMatch(/^already in the project: #1 /);
    expect((await flaneur('flaneur model list --json')).json<unknown[]>()).toHaveLength(1);
  });
});
