/**
 * The project's text models (issue 29): language models registered where the user keeps them (by their
 * feature-cache key, never copied), ShareLock heads copied into models/text/ (by SHA-256), text features through
 * the project's cache, and the pairing of a head with a language model and a vision model.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CommandArgs, CommandResult, TextModelInfo } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { hashFile } from '../ingest/hash-folder.js';
import { assertModelFile, readSafetensors } from '../models/safetensors.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';
import type { TextModelRow } from '../store/text-models-repo.js';
import { cachedTextFeatures, checkLlmFile, textModelKey } from '../text/feature-cache.js';
import { metaString, readGguf } from '../text/gguf.js';
import {
  checkHeadPairing,
  type HeadProvenance,
  headMetadata,
  type PairLlm,
  readShareLockHead,
} from '../text/head-file.js';
import { readShareLockCheckpoint } from '../text/lightning-ckpt.js';
import { LlamaEncoder, type LlamaModelInfo, openLlama } from '../text/llama.js';
import { encodeShareLockWeights, type ShareLockConfig } from '../text/sharelock.js';
import { pendingRegistration } from '../train/checkpoint.js';
import { modelInfo } from './models.js';

/** What a language model's manifest records (beside its row). */
interface LlmManifest {
  kind: 'llm';
  format: LlamaModelInfo['format'];
  arch: LlamaModelInfo['config']['arch'];
  dim: number;
  layers: number;
  params: number;
  memoryBytes: number;
  summary: string;
  /** GGUF's general.name, when it has one. */
  generalName: string | null;
}

/** What a head's manifest records. */
interface HeadManifest extends HeadProvenance {
  kind: 'sharelock-head';
  config: ShareLockConfig;
}

function headSummary(name: string, m: HeadManifest): string {
  const c = m.config;
  const v = m.vision;
  return `${name}: a ShareLock head (${c.layers} layer${c.layers === 1 ? '' : 's'} of width ${c.hidden}, ${c.textDim}-d text to ${c.visionDim}-d images) for ${m.textModel.name ?? 'its language model'} and ${v.name ?? `a ${v.architecture.family ?? 'vision'} encoder`}.`;
}

export function textModelInfo(row: TextModelRow): TextModelInfo {
  const base = {
    id: row.id,
    kind: row.kind,
    name: row.name,
    file: row.file,
    bytes: row.bytes,
    key: row.key,
    createdAt: row.createdAt,
  };
  if (row.kind === 'llm') {
    const m = row.manifest as unknown as LlmManifest;
    return {
      ...base,
      summary: m.summary,
      llm: {
        format: m.format,
        arch: m.arch,
        dim: m.dim,
        layers: m.layers,
        params: m.params,
        memoryBytes: m.memoryBytes,
        fits: m.memoryBytes <= 0.8 * os.totalmem(),
      },
      head: null,
      origin: null,
    };
  }
  const m = row.manifest as unknown as HeadManifest;
  const { textDim, visionDim, hidden, layers, dropout } = m.config;
  return {
    ...base,
    summary: headSummary(row.name, m),
    llm: null,
    head: { textModel: m.textModel, vision: m.vision, config: { textDim, visionDim, hidden, layers, dropout } },
    origin: m.origin,
  };
}

export function requireTextModel(project: Project, id: number, kind: TextModelRow['kind'], field = 'model') {
  const row = project.textModels.get(id);
  const what = kind === 'llm' ? 'language model' : 'ShareLock head';
  if (!row || row.kind !== kind)
    throw new FlaneurError('NOT_FOUND', `No ${what} ${id} in this project (\`flaneur text models\` lists them).`, {
      field,
    });
  return row;
}

/** An LLM's file and names as the pairing check takes them. */
export function pairLlm(row: TextModelRow): PairLlm {
  const m = row.manifest as unknown as LlmManifest;
  return { key: row.key, names: [row.name, row.file, ...(m.generalName ? [m.generalName] : [])], dim: m.dim };
}

/**
 * Refuses a head with a language model or vision model other than those it was trained with. `visionModelId`: a
 * registered (image) model, as a feature run names it.
 */
export function checkPairing(project: Project, headId: number, llmId: number | null, visionModelId: number | null) {
  const head = requireTextModel(project, headId, 'sharelock-head', 'head');
  const llm = llmId === null ? null : pairLlm(requireTextModel(project, llmId, 'llm', 'textModel'));
  const v = visionModelId === null ? null : project.models.get(visionModelId);
  if (visionModelId !== null && !v)
    throw new FlaneurError('NOT_FOUND', `No model ${visionModelId} in this project.`, { field: 'modelId' });
  const vision = v ? modelInfo(v) : null;
  checkHeadPairing(
    head.name,
    head.manifest as unknown as HeadManifest,
    llm,
    vision && { id: vision.id, name: vision.name, sha256: vision.sha256, architecture: vision.architecture },
  );
}

const LLM_EXT = /\.(gguf|safetensors|json)$/i;

/** A language model: its description (size, memory), a tokenizer (refused without one), its feature-cache key. */
function describeLlm(file: string, source: string): { manifest: LlmManifest; key: string; bytes: number } {
  const src = openLlama(file);
  if (!src.tokenizer)
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} has no tokenizer Flaneur can read (tokenizer.json beside a .safetensors model). Import the model's GGUF file, which carries its tokenizer.`,
      { field: 'path' },
    );
  const i = src.info;
  const generalName =
    i.format === 'gguf' ? (metaString(readGguf(file, source).metadata, 'general.name') ?? null) : null;
  return {
    manifest: {
      kind: 'llm',
      format: i.format,
      arch: i.config.arch,
      dim: i.config.dim,
      layers: i.config.layers,
      params: i.params,
      memoryBytes: i.memoryBytes,
      summary: i.summary,
      generalName,
    },
    key: textModelKey(file),
    bytes: i.fileBytes,
  };
}

function isGguf(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    return head.toString('latin1') === 'GGUF';
  } finally {
    fs.closeSync(fd);
  }
}

/** A .safetensors file is a head when it carries a ShareLock configuration; otherwise an LLM (config.json beside). */
function isHeadSafetensors(file: string, source: string): boolean {
  return 'flaneur.sharelock' in readSafetensors(file, source).metadata;
}

/** Jobs that read a text model, and the fields of their arguments that name it. */
const TEXT_MODEL_JOBS: Readonly<Record<string, readonly string[]>> = {
  'train.sharelock': ['textModel'],
  'text.features': ['model'],
};

/**
 * `text.models.remove`: forgets a language model or a ShareLock head, refused while a queued or running job uses it.
 * A language model's file is the user's and stays; a head's copy under models/text/ goes with it (a head trained
 * here stays in its run's export folder). Cached text features stay (the same file imported again reuses them).
 */
export function removeTextModel(project: Project, id: number): TextModelInfo[] {
  const row = project.textModels.get(id);
  if (!row)
    throw new FlaneurError('NOT_FOUND', `No language model or ShareLock head ${id} in this project.`, { field: 'id' });
  const busy = project.jobs
    .list({ states: ['queued', 'running'] })
    .find((j) => (TEXT_MODEL_JOBS[j.kind] ?? []).some((f) => j.args[f] === id));
  if (busy)
    throw new FlaneurError(
      'JOB_STATE',
      `"${row.name}" is in use by job #${busy.id} (${busy.title}): wait for it to finish or cancel it, then remove it.`,
      { field: 'id' },
    );
  project.textModels.remove(id);
  const copied = row.kind === 'sharelock-head' && path.dirname(row.file) === path.join('models', 'text');
  if (copied && !project.textModels.list().some((m) => m.file === row.file))
    fs.rmSync(path.join(project.dir, row.file), { force: true });
  return project.textModels.list().map(textModelInfo);
}

/**
 * Registers a language model or a ShareLock head (`text.models.import`). Heads are copied into
 * models/text/<sha256>.safetensors; language models stay where they are.
 */
export async function importTextModel(
  project: Project,
  a: CommandArgs<'text.models.import'>,
): Promise<CommandResult<'text.models.import'>> {
  const file = path.resolve(a.path);
  if (!fs.existsSync(file)) throw new FlaneurError('NOT_FOUND', `No such file: ${file}`, { field: 'path' });
  const source = path.basename(file);
  const bytes = assertModelFile(file, source);
  const lower = source.toLowerCase();
  if (lower.endsWith('.ckpt')) return importCheckpoint(project, file, source, a.name);
  const headFile = lower.endsWith('.safetensors') && !isGguf(file) && isHeadSafetensors(file, source);
  if (!headFile) {
    if (!LLM_EXT.test(source) && !isGguf(file))
      throw new FlaneurError(
        'UNSUPPORTED_MODEL',
        `${source} is neither a language model (.gguf, or .safetensors with config.json beside it) nor a ShareLock head (.safetensors saved by Flaneur, or an official ShareLock .ckpt).`,
        { field: 'path' },
      );
    const llm = describeLlm(file, source);
    const { row, existed } = project.textModels.insert({
      kind: 'llm',
      name: a.name ?? llm.manifest.generalName ?? source.replace(/\.(gguf|safetensors)$/i, ''),
      key: llm.key,
      file,
      bytes: llm.bytes,
      manifest: llm.manifest as unknown as Record<string, unknown>,
    });
    return { ...textModelInfo(row), existed };
  }
  const sha256 = await hashFile(file, 'sha256');
  const there = project.textModels.byKey('sharelock-head', sha256);
  if (there) return { ...textModelInfo(there), existed: true };
  const head = readShareLockHead(readSafetensors(file, source), source);
  const rel = path.join('models', 'text', `${sha256}.safetensors`);
  await fs.promises.mkdir(path.join(project.dir, 'models', 'text'), { recursive: true });
  await fs.promises.copyFile(file, path.join(project.dir, rel));
  return registerHead(project, { name: a.name ?? source.replace(/\.safetensors$/i, ''), sha256, rel, bytes, head });
}

/**
 * An official ShareLock Lightning checkpoint: its head (read without running anything in the pickle) written as a
 * Flaneur head under models/text/<sha256 of the .ckpt>.safetensors, with what it expects in the metadata.
 */
async function importCheckpoint(project: Project, file: string, source: string, name?: string) {
  const sha256 = await hashFile(file, 'sha256');
  const there = project.textModels.byKey('sharelock-head', sha256);
  if (there) return { ...textModelInfo(there), existed: true };
  const head = readShareLockCheckpoint(file, source);
  const rel = path.join('models', 'text', `${sha256}.safetensors`);
  const bytes = encodeShareLockWeights(head.weights, headMetadata(head));
  await fs.promises.mkdir(path.join(project.dir, 'models', 'text'), { recursive: true });
  await fs.promises.writeFile(path.join(project.dir, rel), bytes);
  return registerHead(project, {
    name: name ?? source.replace(/\.ckpt$/i, ''),
    sha256,
    rel,
    bytes: bytes.length,
    head,
  });
}

/**
 * A finished `train.sharelock` job's head (its `export` item) goes into the project's text models, in place (the
 * run's export folder); the pending-registration mark goes with it. False when there is nothing to register.
 */
export async function registerTrainedHead(project: Project, jobId: number): Promise<boolean> {
  const item = project.jobs.items(jobId, { limit: 10 }).items.find((i) => i.key === 'export');
  const r = item?.result as { encoder?: string; name?: string } | null;
  if (!r?.encoder) return false;
  const file = path.join(project.dir, r.encoder);
  if (!fs.existsSync(pendingRegistration(file))) return false;
  const sha256 = await hashFile(file, 'sha256');
  const head = readShareLockHead(readSafetensors(file, path.basename(file)), path.basename(file));
  registerHead(project, {
    name: r.name ?? `ShareLock head (job ${jobId})`,
    sha256,
    rel: r.encoder,
    bytes: fs.statSync(file).size,
    head,
  });
  fs.rmSync(pendingRegistration(file), { force: true });
  return true;
}

/** Records a head file already in the project (imported, converted from a checkpoint, or trained here). */
export function registerHead(
  project: Project,
  h: {
    name: string;
    sha256: string;
    rel: string;
    bytes: number;
    head: HeadProvenance & { weights: { config: ShareLockConfig } };
  },
): CommandResult<'text.models.import'> {
  const manifest: HeadManifest = {
    kind: 'sharelock-head',
    config: h.head.weights.config,
    textModel: h.head.textModel,
    vision: h.head.vision,
    origin: h.head.origin,
  };
  const { row, existed } = project.textModels.insert({
    kind: 'sharelock-head',
    name: h.name,
    key: h.sha256,
    file: h.rel,
    bytes: h.bytes,
    manifest: manifest as unknown as Record<string, unknown>,
  });
  return { ...textModelInfo(row), existed };
}

/**
 * One language model kept loaded per process (the task worker's, or the engine's): loading an 8B model takes
 * minutes, a second query should not. Reloaded when the Device settings change.
 */
export class TextEncoderCache {
  private kept: { id: string; encoder: Promise<LlamaEncoder> } | null = null;

  constructor(private readonly runtime: () => RuntimeSettings) {}

  async get(file: string, key: string): Promise<LlamaEncoder> {
    const id = `${key}\n${file}\n${JSON.stringify(this.runtime())}`;
    if (this.kept?.id === id) return this.kept.encoder;
    await this.release();
    const encoder = LlamaEncoder.load(openLlama(file), { runtime: this.runtime() });
    this.kept = { id, encoder };
    encoder.catch(() => {
      if (this.kept?.encoder === encoder) this.kept = null;
    });
    return encoder;
  }

  async release(): Promise<void> {
    const k = this.kept;
    this.kept = null;
    if (k) await (await k.encoder.catch(() => null))?.close();
  }

  /** The key of the language model kept loaded, or null when none is. */
  heldKey(): string | null {
    return this.kept ? (this.kept.id.split('\n')[0] as string) : null;
  }

  /** Closes the language model of this key if it is the one kept (it was removed from the project). */
  async forget(key: string): Promise<boolean> {
    if (this.heldKey() !== key) return false;
    await this.release();
    return true;
  }
}

/** `text.features`: each text's feature from the project's cache, the missing ones encoded (and cached) now. */
export async function textFeatures(
  project: Project,
  encoders: TextEncoderCache,
  a: CommandArgs<'text.features'>,
): Promise<CommandResult<'text.features'>> {
  const row = requireTextModel(project, a.model, 'llm');
  const file = checkLlmFile(row.file, row.key, row.name);
  const m = row.manifest as unknown as LlmManifest;
  // Only load the model when some text is not cached yet.
  const lazy = { encodeTexts: async (t: readonly string[]) => (await encoders.get(file, row.key)).encodeTexts(t) };
  const { features, computed } = await cachedTextFeatures(lazy, project.textFeatures, row.key, a.texts);
  return {
    model: row.id,
    dim: m.dim,
    computed,
    features: a.vectors === false ? [] : features.map((f) => Array.from(f)),
  };
}
