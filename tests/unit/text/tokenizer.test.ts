/**
 * Tokenizers rebuilt from GGUF metadata, on tiny vocabularies whose right answers can be worked out by hand:
 * byte-level BPE (Llama-3's pre-tokenizer, merge ranks, whole-token shortcut, UTF-8 bytes) and SentencePiece
 * (best-score merges, byte fallback). BOS first, as ShareLock's tokenizer call does.
 */
import { describe, expect, it } from 'vitest';
import type { GgufValue } from '../../../native/text/gguf.js';
import { tokenizerFromGguf } from '../../../native/text/tokenizer.js';
import { tinyBpeVocab, tinySpmVocab } from '../../helpers/llama-models.js';

function bpe(pre = 'llama-bpe', merges?: string[]) {
  const v = tinyBpeVocab(300);
  const meta = new Map<string, GgufValue>([
    ['tokenizer.ggml.model', 'gpt2'],
    ['tokenizer.ggml.pre', pre],
    ['tokenizer.ggml.tokens', v.tokens],
    ['tokenizer.ggml.merges', merges ?? v.merges],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
  ]);
  const tok = tokenizerFromGguf(meta, 'tiny.gguf');
  const names = (ids: number[]) => ids.map((i) => v.tokens[i]);
  return { tok, names };
}

describe('byte-level BPE from GGUF metadata', () => {
  it('splits words with their leading space and merges them by rank, BOS first', () => {
    const { tok, names } = bpe();
    expect(names(tok.encode('a photo of a dog'))).toEqual(['<|begin_of_text|>', 'a', 'Ġphoto', 'Ġof', 'Ġa', 'Ġdog']);
    expect(names(tok.encode('the cat on the boat'))).toEqual([
      '<|begin_of_text|>',
      'the',
      'Ġcat',
      'Ġon',
      'Ġthe',
      'Ġboat',
    ]);
    expect(tok.bos).toBe(1);
    expect(tok.eos).toBe(2);
  });

  it('applies the lowest-ranked merge first: a rank order can leave a word unmerged', () => {
    // With 't h' ranked before 'Ġ t', " the" becomes Ġ + th + e, then 'th e' makes Ġ + the: no merge joins Ġ
    // with th or the (GPT-2's pre-tokenizer, no BOS by default).
    const v = tinyBpeVocab(300);
    const reordered = ['t h', ...v.merges.filter((m) => m !== 't h')];
    const { tok, names } = bpe('llama-bpe', reordered);
    expect(names(tok.encode(' the').slice(1))).toEqual(['Ġthe']); // whole-token shortcut of Llama-3 (ignore_merges)
    const gpt2 = bpe('gpt2', reordered);
    expect(gpt2.names(gpt2.tok.encode(' the'))).toEqual(['Ġ', 'the']);
  });

  it('keeps unmerged pieces as bytes, digits in threes, and UTF-8 as GPT-2 byte characters', () => {
    const { tok, names } = bpe();
    expect(names(tok.encode('dogs!').slice(1))).toEqual(['d', 'o', 'g', 's', '!']);
    expect(names(tok.encode('12345').slice(1))).toEqual(['12', '3', '4', '5']);
    expect(names(tok.encode('café').slice(1))).toEqual(['c', 'a', 'f', 'Ã', '©']);
    expect(names(tok.encode(" it's").slice(1))).toEqual(['Ġ', 'i', 't', "'", 's']);
  });

  it('refuses a pre-tokenizer it does not know, with a sentence', () => {
    expect(() => bpe('deepseek-coder')).toThrow(/pre-tokenizer "deepseek-coder" is not one Flaneur knows/);
  });
});

describe('SentencePiece from GGUF metadata', () => {
  const v = tinySpmVocab();
  const meta = new Map<string, GgufValue>([
    ['tokenizer.ggml.model', 'llama'],
    ['tokenizer.ggml.tokens', v.tokens],
    ['tokenizer.ggml.scores', v.scores],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
  ]);
  const tok = tokenizerFromGguf(meta, 'spm.gguf');
  const names = (ids: number[]) => ids.map((i) => v.tokens[i]);

  it('prepends a space, merges the best-scoring pair first, and adds BOS', () => {
    // ▁ d o g: 'og' (-4) before '▁d' (-5), then '▁dog' (-1.5).
    expect(names(tok.encode('a dog'))).toEqual(['<s>', '▁a', '▁dog']);
    // ▁ p h o t o: 'ho' and '▁p' tie at -6 (leftmost '▁p' first), then '▁pho' (-3), 'to' (-7), '▁photo' (-2.5).
    expect(names(tok.encode('a photo of a dog'))).toEqual(['<s>', '▁a', '▁photo', '▁of', '▁a', '▁dog']);
  });

  it('falls back to byte tokens for characters it has no piece for', () => {
    expect(names(tok.encode('é'))).toEqual(['<s>', '▁', '<0xC3>', '<0xA9>']);
  });
});
