/**
 * The library: media items, sampling and frame sizes, ingestion and folder hashing.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty, UserPath } from './common.js';
import { ErrorInfo, JobInfo } from './jobs.js';

export const Sampling = z.discriminatedUnion('policy', [
  z.object({ policy: z.literal('fps'), fps: z.number().positive().max(240) }),
  z.object({ policy: z.literal('every'), n: z.int().min(1).max(100000) }),
  z.object({ policy: z.literal('keyframes') }),
  z.object({ policy: z.literal('scene'), threshold: z.number().min(0.01).max(1) }),
]);

export type Sampling = z.infer<typeof Sampling>;

export const FrameSize = z.object({
  /** 'short-side': the shorter side becomes `size`, aspect kept; 'square': size x size (squashed). */
  mode: z.enum(['short-side', 'square']),
  size: z.int().min(32).max(2048),
});

export type FrameSize = z.infer<typeof FrameSize>;

export const MediaInfo = z.object({
  id: z.int(),
  kind: z.enum(['image', 'video', 'unknown']),
  path: z.string(),
  name: z.string(),
  bytes: z.number(),
  status: z.enum(['pending', 'ingesting', 'done', 'failed']),
  /** Why it failed, or a warning about a file that was ingested with problems. */
  problem: ErrorInfo.nullable(),
  width: z.int().nullable(),
  height: z.int().nullable(),
  rotation: z.int(),
  codec: z.string().nullable(),
  durationS: z.number().nullable(),
  fps: z.number().nullable(),
  keyframeIntervalS: z.number().nullable(),
  sampling: Sampling.nullable(),
  frameWidth: z.int().nullable(),
  frameHeight: z.int().nullable(),
  frameCount: z.int(),
  addedAt: z.string(),
});

export type MediaInfo = z.infer<typeof MediaInfo>;

export const HASH_ALGORITHMS = ['sha256', 'sha1', 'md5'] as const;

/** The commands of this capability (merged into `commands` by contract.ts). */
export const libraryCommands = {
  'library.add': {
    args: z
      .object({
        paths: z.array(UserPath).min(1).max(10000),
        recursive: z.boolean().optional(),
        extensions: z.array(z.string().min(1).max(10)).optional(),
        sampling: Sampling.optional(),
        frameSize: FrameSize.optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'library.list': {
    args: z
      .object({
        kind: z.enum(['image', 'video']).optional(),
        status: z.enum(['pending', 'ingesting', 'done', 'failed']).optional(),
        withProblem: z.boolean().optional(),
        /** Only these items (e.g. a selection made on the embedding map). */
        ids: z.array(z.int().positive()).max(200000).optional(),
        offset: z.int().min(0).optional(),
        limit: z.int().min(1).max(1000).optional(),
      })
      .strict(),
    result: z.object({
      total: z.int(),
      items: z.array(MediaInfo),
      counts: z.object({ images: z.int(), videos: z.int(), frames: z.int(), failed: z.int() }),
    }),
  },
  'library.get': { args: z.object({ id: z.int().positive() }).strict(), result: MediaInfo },
  'library.frames': {
    args: z
      .object({
        id: z.int().positive(),
        offset: z.int().min(0).optional(),
        limit: z.int().min(1).max(100000).optional(),
      })
      .strict(),
    result: z.object({ total: z.int(), frames: z.array(z.object({ index: z.int(), pts: z.number() })) }),
  },
  /** Catalog items named the way people name them: an id, a file path, or a file name unique in the catalog. */
  'library.resolve': {
    args: z.object({ refs: z.array(z.string().min(1).max(4096)).min(1).max(100000) }).strict(),
    result: z.array(MediaInfo),
  },
  'library.remove': { args: z.object({ id: z.int().positive() }).strict(), result: z.null() },
  'media.tools': {
    args: Empty,
    result: z.object({
      ffmpeg: z.object({ path: z.string(), source: z.string(), version: z.string() }),
      ffprobe: z.object({ path: z.string(), source: z.string(), version: z.string() }),
      videoDecoders: z.array(z.string()),
    }),
  },
  'ingest.hashFolder': {
    args: z
      .object({
        root: UserPath,
        recursive: z.boolean().optional(),
        algorithm: z.enum(HASH_ALGORITHMS).optional(),
      })
      .strict(),
    result: JobInfo,
  },
} as const;
