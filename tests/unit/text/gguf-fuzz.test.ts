/**
 * Damaged and hostile GGUF files: seeded mutations of a tiny model (bytes flipped, counts and lengths overwritten,
 * truncations) are either read or refused with a typed error (INVALID_MODEL / UNSUPPORTED_MODEL), never another
 * exception; reading the header never allocates what the file cannot hold.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlaneurError } from '../../../native/api/errors.js';
import { Rng } from '../../../native/base/rng.js';
import { openGgufLlama } from '../../../native/text/llama.js';
import { llamaGguf, randomLlamaWeights, tinyLlamaConfig } from '../../helpers/llama-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const config = tinyLlamaConfig({
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
});

describe('GGUF mutations', () => {
  const dir = tmpDir('flaneur-gguf-fuzz-');
  const good = llamaGguf(randomLlamaWeights(config, 5), config, { type: 'Q8_0' });
  const headerEnd = good.indexOf(Buffer.from('token_embd.weight')) + 400;

  it('reads every mutation or refuses it with a typed sentence', () => {
    const rng = new Rng(29);
    const outcomes = { read: 0, refused: 0 };
    const file = path.join(dir, 'm.gguf');
    for (let k = 0; k < 300; k++) {
      const buf = Buffer.from(good);
      const kind = k % 4;
      if (kind === 0) {
        for (let i = 0; i < 4; i++) buf[rng.int(headerEnd)] = rng.int(256);
      } else if (kind === 1) {
        // a count or length somewhere in the header made huge
        const at = 8 + rng.int(headerEnd - 16);
        buf.writeBigUInt64LE(BigInt(2 ** 32 + rng.int(2 ** 30)) * BigInt(1 + rng.int(1000)), at);
      } else if (kind === 2) {
        buf.writeUInt32LE(rng.int(40), 8 + rng.int(headerEnd - 12));
      }
      const bytes = kind === 3 ? buf.subarray(0, rng.int(buf.length)) : buf;
      fs.writeFileSync(file, bytes);
      try {
        const src = openGgufLlama(file);
        src.loadWeights();
        src.tokenizer?.encode('a photo of a dog');
        outcomes.read++;
      } catch (err) {
        if (!(err instanceof FlaneurError)) throw new Error(`mutation ${k} (kind ${kind}): ${String(err)}`);
        expect(['INVALID_MODEL', 'UNSUPPORTED_MODEL']).toContain(err.code);
        outcomes.refused++;
      }
    }
    expect(outcomes.refused).toBeGreaterThan(100);
    expect(outcomes.read + outcomes.refused).toBe(300);
  });
});
