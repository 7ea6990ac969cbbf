/**
 * What a registered model is and how good it is known to be (`ModelInfo.about`), from its manifest, the catalog and
 * the bundled model's own manifest (models/default/manifest.json), so every place a model is chosen can say it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ModelAbout } from '../api/model-about.js';
import { APP_ROOT } from '../base/version.js';

/** The bundled starter encoder's folder (its weights and the manifest that says how it was made). */
export const BUNDLED_MODEL_DIR = path.join(APP_ROOT, 'models', 'default');

/** The parts of models/default/manifest.json the about text uses. */
export interface BundledManifest {
  name: string;
  file: string;
  bytes: number;
  licence?: string;
  data?: { frames?: number; video?: string };
  training?: { steps?: number; batch?: number; globalSize?: number; init?: { kind?: string } };
  wall_time_s?: number;
  machine?: { cores?: number; provider?: string };
  loss?: { first10?: number; last10?: number };
  evaluation?: { miou?: number; miou_vit_s16_init?: number };
}

let bundled: BundledManifest | null | undefined;

/** The bundled model's manifest, or null when the app ships none (read once). */
export function bundledManifest(): BundledManifest | null {
  if (bundled === undefined) {
    try {
      bundled = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODEL_DIR, 'manifest.json'), 'utf8')) as BundledManifest;
    } catch {
      bundled = null;
    }
  }
  return bundled;
}

/** The subset of a registered model's manifest that says where it came from. */
export interface AboutInput {
  source: string;
  bytes: number;
  catalog?: { id: string; by: string } | undefined;
  catalogTitle?: string | undefined;
  trainedFrom?: string | undefined;
  /** 'trained in this project' marks an encoder the project's own training registered (engine.ts). */
  licence?: string | null | undefined;
  provenance?: Record<string, unknown> | undefined;
  checkpoint?: boolean;
}

/** The licence line engine.ts gives an encoder registered by a training job of the project. */
export const TRAINED_HERE = 'trained in this project';

const fixed = (x: number | undefined, d = 2) => (x === undefined ? '?' : x.toFixed(d));

function aboutBundled(b: BundledManifest): ModelAbout {
  const t = b.training ?? {};
  const e = b.evaluation ?? {};
  const budget = [
    `${t.steps ?? '?'} steps of ${t.batch ?? '?'} frames at ${t.globalSize ?? '?'} px`,
    `${b.data?.frames ?? '?'} frames of one 80-second street clip`,
    `${Math.round(b.wall_time_s ?? 0)} s on a ${b.machine?.cores ?? '?'}-core ${(b.machine?.provider ?? 'cpu').toUpperCase()}`,
  ].join(', ');
  const better = e.miou !== undefined && e.miou_vit_s16_init !== undefined && e.miou > e.miou_vit_s16_init;
  return {
    kind: 'bundled',
    provenance: `The starter model that ships with Flaneur: a ViT-Ti/16 trained ${t.init?.kind === 'scratch' ? 'from scratch ' : ''}by the app's own Dora pipeline.`,
    budget,
    verified: better,
    verdict:
      `It learned little: its loss went from ${fixed(b.loss?.first10)} to ${fixed(b.loss?.last10)}, and its segmentation ` +
      `mIoU on the synthetic tour is ${fixed(e.miou)} against ${fixed(e.miou_vit_s16_init)} for an untrained ViT-S/16. ` +
      'It makes every feature work, but discovered objects and automatic counts tend to follow grass and road.',
    suggestPublished: true,
  };
}

/** Steps, objective and time of a model trained in (or brought back to) the project, when its provenance says. */
function trainedBudget(p: Record<string, unknown> | undefined): string | null {
  if (!p) return null;
  const parts: string[] = [];
  if (typeof p.objective === 'string') parts.push(p.objective);
  if (typeof p.steps === 'number') parts.push(`${p.steps} steps`);
  if (typeof p.wallTimeS === 'number') parts.push(`${Math.round(p.wallTimeS)} s`);
  if (typeof p.device === 'string') parts.push(`on ${p.device}`);
  return parts.length ? parts.join(', ') : null;
}

export function aboutModel(m: AboutInput): ModelAbout {
  const b = bundledManifest();
  if (b && path.basename(m.source) === b.file && m.bytes === b.bytes) return aboutBundled(b);
  if (m.catalog) {
    const bySha = m.catalog.by === 'sha256';
    return {
      kind: 'published',
      provenance: `${m.catalogTitle ?? m.catalog.id}, a published checkpoint (the Models view's Get models list says what it is good for).`,
      budget: null,
      verified: bySha,
      verdict: bySha
        ? "The file matches the publisher's checksum."
        : `Recognised by its ${m.catalog.by}; the publisher gives no full checksum, so the file was checked by its tensors' names and shapes only.`,
      suggestPublished: false,
    };
  }
  if (m.trainedFrom || m.provenance || m.licence === TRAINED_HERE) {
    return {
      kind: 'trained',
      provenance: m.trainedFrom ?? 'Trained in this project (Train view).',
      budget: trainedBudget(m.provenance),
      verified: false,
      verdict:
        'Not evaluated: compare it with its base model (Compare base and adapted, in the Train view) before relying on it.',
      suggestPublished: false,
    };
  }
  return {
    kind: 'imported',
    provenance: `Imported from ${path.basename(m.source)}${m.checkpoint ? ' (a PyTorch checkpoint)' : ''}; not a checkpoint the catalog knows.`,
    budget: null,
    verified: false,
    verdict: 'Its architecture was checked on import; how well it was trained is not known to the app.',
    suggestPublished: false,
  };
}
