/**
 * Text search over the project's frames (issue 29): a ShareLock head, the language model it was trained on and a
 * feature run of its vision encoder answer `retrieve.text`, `classify.zeroShot` and `map.textSimilarity`. The
 * math is native/text/text-search.ts and rank.ts; this joins them with the project (registry, features, cache)
 * and keeps them warm: the head's projector, the run's embeddings as one transposed tensor, and (through
 * `TextEncoderCache`) the language model, loaded only when a text is not in the project's feature cache.
 */
import path from 'node:path';
import type { CommandArgs, CommandResult } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { classNamesUnder, confusionMatrix } from '../classify/knn-classify.js';
import { frameVectors, sourceVersion } from '../fungi/vectors.js';
import { readSafetensors } from '../models/safetensors.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { FeatureRunRow } from '../store/features-repo.js';
import type { Project } from '../store/project.js';
import type { TextModelRow } from '../store/text-models-repo.js';
import { checkLlmFile } from '../text/feature-cache.js';
import { readShareLockHead } from '../text/head-file.js';
import { TextRanker } from '../text/rank.js';
import {
  classPrototypes,
  promptsFor,
  ShareLockTextEmbedder,
  ZERO_SHOT_TEMPLATES,
  zeroShotPredict,
} from '../text/text-search.js';
import { checkPairing, requireTextModel, type TextEncoderCache, textModelInfo } from './text-models.js';

interface Pair {
  head: TextModelRow;
  llm: TextModelRow;
  run: FeatureRunRow;
}

type PairArgs = { head?: number | undefined; textModel?: number | undefined; runId?: number | undefined };

const passes = (f: () => void) => {
  try {
    f();
    return true;
  } catch {
    return false;
  }
};

/**
 * The head, language model and feature run for a text, or the sentence saying what is missing. Pieces named in
 * `a` are required (a wrong one is an error); the others are the newest that pair with the head.
 */
function findPair(project: Project, a: PairArgs): { pair: Pair } | { why: string; partial: Partial<Pair> } {
  const head = a.head
    ? requireTextModel(project, a.head, 'sharelock-head', 'head')
    : project.textModels.list('sharelock-head').at(-1);
  if (!head)
    return {
      why: 'No ShareLock head in this project: import one in Models → "Language models and text heads" (or `flaneur text import HEAD`), or train one (Train → ShareLock, `flaneur train --objective sharelock`).',
      partial: {},
    };
  const info = textModelInfo(head).head;
  let llm: TextModelRow | undefined;
  if (a.textModel) {
    llm = requireTextModel(project, a.textModel, 'llm', 'textModel');
    checkPairing(project, head.id, llm.id, null);
  } else {
    const llms = project.textModels.list('llm').reverse();
    llm =
      llms.find((l) => info?.textModel.key && l.key === info.textModel.key) ??
      llms.find((l) => passes(() => checkPairing(project, head.id, l.id, null)));
  }
  if (!llm)
    return {
      why: `The head "${head.name}" needs the language model it was trained on (${info?.textModel.name ?? `${info?.textModel.dim}-d features`}): import that model's file in Models → "Language models and text heads" (or \`flaneur text import MODEL.gguf\`).`,
      partial: { head },
    };
  let run: FeatureRunRow | undefined;
  if (a.runId) {
    run = project.features.run(a.runId);
    if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${a.runId}.`, { field: 'runId' });
    checkPairing(project, head.id, null, run.modelId);
  } else {
    run = project.features
      .runs()
      .reverse()
      .find((r) => project.features.count(r.id) > 0 && passes(() => checkPairing(project, head.id, null, r.modelId)));
  }
  if (!run)
    return {
      why: `No image has features of ${info?.vision.name ?? 'the vision encoder'} the head "${head.name}" was trained with: extract features with that model first.`,
      partial: { head, llm },
    };
  return { pair: { head, llm, run } };
}

function requirePair(project: Project, a: PairArgs): Pair {
  const found = findPair(project, a);
  if ('why' in found) throw new FlaneurError('NOT_FOUND', found.why);
  return found.pair;
}

/** Class names and folder names compared as a user means them: case, `_` and `-` aside. */
const sameName = (s: string) => s.toLowerCase().replace(/[_-]+/g, ' ').replace(/\s+/g, ' ').trim();

export class TextSearchService {
  private embedder: { id: string; value: Promise<ShareLockTextEmbedder> } | null = null;
  private ranker: { id: string; keys: { mediaId: number; frameIdx: number }[]; value: Promise<TextRanker> } | null =
    null;

  constructor(
    private readonly encoders: TextEncoderCache,
    private readonly runtime: () => RuntimeSettings,
  ) {}

  ready(project: Project, a: CommandArgs<'text.search.ready'>): CommandResult<'text.search.ready'> {
    const found = findPair(project, a);
    const p = 'pair' in found ? found.pair : found.partial;
    return {
      ready: 'pair' in found,
      why: 'why' in found ? found.why : null,
      head: p.head?.id ?? null,
      headName: p.head?.name ?? null,
      textModel: p.llm?.id ?? null,
      textModelName: p.llm?.name ?? null,
      runId: p.run?.id ?? null,
    };
  }

  private async embedderFor(project: Project, pair: Pair): Promise<ShareLockTextEmbedder> {
    const runtime = this.runtime();
    const id = `${project.dir}\n${pair.head.key}\n${pair.llm.key}\n${JSON.stringify(runtime)}`;
    if (this.embedder?.id !== id) {
      const old = this.embedder;
      this.embedder = null;
      if (old) await (await old.value.catch(() => null))?.release();
      const file = path.join(project.dir, pair.head.file);
      const head = readShareLockHead(readSafetensors(file, pair.head.name), pair.head.name);
      const { llm } = pair;
      const encoders = this.encoders;
      // the language model is loaded only when a text is missing from the cache
      const encoder = {
        encodeTexts: async (t: readonly string[]) =>
          (await encoders.get(checkLlmFile(llm.file, llm.key, llm.name), llm.key)).encodeTexts(t),
      };
      const value = ShareLockTextEmbedder.create(
        {
          encoder,
          textDim: textModelInfo(llm).llm?.dim ?? -1,
          cache: project.textFeatures,
          modelKey: llm.key,
          head: head.weights,
        },
        runtime,
      );
      const kept = { id, value };
      this.embedder = kept;
      value.catch(() => {
        if (this.embedder === kept) this.embedder = null;
      });
    }
    return (this.embedder as { value: Promise<ShareLockTextEmbedder> }).value;
  }

  /** The keys (head, language model) whose projector is kept warm for queries. */
  heldKeys(): string[] {
    return this.embedder ? this.embedder.id.split('\n').slice(1, 3) : [];
  }

  /** Releases the kept projector when it is of a head or language model of this key (it was removed). */
  async forget(key: string): Promise<boolean> {
    const kept = this.embedder;
    if (!kept || !this.heldKeys().includes(key)) return false;
    this.embedder = null;
    await (await kept.value.catch(() => null))?.release();
    return true;
  }

  /** The run's normalised CLS embeddings as a ranker, kept while its frames stay the same. */
  private async rankerFor(project: Project, run: FeatureRunRow, dim: number) {
    if (run.dim !== dim)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `Feature run ${run.id} has ${run.dim}-d features, but the head embeds texts in ${dim} dimensions.`,
        { field: 'runId' },
      );
    const source = { kind: 'embedding' as const, runId: run.id };
    const runtime = this.runtime();
    const id = `${project.dir}\n${run.id}\n${sourceVersion(project, source)}\n${JSON.stringify(runtime)}`;
    if (this.ranker?.id !== id) {
      const old = this.ranker;
      this.ranker = null;
      if (old) await (await old.value.catch(() => null))?.release();
      const { keys, vectors } = await frameVectors(project, source);
      this.ranker = { id, keys, value: Promise.resolve(new TextRanker(vectors, dim, runtime)) };
    }
    const r = this.ranker as NonNullable<TextSearchService['ranker']>;
    return { keys: r.keys, ranker: await r.value };
  }

  private pairInfo(pair: Pair, computed: number) {
    return {
      head: pair.head.id,
      headName: pair.head.name,
      textModel: pair.llm.id,
      textModelName: pair.llm.name,
      runId: pair.run.id,
      computed,
    };
  }

  async retrieve(project: Project, a: CommandArgs<'retrieve.text'>): Promise<CommandResult<'retrieve.text'>> {
    const pair = requirePair(project, a);
    const embedder = await this.embedderFor(project, pair);
    const { keys, ranker } = await this.rankerFor(project, pair.run, embedder.dim);
    const { embeddings, computed } = await embedder.embed([a.text]);
    const { indices, scores } = await ranker.rank(embeddings, a.k ?? 24);
    return {
      ...this.pairInfo(pair, computed),
      text: a.text,
      searched: keys.length,
      results: indices.map((i, j) => ({ ...(keys[i] as (typeof keys)[number]), sim: scores[j] as number })),
    };
  }

  async zeroShot(
    project: Project,
    a: CommandArgs<'classify.zeroShot'>,
    /** Classes of library items whose content lies under `root` at another path (engine/labelled-content.ts). */
    byContent?: ReadonlyMap<number, string>,
  ): Promise<CommandResult<'classify.zeroShot'>> {
    const classes = [...new Set(a.classes.map((c) => c.trim()))];
    if (classes.length < 2)
      throw new FlaneurError('INVALID_ARGUMENT', 'Name at least two different classes.', { field: 'classes' });
    const templates = a.templates ?? [...ZERO_SHOT_TEMPLATES];
    const prompts = promptsFor(classes, templates);
    const pair = requirePair(project, a);
    const embedder = await this.embedderFor(project, pair);
    const { keys, ranker } = await this.rankerFor(project, pair.run, embedder.dim);
    const { embeddings, computed } = await embedder.embed(prompts);
    const prototypes = classPrototypes(embeddings, embedder.dim, templates.length);
    const votes = zeroShotPredict(await ranker.scores(prototypes), classes.length);

    // scored: frames under the labelled folder whose sub-folder names a typed class
    const folderOf = a.root ? (classNamesUnder(project, keys, [a.root], [byContent])[0] as (string | null)[]) : [];
    const classIndex = new Map(classes.map((c, i) => [sameName(c), i]));
    const truthOf = (i: number) => {
      const f = folderOf[i];
      return f === null || f === undefined ? -1 : (classIndex.get(sameName(f)) ?? -2);
    };
    const evalIdx: number[] = [];
    const restIdx: number[] = [];
    const unmatchedFolders = new Set<string>();
    let unmatched = 0;
    keys.forEach((_, i) => {
      const t = truthOf(i);
      if (t >= 0) evalIdx.push(i);
      else if (t === -1) restIdx.push(i);
      else {
        unmatched++;
        unmatchedFolders.add(folderOf[i] as string);
      }
    });
    if (a.root && evalIdx.length === 0)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        unmatchedFolders.size > 0
          ? `No sub-folder of ${a.root} is named as one of the classes (folders: ${[...unmatchedFolders].slice(0, 10).join(', ')}).`
          : `No frame of feature run ${pair.run.id} lies under a sub-folder of ${a.root}: add the folder to the library and extract its features with the head's vision encoder.`,
        { field: 'root' },
      );
    const truth = Int32Array.from(evalIdx, truthOf);
    const predicted = Int32Array.from(evalIdx, (i) => votes.predicted[i] as number);
    let correct = 0;
    const misclassified = [];
    for (let q = 0; q < evalIdx.length; q++) {
      const i = evalIdx[q] as number;
      if (predicted[q] === truth[q]) correct++;
      else if (misclassified.length < 500)
        misclassified.push({
          ...(keys[i] as (typeof keys)[number]),
          truth: truth[q] as number,
          predicted: predicted[q] as number,
          confidence: votes.confidence[i] as number,
        });
    }
    return {
      ...this.pairInfo(pair, computed),
      method: 'zero-shot',
      templates,
      classes,
      evaluated: evalIdx.length,
      accuracy: evalIdx.length ? correct / evalIdx.length : 0,
      confusion: confusionMatrix(truth, predicted, classes.length),
      misclassified,
      predictions: restIdx.slice(0, 5000).map((i) => ({
        ...(keys[i] as (typeof keys)[number]),
        predicted: votes.predicted[i] as number,
        confidence: votes.confidence[i] as number,
      })),
      unmatched,
      unmatchedFolders: [...unmatchedFolders].sort(),
    };
  }

  async mapSimilarity(
    project: Project,
    a: CommandArgs<'map.textSimilarity'>,
  ): Promise<CommandResult<'map.textSimilarity'>> {
    const map = project.maps.get(a.mapId);
    const data = project.maps.data(a.mapId);
    if (!map || !data) throw new FlaneurError('NOT_FOUND', `No map ${a.mapId}.`, { field: 'mapId' });
    if (map.features !== 'embedding')
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `Map #${map.id} is of FUNGI vectors; a text is compared with CLS embeddings. Build a map of embeddings to colour it by a text.`,
        { field: 'mapId' },
      );
    const pair = requirePair(project, { head: a.head, textModel: a.textModel, runId: map.runId });
    const embedder = await this.embedderFor(project, pair);
    const { keys, ranker } = await this.rankerFor(project, pair.run, embedder.dim);
    const { embeddings, computed } = await embedder.embed([a.text]);
    const all = await ranker.scores(embeddings);
    const at = new Map(keys.map((k, i) => [`${k.mediaId}:${k.frameIdx}`, i]));
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    const sims = Array.from({ length: map.points }, (_, i) => {
      const j = at.get(`${data.keys[2 * i]}:${data.keys[2 * i + 1]}`);
      // a frame removed from the run since the map was built has no score: the lowest is shown
      const s = j === undefined ? Number.NaN : (all[j] as number);
      if (!Number.isNaN(s)) {
        min = Math.min(min, s);
        max = Math.max(max, s);
      }
      return s;
    });
    if (!Number.isFinite(min)) min = max = 0;
    return { ...this.pairInfo(pair, computed), sims: sims.map((s) => (Number.isNaN(s) ? min : s)), min, max };
  }

  async release(): Promise<void> {
    const e = this.embedder;
    const r = this.ranker;
    this.embedder = null;
    this.ranker = null;
    if (e) await (await e.value.catch(() => null))?.release();
    if (r) await (await r.value.catch(() => null))?.release();
  }
}
