/**
 * Tokenizers rebuilt from a GGUF file's metadata (tokenizer.ggml.*), as llama.cpp's llama-vocab.cpp does:
 * - 'gpt2' (byte-level BPE: Llama-3, Qwen2, SmolLM, GPT-2): the text is split by the model's pre-tokenizer regex
 *   (tokenizer.ggml.pre), each piece's UTF-8 bytes mapped to GPT-2's printable characters, then merged by the ranks
 *   of tokenizer.ggml.merges (lowest rank first); Llama-3 ('llama-bpe') takes a piece that is itself a token whole.
 * - 'llama' (SentencePiece: Llama-2, Mistral, TinyLlama): spaces become '▁' (one is prepended), the characters are
 *   merged pairwise by the highest score of the merged piece (leftmost first), and a piece with no token falls back
 *   to its bytes (<0xXX>).
 * No Unicode normalisation (Llama-3's and Qwen2's tokenizer.json have none; llama.cpp applies none): a decomposed
 * "é" stays two characters. BOS is added when the metadata says so (tokenizer.ggml.add_bos_token; SentencePiece's default is yes): ShareLock
 * tokenises captions with the model's own tokenizer, BOS and no chat template. Special tokens written in the text
 * are not parsed as such (captions do not contain them).
 */
import { FlaneurError } from '../api/errors.js';
import type { GgufValue } from './gguf.js';

export interface Tokenizer {
  readonly kind: 'bpe' | 'spm';
  readonly vocabSize: number;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly addBos: boolean;
  /** Token ids of a text, BOS first when the model adds one. */
  encode(text: string): number[];
}

/** Pre-tokenizer regexes of llama.cpp (llama-vocab.cpp), by tokenizer.ggml.pre. */
const CONTRACTIONS_ANY_CASE = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const PRE_REGEX: Record<string, string> = {
  'llama-bpe': `${CONTRACTIONS_ANY_CASE}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  qwen2: `${CONTRACTIONS_ANY_CASE}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  gpt2: GPT2_REGEX,
  default: GPT2_REGEX,
  smollm: GPT2_REGEX,
};

/** GPT-2's reversible map from bytes to printable characters (bytes_to_unicode). */
function byteChars(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return out;
}
const BYTE_CHARS = byteChars();

function unsupported(source: string, why: string): FlaneurError {
  return new FlaneurError('UNSUPPORTED_MODEL', `${source} has a tokenizer Flaneur cannot rebuild: ${why}.`);
}

function strings(meta: ReadonlyMap<string, GgufValue>, key: string): string[] | undefined {
  const v = meta.get(key);
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
}

function optionalId(meta: ReadonlyMap<string, GgufValue>, key: string, n: number): number | null {
  const v = meta.get(key);
  const id = typeof v === 'bigint' ? Number(v) : v;
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < n ? id : null;
}

/** The tokenizer a GGUF file describes, or an UNSUPPORTED_MODEL sentence saying what is missing. */
export function tokenizerFromGguf(meta: ReadonlyMap<string, GgufValue>, source: string): Tokenizer {
  const model = meta.get('tokenizer.ggml.model');
  const tokens = strings(meta, 'tokenizer.ggml.tokens');
  if (!tokens) throw unsupported(source, 'it has no token list (tokenizer.ggml.tokens)');
  const bos = optionalId(meta, 'tokenizer.ggml.bos_token_id', tokens.length);
  const eos = optionalId(meta, 'tokenizer.ggml.eos_token_id', tokens.length);
  const addBosMeta = meta.get('tokenizer.ggml.add_bos_token');
  if (model === 'gpt2') {
    const merges = strings(meta, 'tokenizer.ggml.merges');
    if (!merges) throw unsupported(source, 'a byte-level BPE tokenizer without merges (tokenizer.ggml.merges)');
    const pre = (meta.get('tokenizer.ggml.pre') as string | undefined) ?? 'default';
    const regex = PRE_REGEX[pre];
    if (!regex) {
      throw unsupported(
        source,
        `its pre-tokenizer "${pre}" is not one Flaneur knows (${Object.keys(PRE_REGEX).join(', ')})`,
      );
    }
    return new BpeTokenizer(tokens, merges, regex, {
      bos,
      eos,
      addBos: addBosMeta === undefined ? bos !== null && pre === 'llama-bpe' : addBosMeta === true,
      ignoreMerges: pre === 'llama-bpe',
    });
  }
  if (model === 'llama') {
    const scores = meta.get('tokenizer.ggml.scores');
    if (!Array.isArray(scores) || scores.length !== tokens.length) {
      throw unsupported(source, 'a SentencePiece tokenizer without one score per token (tokenizer.ggml.scores)');
    }
    return new SpmTokenizer(tokens, scores as number[], {
      bos,
      eos,
      addBos: addBosMeta === undefined ? bos !== null : addBosMeta === true,
      addSpacePrefix: meta.get('tokenizer.ggml.add_space_prefix') !== false,
    });
  }
  throw unsupported(
    source,
    `tokenizer model "${String(model)}" (Flaneur rebuilds "gpt2" BPE and "llama" SentencePiece)`,
  );
}

/** Oniguruma's scoped case-insensitive groups `(?i:...)` (HF tokenizer.json) as plain JS: letters become [xX]. */
function expandCaseInsensitiveGroups(pattern: string): string {
  let out = '';
  let i = 0;
  while (i < pattern.length) {
    const at = pattern.indexOf('(?i:', i);
    if (at < 0) {
      out += pattern.slice(i);
      break;
    }
    out += `${pattern.slice(i, at)}(?:`;
    let depth = 1;
    let j = at + 4;
    for (; j < pattern.length && depth > 0; j++) {
      const ch = pattern[j] as string;
      if (ch === '\\') {
        out += ch + (pattern[j + 1] ?? '');
        j++;
        continue;
      }
      if (ch === '(') depth++;
      if (ch === ')') depth--;
      if (depth === 0) break;
      out += /[a-zA-Z]/.test(ch) ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch;
    }
    out += ')';
    i = j + 1;
  }
  return out;
}

/**
 * A byte-level BPE tokenizer from Hugging Face's tokenizer.json (Llama-3, Qwen2, SmolLM, GPT-2: model BPE over
 * GPT-2 byte characters, a Split regex or ByteLevel pre-tokenizer, BOS from the post-processor's template).
 * SentencePiece-style tokenizer.json files (Llama-2's byte_fallback BPE) are refused: use the model's GGUF.
 */
export function tokenizerFromHfJson(json: unknown, source: string, eos: number | null = null): Tokenizer {
  const t = json as {
    model?: {
      type?: string;
      vocab?: Record<string, number>;
      merges?: (string | [string, string])[];
      ignore_merges?: boolean;
      byte_fallback?: boolean;
    };
    pre_tokenizer?: {
      type?: string;
      pretokenizers?: { type?: string; pattern?: { Regex?: string; String?: string } }[];
      use_regex?: boolean;
    };
    post_processor?: {
      type?: string;
      single?: { SpecialToken?: { id?: string } }[];
      processors?: { type?: string; single?: { SpecialToken?: { id?: string } }[] }[];
    };
    added_tokens?: { id: number; content: string }[];
  };
  const model = t?.model;
  if (model?.type !== 'BPE' || !model.vocab || !Array.isArray(model.merges)) {
    throw unsupported(source, 'its tokenizer.json is not a byte-level BPE model');
  }
  if (model.byte_fallback)
    throw unsupported(source, "its tokenizer.json is SentencePiece-style (byte_fallback); use the model's GGUF file");
  const size = Math.max(...Object.values(model.vocab), ...(t.added_tokens ?? []).map((a) => a.id)) + 1;
  if (!(size > 0 && size <= 4_000_000)) throw unsupported(source, 'its vocabulary size is implausible');
  const tokens = new Array<string>(size).fill('');
  for (const [tok, id] of Object.entries(model.vocab)) tokens[id] = tok;
  for (const a of t.added_tokens ?? []) tokens[a.id] = a.content;
  const merges = model.merges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  const pre = t.pre_tokenizer;
  const split = pre?.type === 'Sequence' ? pre.pretokenizers?.find((p) => p.type === 'Split') : undefined;
  let regex: string;
  if (split?.pattern?.Regex) regex = expandCaseInsensitiveGroups(split.pattern.Regex);
  else if (pre?.type === 'ByteLevel' && pre.use_regex !== false) regex = GPT2_REGEX;
  else throw unsupported(source, 'its tokenizer.json has a pre-tokenizer Flaneur does not rebuild');
  try {
    new RegExp(regex, 'u');
  } catch {
    throw unsupported(source, 'its pre-tokenizer regex cannot run here');
  }
  const post = t.post_processor;
  const template =
    post?.type === 'Sequence' ? post.processors?.find((p) => p.type === 'TemplateProcessing')?.single : post?.single;
  const bosName = template?.[0]?.SpecialToken?.id;
  const bos = bosName === undefined ? null : tokens.indexOf(bosName);
  return new BpeTokenizer(tokens, merges, regex, {
    bos: bos !== null && bos >= 0 ? bos : null,
    eos,
    addBos: bos !== null && bos >= 0,
    ignoreMerges: model.ignore_merges === true,
  });
}

interface Specials {
  bos: number | null;
  eos: number | null;
  addBos: boolean;
}

/** What both kinds share: the token → id map (first id of a duplicated text) and the special tokens. */
abstract class VocabTokenizer {
  readonly vocabSize: number;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly addBos: boolean;
  protected readonly ids = new Map<string, number>();

  constructor(tokens: readonly string[], o: Specials) {
    this.vocabSize = tokens.length;
    tokens.forEach((t, i) => {
      if (!this.ids.has(t)) this.ids.set(t, i);
    });
    this.bos = o.bos;
    this.eos = o.eos;
    this.addBos = o.addBos;
  }

  protected start(): number[] {
    return this.addBos && this.bos !== null ? [this.bos] : [];
  }
}

export class BpeTokenizer extends VocabTokenizer implements Tokenizer {
  readonly kind = 'bpe';
  private readonly ranks = new Map<string, number>();
  private readonly pre: RegExp;
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, number[]>();

  constructor(
    tokens: readonly string[],
    merges: readonly string[],
    regex: string,
    o: Specials & { ignoreMerges: boolean },
  ) {
    super(tokens, o);
    merges.forEach((m, i) => {
      if (!this.ranks.has(m)) this.ranks.set(m, i);
    });
    this.pre = new RegExp(regex, 'gu');
    this.ignoreMerges = o.ignoreMerges;
  }

  encode(text: string): number[] {
    const out = this.start();
    for (const m of text.matchAll(this.pre)) out.push(...this.piece(m[0]));
    return out;
  }

  private piece(piece: string): number[] {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    const bytes = new TextEncoder().encode(piece);
    const word = Array.from(bytes, (b) => BYTE_CHARS[b] as string);
    const whole = word.join('');
    let ids: number[];
    const direct = this.ids.get(whole);
    if (this.ignoreMerges && direct !== undefined) ids = [direct];
    else {
      const parts = this.merge(word);
      ids = [];
      for (const p of parts) {
        const id = this.ids.get(p);
        if (id !== undefined) ids.push(id);
        else for (const ch of p) ids.push(this.ids.get(ch) ?? 0);
      }
    }
    if (this.cache.size < 50_000) this.cache.set(piece, ids);
    return ids;
  }

  /** Merges the pair of lowest rank, every occurrence left to right, until no pair has a rank. */
  private merge(word: string[]): string[] {
    let w = word;
    while (w.length > 1) {
      let best = Number.POSITIVE_INFINITY;
      let pair: [string, string] | null = null;
      for (let i = 0; i < w.length - 1; i++) {
        const r = this.ranks.get(`${w[i]} ${w[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          pair = [w[i] as string, w[i + 1] as string];
        }
      }
      if (!pair) break;
      const next: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i < w.length - 1 && w[i] === pair[0] && w[i + 1] === pair[1]) {
          next.push(pair[0] + pair[1]);
          i++;
        } else next.push(w[i] as string);
      }
      w = next;
    }
    return w;
  }
}

export class SpmTokenizer extends VocabTokenizer implements Tokenizer {
  readonly kind = 'spm';
  private readonly addSpacePrefix: boolean;

  constructor(
    tokens: readonly string[],
    private readonly scores: readonly number[],
    o: Specials & { addSpacePrefix: boolean },
  ) {
    super(tokens, o);
    this.addSpacePrefix = o.addSpacePrefix;
  }

  encode(text: string): number[] {
    const out = this.start();
    if (text.length === 0) return out;
    const escaped = (this.addSpacePrefix ? ` ${text}` : text).replaceAll(' ', '\u2581');
    let sym = Array.from(escaped);
    // Best-first: the adjacent pair whose merged piece is a token of the highest score, the leftmost on a tie.
    for (;;) {
      let best = Number.NEGATIVE_INFINITY;
      let at = -1;
      for (let i = 0; i < sym.length - 1; i++) {
        const id = this.ids.get((sym[i] as string) + (sym[i + 1] as string));
        if (id === undefined) continue;
        const s = this.scores[id] as number;
        if (s > best) {
          best = s;
          at = i;
        }
      }
      if (at < 0) break;
      sym = [...sym.slice(0, at), (sym[at] as string) + (sym[at + 1] as string), ...sym.slice(at + 2)];
    }
    for (const s of sym) {
      const id = this.ids.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const byte of new TextEncoder().encode(s)) {
        const hex = `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
        out.push(this.ids.get(hex) ?? 0);
      }
    }
    return out;
  }
}
