/**
 * The model registry and model sessions of the open project: import (validate, hash, copy into the project),
 * list, remove, and CLS embeddings of images through a cached ONNX Runtime session per (model, input size).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CatalogEntry, CatalogEntryInfo, ModelInfo, RuntimeInfo } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { DefaultModel } from '../api/models-default.js';
import { APP_ROOT, APP_VERSION } from '../base/version.js';
import { hashFile } from '../ingest/hash-folder.js';
import { decodeImage } from '../media/image.js';
import { type CatalogMatch, entryParams, fitsEntry, loadCatalog, matchCatalog } from '../models/catalog.js';
import { canonicalSafetensors, type ImportedViT, importViTFile } from '../models/import-vit.js';
import { preprocessBatch } from '../models/preprocess.js';
import type { CheckpointSelection } from '../models/pytorch.js';
import { assertModelFile } from '../models/safetensors.js';
import { type ViTConfig, vitParamCount } from '../models/vit.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { autoSkipReason, PROVIDER_PREFERENCE, type ProviderName, probeProviders } from '../runtime/providers.js';
import {
  DEFAULT_RUNTIME,
  ModelSession,
  onSessionCreated,
  ort,
  type RuntimeSettings,
  type SessionInfo,
} from '../runtime/session.js';
import type { AppHome } from '../store/app-home.js';
import type { ModelRow } from '../store/models-repo.js';
import type { Project } from '../store/project.js';
import { readProjectSettings, updateProjectSettings } from '../store/project-settings.js';
import { aboutModel } from './model-about.js';

interface Manifest {
  architecture: Omit<ViTConfig, 'mean' | 'std' | 'posInterpolation' | 'family'> & { family: ViTConfig['family'] };
  posInterpolation: ViTConfig['posInterpolation'];
  scheme: string;
  sourceDtype: string;
  source: string;
  licence: string | null;
  mean: number[];
  std: number[];
  ignoredTensors: string[];
  importedBy: string;
  /** PyTorch checkpoints: the state dict taken, the prefix removed and the heads dropped. */
  checkpoint?: CheckpointSelection;
  /** The catalog entry the file was recognised as, and how. */
  catalog?: { id: string; by: CatalogMatch['by'] };
  /** Trained in the project: how (e.g. the NeCo adaptation's base model, frames and steps). */
  trainedFrom?: string;
  /** How a model trained by the project was made (a run brought back from torchrun: config, steps, machines). */
  provenance?: Record<string, unknown>;
}

/** One sentence on what was taken from a PyTorch checkpoint. */
export function describeCheckpoint(c: CheckpointSelection): string {
  const parts = [`${c.path ? `'${c.path}'` : 'the state dict'} of a PyTorch checkpoint (${c.format} format)`];
  if (c.skipped.length > 0) parts.push(`not ${c.skipped.map((s) => `'${s}'`).join(', ')}`);
  if (c.strippedPrefix) parts.push(`prefix '${c.strippedPrefix}' removed`);
  if (c.droppedHeads > 0) parts.push(`${c.droppedHeads} head tensors dropped`);
  return `${parts.join('; ')}.`;
}

export function modelInfo(row: ModelRow): ModelInfo {
  const m = row.manifest as unknown as Manifest;
  const config = {
    ...m.architecture,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    posInterpolation: m.posInterpolation,
  } as unknown as ViTConfig;
  const params = vitParamCount(config);
  const { family, patchSize, dim, depth, heads, mlpHidden, registers, layerScale, posGrid, lnEps } = m.architecture;
  return {
    id: row.id,
    name: row.name,
    sha256: row.sha256,
    bytes: row.bytes,
    params,
    architecture: {
      family,
      patchSize,
      dim,
      depth,
      heads,
      mlpHidden,
      registers,
      layerScale,
      posGrid,
      lnEps,
      mlp: m.architecture.mlp ?? 'gelu',
    },
    scheme: m.scheme,
    sourceDtype: m.sourceDtype,
    source: m.source,
    licence: m.licence,
    origin: m.checkpoint ? describeCheckpoint(m.checkpoint) : (m.trainedFrom ?? null),
    catalogId: m.catalog?.id ?? null,
    mean: m.mean,
    std: m.std,
    createdAt: row.createdAt,
    ...(m.provenance ? { provenance: m.provenance } : {}),
    about: aboutModel({
      source: m.source,
      bytes: row.bytes,
      catalog: m.catalog,
      catalogTitle: m.catalog ? catalogTitle(m.catalog.id) : undefined,
      trainedFrom: m.trainedFrom,
      licence: m.licence,
      provenance: m.provenance,
      checkpoint: Boolean(m.checkpoint),
    }),
  };
}

/** A catalog entry's title (the catalog file may be overridden or unreadable: then none). */
function catalogTitle(id: string): string | undefined {
  try {
    return modelCatalog().find((e) => e.id === id)?.title;
  } catch {
    return undefined;
  }
}

/** Weight files a Hugging Face snapshot folder may hold, in the order they are preferred. */
const SNAPSHOT_FILES = ['model.safetensors', 'pytorch_model.bin'];

/** The weights file of a folder: a Hugging Face snapshot (config.json beside model.safetensors) or one checkpoint. */
export function weightsInFolder(dir: string): string {
  for (const f of SNAPSHOT_FILES) if (fs.existsSync(path.join(dir, f))) return path.join(dir, f);
  const candidates = fs.readdirSync(dir).filter((f) => /\.(safetensors|pth|pt|bin|ckpt)$/i.test(f));
  if (candidates.length === 1) return path.join(dir, candidates[0] as string);
  throw new FlaneurError(
    'NOT_FOUND',
    candidates.length === 0
      ? `${dir} holds no weights: expected model.safetensors or pytorch_model.bin (a Hugging Face snapshot with its config.json), or one .safetensors / .pth file.`
      : `${dir} holds several weight files (${candidates.join(', ')}); choose one of them.`,
    { field: 'path' },
  );
}

/** The catalog shipped with the app (FLANEUR_CATALOG overrides the file, for tests against a local server). */
export function modelCatalog(): CatalogEntry[] {
  return loadCatalog(process.env.FLANEUR_CATALOG ?? path.join(APP_ROOT, 'models', 'catalog.json'));
}

/** What registering a model takes: the weights (file or snapshot folder) and what to call and credit it. */
export interface RegisterArgs {
  path: string;
  name?: string;
  licence?: string;
  heads?: number;
  origin?: string;
  provenance?: Record<string, unknown>;
}

/**
 * Validates, hashes and stores a weights file (or a Hugging Face snapshot folder) in the project's registry. A file
 * the catalog knows (by SHA-256, published prefix or name) is named, licensed and shaped from its entry.
 */
export async function registerModel(
  project: Project,
  args: RegisterArgs,
  catalog: readonly CatalogEntry[],
  signal?: AbortSignal,
): Promise<ModelInfo> {
  let file = path.resolve(args.path);
  if (!fs.existsSync(file)) throw new FlaneurError('NOT_FOUND', `No such file: ${file}`, { field: 'path' });
  if (fs.statSync(file).isDirectory()) file = weightsInFolder(file);
  // A named pipe or a device is refused before it is hashed (hashing /dev/zero would never end).
  const bytes = assertModelFile(file, path.basename(file));
  const sha256 = await hashFile(file, 'sha256', signal);
  const existing = project.models.bySha(sha256);
  if (existing) return modelInfo(existing);
  const match = matchCatalog(catalog, file, sha256);
  const heads = args.heads ?? match?.entry.heads;
  const imported = importViTFile(file, heads ? { heads } : {});
  const entry = match && fitsEntry(match.entry, imported.config) ? match.entry : null;
  const rel = path.join('models', `${sha256}.safetensors`);
  if (imported.checkpoint) {
    // A PyTorch checkpoint is stored as the backbone's weights in canonical names, read like any .safetensors.
    await fs.promises.writeFile(path.join(project.dir, rel), canonicalSafetensors(imported));
  } else {
    await fs.promises.copyFile(file, path.join(project.dir, rel));
  }
  const { mean, std, posInterpolation, ...architecture } = imported.config;
  const manifest: Manifest = {
    architecture,
    posInterpolation,
    scheme: imported.scheme,
    sourceDtype: imported.sourceDtype,
    source: file,
    licence: args.licence ?? entry?.licence ?? null,
    mean: [...(entry?.mean ?? mean)],
    std: [...(entry?.std ?? std)],
    ignoredTensors: imported.ignored,
    importedBy: `flaneur ${APP_VERSION}`,
    ...(imported.checkpoint ? { checkpoint: imported.checkpoint } : {}),
    ...(args.origin ? { trainedFrom: args.origin } : {}),
    ...(entry && match ? { catalog: { id: entry.id, by: match.by } } : {}),
    ...(args.provenance ? { provenance: args.provenance } : {}),
  };
  let row: ModelRow;
  try {
    row = project.models.insert({
      name: args.name ?? entry?.title ?? path.basename(file).replace(/\.(safetensors|pth|pt|bin|ckpt)$/i, ''),
      sha256,
      file: rel,
      bytes,
      manifest: manifest as unknown as Record<string, unknown>,
    });
  } catch (err) {
    // Registered meanwhile (a training job's export registered by the process that ran it, or a second import of
    // the same file): the same weights, the model that is there.
    const meanwhile = project.models.bySha(sha256);
    if (!meanwhile) throw err;
    return modelInfo(meanwhile);
  }
  return modelInfo(row);
}

export class ModelService {
  private sessions = new Map<string, ModelSession>();
  private lastSession: SessionInfo | null = null;
  private readonly stopListening: () => void;

  constructor(
    private readonly home: AppHome,
    private readonly onRuntimeChange: (info: RuntimeInfo) => void,
  ) {
    // Every session of the process counts (jobs make their own), not only this service's embeddings.
    this.stopListening = onSessionCreated((info) => {
      const same = this.lastSession && JSON.stringify(this.lastSession) === JSON.stringify(info);
      this.lastSession = info;
      if (!same) void this.runtimeInfo().then(this.onRuntimeChange, () => {});
    });
  }

  /** Stops following the process's sessions (the engine is closing). */
  dispose(): void {
    this.stopListening();
  }

  runtimeSettings(): RuntimeSettings {
    const s = this.home.settings().runtime as Partial<RuntimeSettings> | undefined;
    const provider =
      s?.provider && (s.provider === 'auto' || PROVIDER_PREFERENCE.includes(s.provider)) ? s.provider : 'auto';
    const threads = typeof s?.threads === 'number' && s.threads > 0 ? s.threads : null;
    return { ...DEFAULT_RUNTIME, provider, threads };
  }

  async runtimeInfo(): Promise<RuntimeInfo> {
    const providers = await probeProviders();
    return {
      ortVersion: ort.env.versions.common ?? 'unknown',
      cpus: (await import('node:os')).availableParallelism(),
      preference: [...PROVIDER_PREFERENCE],
      providers: providers.map((p) => ({ ...p, autoSkip: autoSkipReason(p) })),
      settings: this.runtimeSettings(),
      active: this.lastSession,
    };
  }

  async configure(patch: { provider?: ProviderName | 'auto'; threads?: number | null }): Promise<RuntimeInfo> {
    const next = { ...this.runtimeSettings(), ...patch };
    this.home.updateSettings({ runtime: next });
    await this.dropSessions(); // the next run builds sessions with the new settings
    const info = await this.runtimeInfo();
    this.onRuntimeChange(info);
    return info;
  }

  async import(project: Project, args: RegisterArgs): Promise<ModelInfo> {
    return registerModel(project, args, modelCatalog());
  }

  list(project: Project): ModelInfo[] {
    return project.models.list().map(modelInfo);
  }

  /** The catalog with each entry's size estimate and the project's model made from it, if any. */
  catalog(project: Project): CatalogEntryInfo[] {
    const models = this.list(project);
    return modelCatalog().map((e) => {
      const params = entryParams(e);
      return {
        ...e,
        params,
        estimatedBytes: params * 4,
        modelId: models.find((m) => m.catalogId === e.id)?.id ?? null,
      };
    });
  }

  async remove(project: Project, id: number): Promise<ModelInfo[]> {
    const row = this.require(project, id);
    for (const [key, s] of this.sessions) {
      if (key.startsWith(`${project.meta.id}:${id}:`)) {
        await s.release();
        this.sessions.delete(key);
      }
    }
    project.models.remove(id);
    if (!project.models.bySha(row.sha256)) fs.rmSync(path.join(project.dir, row.file), { force: true });
    return this.list(project);
  }

  /** The model commands use when none is named: the one set for the project, else the newest registered. */
  defaultModel(project: Project): DefaultModel {
    const set = readProjectSettings(project.dir).defaultModelId;
    const chosen = set !== undefined ? project.models.get(set) : undefined;
    if (chosen) return { id: chosen.id, name: chosen.name, chosen: 'set' };
    const newest = project.models.list().at(-1);
    return newest ? { id: newest.id, name: newest.name, chosen: 'newest' } : null;
  }

  /** Sets (or with null forgets) the project's default model. */
  setDefaultModel(project: Project, id: number | null): DefaultModel {
    if (id !== null) this.require(project, id);
    updateProjectSettings(project.dir, { defaultModelId: id });
    return this.defaultModel(project);
  }

  require(project: Project, id: number): ModelRow {
    const row = project.models.get(id);
    if (!row) throw new FlaneurError('NOT_FOUND', `No model ${id} in this project.`, { field: 'id' });
    return row;
  }

  /** The imported weights of a registered model, as the registry recorded them. */
  load(project: Project, row: ModelRow): ImportedViT {
    const m = row.manifest as unknown as Manifest;
    return importViTFile(path.join(project.dir, row.file), {
      heads: m.architecture.heads,
      lnEps: m.architecture.lnEps,
      posInterpolation: m.posInterpolation,
    });
  }

  private async session(project: Project, row: ModelRow, size: number): Promise<ModelSession> {
    const key = `${project.meta.id}:${row.id}:${size}:cls`;
    const hit = this.sessions.get(key);
    if (hit) return hit;
    const model = this.load(project, row);
    const onnx = buildViTOnnx(model, { height: size, width: size, outputs: { cls: true }, fused: true });
    const session = await ModelSession.create(onnx, this.runtimeSettings());
    this.sessions.set(key, session);
    return session;
  }

  async embed(project: Project, id: number, paths: readonly string[], size = 224) {
    const row = this.require(project, id);
    const info = modelInfo(row);
    if (size % info.architecture.patchSize !== 0) {
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `size ${size} is not a multiple of the patch size ${info.architecture.patchSize}`,
        { field: 'size' },
      );
    }
    const session = await this.session(project, row, size);
    const vectors: number[][] = [];
    const BATCH = 16;
    for (let i = 0; i < paths.length; i += BATCH) {
      const images = await Promise.all(paths.slice(i, i + BATCH).map((p) => decodeImage(path.resolve(p))));
      const data = preprocessBatch(images, {
        size,
        mean: info.mean as [number, number, number],
        std: info.std as [number, number, number],
      });
      const out = await session.run({ pixels: new ort.Tensor('float32', data, [images.length, 3, size, size]) }, [
        'cls',
      ]);
      const cls = out.cls?.data as Float32Array;
      const d = info.architecture.dim;
      for (let j = 0; j < images.length; j++) vectors.push(Array.from(cls.subarray(j * d, (j + 1) * d)));
    }
    return { modelId: id, provider: session.info.provider, size, dim: info.architecture.dim, vectors };
  }

  async dropSessions(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}
