/**
 * Tokenizers rebuilt from a GGUF file's metadata (tokenizer.ggml.*), as llama.cpp's llama-vocab.cpp does:
 * - 'gpt2' (byte-level BPE: Llama-3, Qwen2, SmolLM, GPT-2): the text is split by the model's pre-tokenizer regex
 *   (tokenizer.ggml.pre), each piece's UTF-8 bytes mapped to GPT-2's printable characters, then merged by the ranks
 *   of tokenizer.ggml.merges (lowest rank first); Llama-3 ('llama-bpe') takes a piece that is itself a token whole.
 * - 'llama' (SentencePiece: Llama-2, Mistral, TinyLlama): spaces become '▁' (one is prepended), the characters are
 *   merged pairwise by the highest score of the merged piece (leftmost first), and a piece with no token falls back
 *   to its bytes (<0xXX>).
 * BOS is added when the metadata says so (tokenizer.ggml.add_bos_token; SentencePiece's default is yes): ShareLock
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

interface Specials {
  bos: number | null;
  eos: number | null;
  addBos: boolean;
}

export class BpeTokenizer implements Tokenizer {
  readonly kind = 'bpe';
  readonly vocabSize: number;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly addBos: boolean;
  private readonly ids = new Map<string, number>();
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
    this.vocabSize = tokens.length;
    tokens.forEach((t, i) => {
      if (!this.ids.has(t)) this.ids.set(t, i);
    });
    merges.forEach((m, i) => {
      if (!this.ranks.has(m)) this.ranks.set(m, i);
    });
    this.pre = new RegExp(regex, 'gu');
    this.bos = o.bos;
    this.eos = o.eos;
    this.addBos = o.addBos;
    this.ignoreMerges = o.ignoreMerges;
  }

  encode(text: string): number[] {
    const out: number[] = this.addBos && this.bos !== null ? [this.bos] : [];
    for (const m of text.normalize('NFC').matchAll(this.pre)) out.push(...this.piece(m[0]));
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

export class SpmTokenizer implements Tokenizer {
  readonly kind = 'spm';
  readonly vocabSize: number;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly addBos: boolean;
  private readonly ids = new Map<string, number>();
  private readonly addSpacePrefix: boolean;

  constructor(
    tokens: readonly string[],
    private readonly scores: readonly number[],
    o: Specials & { addSpacePrefix: boolean },
  ) {
    this.vocabSize = tokens.length;
    tokens.forEach((t, i) => {
      if (!this.ids.has(t)) this.ids.set(t, i);
    });
    this.bos = o.bos;
    this.eos = o.eos;
    this.addBos = o.addBos;
    this.addSpacePrefix = o.addSpacePrefix;
  }

  encode(text: string): number[] {
    const out: number[] = this.addBos && this.bos !== null ? [this.bos] : [];
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
