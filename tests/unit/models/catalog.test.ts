/**
 * The shipped catalog (models/catalog.json): it validates, names every entry the issue asks for, never carries a
 * made-up checksum, and its architectures have the published parameter counts. Recognition of files by SHA-256,
 * published prefix and name.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { entryParams, loadCatalog, matchCatalog } from '../../../native/models/catalog.js';
import { ROOT } from '../../helpers/engine-process.js';

const catalog = loadCatalog(path.join(ROOT, 'models', 'catalog.json'));
const byId = (id: string) => {
  const e = catalog.find((x) => x.id === id);
  if (!e) throw new Error(`no ${id}`);
  return e;
};

describe('the model catalog', () => {
  it('lists DINO S/16, S/8, B/16, DINOv2 S/14 and B/14 with and without registers, DINOv3 S/16 and B/16, DoRA, NeCo', () => {
    expect(catalog.map((e) => e.id)).toEqual([
      'dino-vits16',
      'dino-vits8',
      'dino-vitb16',
      'dinov2-vits14',
      'dinov2-vits14-reg',
      'dinov2-vitb14',
      'dinov2-vitb14-reg',
      'dinov3-vits16',
      'dinov3-vitb16',
      'dora-vits16-venice',
      'neco-dinov2r-vits14',
    ]);
  });

  it('gives a checksum only where the publisher does: DINOv3 hash prefixes from its file names', () => {
    for (const e of catalog) {
      expect(e.sha256, e.id).toBeNull();
      if (e.sha256Prefix) expect(e.fileName, e.id).toContain(`-${e.sha256Prefix}.pth`);
      expect(e.checksumNote.length, e.id).toBeGreaterThan(20);
    }
    expect(catalog.filter((e) => e.sha256Prefix).map((e) => e.id)).toEqual(['dinov3-vits16', 'dinov3-vitb16']);
  });

  it('downloads only over https, and says how to get the entries it cannot download', () => {
    for (const e of catalog) {
      if (e.url) expect(e.url, e.id).toMatch(/^https:\/\//);
      else expect(e.access, e.id).toBeTruthy();
    }
  });

  it('implies the published parameter counts (ViT-S ~22M, ViT-B ~86M)', () => {
    const m = (id: string) => entryParams(byId(id)) / 1e6;
    expect(m('dino-vits16')).toBeCloseTo(21.7, 1);
    expect(m('dino-vitb16')).toBeCloseTo(85.8, 1);
    expect(m('dinov2-vits14')).toBeCloseTo(22.1, 1);
    expect(m('dinov2-vitb14')).toBeCloseTo(86.6, 1);
    expect(m('dinov3-vits16')).toBeCloseTo(21.6, 1);
  });

  it('recognises a file by its published SHA-256 prefix, and refuses a file with a published name but another hash', () => {
    const prefix = byId('dinov3-vits16').sha256Prefix as string;
    const sha = `${prefix}${'a'.repeat(56)}`;
    expect(matchCatalog(catalog, '/x/renamed.pth', sha)).toMatchObject({
      entry: { id: 'dinov3-vits16' },
      by: 'sha256 prefix',
    });
    expect(() => matchCatalog(catalog, '/dl/dinov3_vits16_pretrain_lvd1689m-08c60483.pth', 'f'.repeat(64))).toThrow(
      /has the name of DINOv3 ViT-S\/16 .* is not the published one \(08c60483…\)/,
    );
    expect(matchCatalog(catalog, '/dl/dino_deitsmall16_pretrain.pth', 'f'.repeat(64))).toMatchObject({
      entry: { id: 'dino-vits16' },
      by: 'file name',
    });
    expect(matchCatalog(catalog, '/dl/mine.pth', 'f'.repeat(64))).toBeNull();
  });
});
