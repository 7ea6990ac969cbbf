/**
 * Peak memory and speed of a GGUF language model kept quantised vs dequantised to float32 (issue 29: "mmap,
 * quantised weights"). Writes a random Llama of `--dim` / `--layers` (vocabulary 32000) as GGUF in a Q4_K_M-style
 * mix (Q4_K; attn_v and ffn_down Q6_K in the first, last and every third layer) or `--type`, then loads it in a fresh
 * process per mode and reports the process's peak RSS (getrusage), the load's CPU seconds, tokens per second over
 * 64 prompts of 24 tokens, and the worst relative feature difference to the float32 mode.
 *
 * `--llama3-8b`: Meta-Llama-3-8B.Q4_K_M's header over a sparse file (zero weights: the same sizes and work) run
 * kept quantised only (`--initializers`: inside per-layer graphs), 4 prompts of 16 tokens (float32 would need ~30 GB);
 * the float32 mode's refusal is printed.
 *
 * Run: node --import tsx tools/llama-quant-memory.ts [--dim 1024] [--layers 8] [--type Q4_K_M|Q8_0|Q4_0] [--dir D]
 *      node --import tsx tools/llama-quant-memory.ts --llama3-8b [--initializers] [--dir D]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlamaEncoder, openGgufLlama } from '../native/text/llama.js';
import {
  llama3_8bQ4KMHeader,
  randomLlamaWeights,
  tinyLlamaConfig,
  writeTinyLlama,
} from '../tests/helpers/llama-models.js';

type Mode = 'f32' | 'quantised' | 'quantised-initializers';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] as string) : fallback;
}

async function child(file: string, mode: Mode, out: string, prompts = 64, tokens = 24): Promise<void> {
  const cpu0 = process.cpuUsage();
  const src = openGgufLlama(file);
  const enc = await LlamaEncoder.load(src, {
    runtime: { provider: 'cpu', threads: 1 },
    dequantize: mode === 'f32',
    weights: mode === 'quantised-initializers' ? 'initializers' : 'inputs',
  });
  const load = process.cpuUsage(cpu0);
  const loaded = { rss: process.memoryUsage().rss, peak: process.resourceUsage().maxRSS * 1024 };
  const seqs = Array.from({ length: prompts }, (_, i) =>
    Array.from({ length: tokens }, (_, t) => (i * 31 + t * 7) % 32000),
  );
  const cpu1 = process.cpuUsage();
  const t0 = performance.now();
  const feats = await enc.encodeIds(seqs);
  const wall = (performance.now() - t0) / 1000;
  const run = process.cpuUsage(cpu1);
  fs.writeFileSync(
    out,
    JSON.stringify({
      mode,
      rss_after_load_mb: Math.round(loaded.rss / 2 ** 20),
      peak_rss_load_mb: Math.round(loaded.peak / 2 ** 20),
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      held_weights_mb: Math.round(enc.info.weightBytes / 2 ** 20),
      estimate_mb: Math.round(enc.info.memoryBytes / 2 ** 20),
      load_cpu_s: +((load.user + load.system) / 1e6).toFixed(2),
      encode_cpu_s: +((run.user + run.system) / 1e6).toFixed(2),
      tokens_per_s: +((prompts * tokens) / wall).toFixed(1),
      features: feats.map((f) => Array.from(f)),
    }),
  );
  await enc.close();
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [file, mode, out, prompts, tokens] = process.argv.slice(3) as [string, Mode, string, string, string];
    await child(file, mode, out, Number(prompts), Number(tokens));
    return;
  }
  if (process.argv.includes('--llama3-8b')) {
    const dir = arg('dir', fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-quant-8b-')));
    const file = path.join(dir, 'Meta-Llama-3-8B.Q4_K_M.gguf');
    const { header, fileBytes } = llama3_8bQ4KMHeader();
    fs.writeFileSync(file, header);
    fs.truncateSync(file, fileBytes);
    const src = openGgufLlama(file);
    let f32 = '';
    try {
      await LlamaEncoder.load(src, { dequantize: true, totalMemory: Math.min(os.totalmem(), 32 * 2 ** 30) });
    } catch (err) {
      f32 = (err as Error).message;
    }
    const out = path.join(dir, 'quantised.json');
    const self = fileURLToPath(import.meta.url);
    const mode: Mode = process.argv.includes('--initializers') ? 'quantised-initializers' : 'quantised';
    execFileSync(process.execPath, ['--import', 'tsx', self, '--child', file, mode, out, '4', '16'], {
      stdio: 'inherit',
    });
    const { features, ...r } = JSON.parse(fs.readFileSync(out, 'utf8'));
    console.log(
      JSON.stringify(
        { summary: src.info.summary, float32: f32 || 'loaded', quantised: r, load_average: os.loadavg() },
        null,
        2,
      ),
    );
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const dim = Number(arg('dim', '1024'));
  const layers = Number(arg('layers', '8'));
  const type = arg('type', 'Q4_K_M');
  const dir = arg('dir', fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-quant-mem-')));
  const c = tinyLlamaConfig({
    vocab_size: 32000,
    hidden_size: dim,
    intermediate_size: Math.round((dim * 2.75) / 256) * 256,
    num_hidden_layers: layers,
    num_attention_heads: dim / 64,
    num_key_value_heads: dim / 256,
  });
  const more = (i: number) => i < layers / 8 || i >= (7 * layers) / 8 || (i - Math.floor(layers / 8)) % 3 === 2;
  const existing = path.join(dir, 'model', 'model.gguf');
  const file = fs.existsSync(existing)
    ? existing
    : writeTinyLlama(path.join(dir, 'model'), 'gguf', randomLlamaWeights(c, 5), c, {
        type: type === 'Q4_K_M' ? 'Q4_K' : (type as 'Q8_0' | 'Q4_0'),
        tokenizer: 'none',
        typeOf:
          type === 'Q4_K_M'
            ? (name) => {
                const m = /^blk\.(\d+)\.(attn_v|ffn_down)/.exec(name);
                return m && more(Number(m[1])) ? 'Q6_K' : undefined;
              }
            : undefined,
      });
  const results: Record<string, { features: number[][] } & Record<string, unknown>> = {};
  for (const mode of ['f32', 'quantised', 'quantised-initializers'] as Mode[]) {
    const out = path.join(dir, `${mode}.json`);
    execFileSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', file, mode, out, '64', '24'],
      {
        stdio: 'inherit',
      },
    );
    results[mode] = JSON.parse(fs.readFileSync(out, 'utf8'));
  }
  const ref = results.f32?.features as number[][];
  const report: Record<string, unknown> = {
    model: {
      dim,
      layers,
      ffn: c.intermediate_size,
      vocab: c.vocab_size,
      type,
      file_mb: Math.round(fs.statSync(file).size / 2 ** 20),
    },
    load_average: os.loadavg().map((x) => +x.toFixed(2)),
  };
  for (const [mode, r] of Object.entries(results)) {
    const { features, ...rest } = r;
    let worst = 0;
    features.forEach((f, i) => {
      const g = ref[i] as number[];
      const scale = Math.max(...g.map(Math.abs));
      worst = Math.max(worst, Math.max(...f.map((x, j) => Math.abs(x - (g[j] as number)))) / scale);
    });
    report[mode] = { ...rest, max_rel_feature_diff_vs_f32: Number(worst.toExponential(2)) };
  }
  console.log(JSON.stringify(report, null, 2));
}

await main();
