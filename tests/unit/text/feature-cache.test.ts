/** Text features are computed once per (model, text) and kept in the project's SQLite. */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Project } from '../../../native/store/project.js';
import { cachedTextFeatures, textModelKey } from '../../../native/text/feature-cache.js';
import { LlamaEncoder, openGgufLlama } from '../../../native/text/llama.js';
import { randomLlamaWeights, type TinyLlamaConfig, writeTinyLlama } from '../../helpers/llama-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const config: TinyLlamaConfig = {
  vocab_size: 300,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  bos_token_id: 1,
  eos_token_id: 2,
};

describe('text feature cache', () => {
  const dir = tmpDir('flaneur-textcache-');
  let project: Project;
  let encoder: LlamaEncoder;
  let file: string;
  let encoded: string[] = [];

  beforeAll(async () => {
    project = Project.create(path.join(dir, 'project'), { appVersion: 'test' });
    file = writeTinyLlama(path.join(dir, 'a'), 'gguf', randomLlamaWeights(config, 3), config);
    encoder = await LlamaEncoder.load(openGgufLlama(file), { runtime: { provider: 'cpu', threads: 1 } });
  });
  afterAll(async () => {
    await encoder.close();
    project.close();
  });

  // the real encoder, recording what it was asked to encode
  const counting = {
    encodeTexts: async (texts: readonly string[]) => {
      encoded.push(...texts);
      return encoder.encodeTexts(texts);
    },
  };

  it('encodes each new text once and reads it back unchanged afterwards', async () => {
    const key = textModelKey(file);
    const texts = ['a photo of a dog', 'the cat on the boat', 'a photo of a dog', 'café'];
    const first = await cachedTextFeatures(counting, project.textFeatures, key, texts, { chunk: 2 });
    expect(first.computed).toBe(3);
    expect(encoded).toEqual(['a photo of a dog', 'the cat on the boat', 'café']);
    expect(first.features[0]).toEqual(first.features[2]);
    expect(project.textFeatures.count(key)).toBe(3);
    encoded = [];
    const again = await cachedTextFeatures(counting, project.textFeatures, key, [...texts, 'a new one']);
    expect(encoded).toEqual(['a new one']);
    expect(again.computed).toBe(1);
    for (let i = 0; i < texts.length; i++) expect(again.features[i]).toEqual(first.features[i]);
    expect((await encoder.encodeTexts(['café']))[0]).toEqual(again.features[3]);
  });

  it('keys features by the model file, so another model computes its own', () => {
    const other = writeTinyLlama(path.join(dir, 'b'), 'gguf', randomLlamaWeights(config, 4), config);
    expect(textModelKey(other)).not.toBe(textModelKey(file));
    expect(textModelKey(file)).toBe(textModelKey(file));
    expect(project.textFeatures.get(textModelKey(other), ['a photo of a dog']).size).toBe(0);
  });
});
