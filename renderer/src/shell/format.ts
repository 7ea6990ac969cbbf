/** Small display helpers shared by the views. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function formatRate(rate: number | null, unit: string): string {
  if (rate === null) return '—';
  const v = rate >= 100 ? rate.toFixed(0) : rate >= 10 ? rate.toFixed(1) : rate.toFixed(2);
  return `${v} ${unit}/s`;
}

export function formatTime(iso: string | null): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString();
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatTimestamp(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = seconds - m * 60;
  return `${m}:${s.toFixed(3).padStart(6, '0')}`;
}

/** Display names of the execution providers. */
export const PROVIDER_LABELS: Record<string, string> = {
  cuda: 'NVIDIA CUDA',
  dml: 'DirectML (Windows)',
  coreml: 'Core ML (macOS)',
  webgpu: 'WebGPU',
  cpu: 'CPU',
};

/** "1 video", "2 videos"; `many` for irregular plurals. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Frames are numbered from 1 wherever people read them (player, inputs, results, messages): the frame with index 0
 * in the engine is "frame 1". Indices stay 0-based in the API.
 */
export function frameNumber(index: number): number {
  return index + 1;
}

/** "frame 3 of 80", or "frame 3" when the count is unknown. */
export function frameLabel(index: number, count?: number): string {
  return count === undefined ? `frame ${frameNumber(index)}` : `frame ${frameNumber(index)} of ${count}`;
}
