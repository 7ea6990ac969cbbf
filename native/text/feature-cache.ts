/**
 * Text features cached per (language model, text): an LLM pass per caption is the expensive part of ShareLock
 * (the official code precomputes them once), so each text is encoded once per model and kept in the project
 * (native/store/text-features-repo.ts, joined by the caller through `TextFeatureCache`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { FlaneurError } from '../api/errors.js';
import type { LlamaEncoder } from './llama.js';

/** What the feature means; part of the key, so a changed definition never reuses old vectors. */
export const TEXT_FEATURE_DEFINITION = 'sharelock-last-token-v1';

/** The store's side (TextFeaturesRepository has this shape). */
export interface TextFeatureCache {
  get(model: string, texts: readonly string[]): Map<string, Float32Array>;
  put(model: string, entries: Iterable<readonly [string, Float32Array]>): void;
}

const SLICE = 16 * 2 ** 20;

/**
 * A language model file's identity without hashing gigabytes: SHA-256 of its size, its first 16 MiB (the GGUF
 * header with the tokenizer, or the safetensors header and first tensors) and its last 16 MiB (the last tensors,
 * different in any fine-tune), with the feature definition.
 */
export function textModelKey(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const h = crypto.createHash('sha256');
    h.update(`${TEXT_FEATURE_DEFINITION}\n${size}\n`);
    const read = (at: number, n: number) => {
      const buf = Buffer.alloc(n);
      const got = fs.readSync(fd, buf, 0, n, at);
      h.update(buf.subarray(0, got));
    };
    read(0, Math.min(size, SLICE));
    if (size > SLICE) read(Math.max(SLICE, size - SLICE), Math.min(SLICE, size - SLICE));
    return `llm:${h.digest('hex').slice(0, 32)}:${TEXT_FEATURE_DEFINITION}`;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A registered language model's file, checked to be the one registered (same key) before it is run: a model file
 * replaced under the same name would fill the cache with another model's features under this one's key.
 */
export function checkLlmFile(file: string, key: string, name: string): string {
  if (!fs.existsSync(file))
    throw new FlaneurError(
      'NOT_FOUND',
      `The language model "${name}" was registered from ${file}, which is gone. Put it back there, or import it again from where it is now.`,
      { field: 'textModel' },
    );
  if (textModelKey(file) !== key)
    throw new FlaneurError(
      'INVALID_MODEL',
      `${file} has changed since "${name}" was registered (another model was saved under that name). Import it again as a new language model.`,
      { field: 'textModel' },
    );
  return file;
}

export interface CachedFeaturesResult {
  features: Float32Array[];
  /** How many texts were encoded now (the rest came from the cache). */
  computed: number;
}

/**
 * The feature of every text, in order: cached ones read, the others encoded `chunk` at a time and stored after
 * each chunk (an interrupted run keeps what it computed). `onProgress(done, total)` after each chunk.
 */
export async function cachedTextFeatures(
  encoder: Pick<LlamaEncoder, 'encodeTexts'>,
  cache: TextFeatureCache,
  model: string,
  texts: readonly string[],
  o: { chunk?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<CachedFeaturesResult> {
  const have = cache.get(model, texts);
  const missing = [...new Set(texts.filter((t) => !have.has(t)))];
  const chunk = o.chunk ?? 256;
  for (let at = 0; at < missing.length; at += chunk) {
    const part = missing.slice(at, at + chunk);
    const feats = await encoder.encodeTexts(part);
    const entries = part.map((t, i) => [t, feats[i] as Float32Array] as const);
    cache.put(model, entries);
    for (const [t, f] of entries) have.set(t, f);
    o.onProgress?.(Math.min(at + chunk, missing.length), missing.length);
  }
  return { features: texts.map((t) => have.get(t) as Float32Array), computed: missing.length };
}
