/**
 * Why an execution provider did not load, as a sentence a person can act on. ONNX Runtime's own text (C++ file
 * names, entry points such as OrtSessionOptionsAppendExecutionProvider_Cuda) is what `runtime.info` reports; the
 * CLI's `device` prints this explanation with the raw text after it. The Device view says the same things.
 */
const EXPLAINED: { provider: string; raw: RegExp; say: string }[] = [
  {
    provider: 'cuda',
    raw: /shared library|not found|cannot open/i,
    say: 'Not installed: the CUDA provider is a separate download. With an NVIDIA GPU, CUDA 12 and cuDNN 9, run `npm run gpu:cuda` once (needs network).',
  },
  {
    provider: 'dml',
    raw: /backend not found|not supported|no available backend/i,
    say: 'DirectML runs only on Windows.',
  },
  {
    provider: 'coreml',
    raw: /backend not found|not supported|no available backend/i,
    say: 'Core ML runs only on macOS.',
  },
  {
    provider: 'webgpu',
    raw: /adapter/i,
    say: 'No graphics adapter for WebGPU was found: this machine has no GPU, or no Vulkan (Linux), D3D12 (Windows) or Metal (macOS) driver for it.',
  },
];

/** The sentence for a provider's raw reason; unknown wording: its first 200 characters without source locations. */
export function explainProviderReason(provider: string, reason: string | null | undefined): string | null {
  if (!reason) return null;
  const known = EXPLAINED.find((e) => e.provider === provider && e.raw.test(reason));
  if (known) return known.say;
  const cleaned = reason
    .replace(/\S+\.(cc|cpp|h):\d+\s*/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return cleaned.length > 200 ? `${cleaned.slice(0, 200)}…` : cleaned;
}
