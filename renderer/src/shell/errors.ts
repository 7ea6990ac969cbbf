/**
 * Errors as sentences a person can act on. Engine errors are written for users already (FlaneurError messages);
 * what still reaches the UI raw is mapped here: argument validation (zod's wording and field paths), ONNX Runtime's
 * native messages about providers, and file-format internals. The raw text stays available as details.
 */
export interface ErrorLike {
  code?: string | undefined;
  message: string;
  field?: string | undefined;
  details?: string | undefined;
}

export interface Explained {
  /** What happened and what to do. */
  message: string;
  code?: string | undefined;
  field?: string | undefined;
  /** The original text (and any details the engine gave), for a Details disclosure. */
  details?: string | undefined;
}

/** What to do about a field, where a generic sentence would not say it. Keys are the last part of the field path. */
const FIELD_HINTS: Record<string, string> = {
  examples: 'Add at least one example: choose a frame and give or draw its mask, then build the bank.',
  paths: 'Give at least one folder or file.',
  frames: 'Choose at least one frame.',
  classes: 'Name at least two classes, separated by commas.',
  mediaIds: 'Choose at least one item.',
};

/** What an empty list means, said as a fact (instead of "The examples needs at least one entry"). */
const FIELD_EMPTY: Record<string, string> = {
  examples: 'No example was given.',
  paths: 'No folder or file was given.',
  frames: 'No frame was chosen.',
  mediaIds: 'No item was chosen.',
};

const FIELD_NAMES: Record<string, string> = {
  frameIdx: 'The frame number',
  mediaId: 'The image or video',
  modelId: 'The model',
  runId: 'The feature run',
  bankId: 'The memory bank',
  k: 'The number of results',
};

function fieldName(field: string): string {
  const last =
    field
      .replace(/\[\d+\]$/, '')
      .split('.')
      .pop() ?? field;
  const known = FIELD_NAMES[last];
  if (known) return known;
  const words = last.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return `The ${words}`;
}

/** zod 4's issue text, e.g. "Too small: expected array to have >=1 items", as the end of a sentence. */
function problemOf(zodMessage: string): string {
  let m = /Too small: expected (\w+) to (?:have|be) >=?(\d+(?:\.\d+)?)/.exec(zodMessage);
  if (m) {
    const [, type, n] = m;
    if (type === 'array' || type === 'set') return n === '1' ? 'needs at least one entry' : `needs at least ${n}`;
    if (type === 'string') return n === '1' ? 'is empty' : `needs at least ${n} characters`;
    return `must be at least ${n}`;
  }
  m = /Too big: expected (\w+) to (?:have|be) <=?(\d+(?:\.\d+)?)/.exec(zodMessage);
  if (m) return m[1] === 'array' ? `can have at most ${m[2]} entries` : `must be at most ${m[2]}`;
  if (/received (undefined|null)/.test(zodMessage)) return 'is missing';
  if (/received NaN|expected number/.test(zodMessage)) return 'is not a number';
  if (/expected int/.test(zodMessage)) return 'must be a whole number';
  if (/unknown argument/.test(zodMessage)) return 'is not something this action takes';
  return 'is not valid';
}

export function explainError(err: ErrorLike): Explained {
  const raw = err.details ? `${err.message}\n${err.details}` : err.message;
  const base = { code: err.code, field: err.field, details: raw };
  // The dispatcher's validation message: `segment.createBank: invalid "examples": Too small: …`.
  const v = /^[\w.]+: invalid (?:"([^"]+)"|arguments): (.*)$/s.exec(err.message);
  if (err.code === 'INVALID_ARGUMENT' && v) {
    const field = v[1] ?? err.field ?? '';
    const last =
      field
        .replace(/\[\d+\]$/, '')
        .split('.')
        .pop() ?? '';
    const hint = FIELD_HINTS[last];
    const problem = problemOf(v[2] ?? '');
    const empty = problem === 'needs at least one entry' ? FIELD_EMPTY[last] : undefined;
    const sentence = empty ?? (field ? `${fieldName(field)} ${problem}.` : 'Some of the values given are not valid.');
    return { ...base, message: hint ? `${sentence} ${hint}` : `${sentence} Correct it and try again.` };
  }
  // A bare byte count is meaningless to a person: say what it means for the file.
  if (/header says \d{7,} bytes/.test(err.message)) {
    return {
      ...base,
      message:
        'This file is not a valid model file: its header is damaged, or it is another kind of file renamed. ' +
        'Download or export the weights again and import that file.',
    };
  }
  if (err.code === 'INTERNAL' && /onnxruntime|Ort[A-Z]\w+|\.cc:\d+/.test(err.message)) {
    return {
      ...base,
      message: 'The model could not be run on this device. Try another provider in the Device view (CPU always works).',
    };
  }
  return { ...base, message: err.message, details: err.details };
}

/**
 * Why an execution provider is not available, in a sentence; ONNX Runtime's own text (C++ file names, internal
 * function names) stays in the details.
 */
export function explainProvider(name: string, reason: string | null | undefined): string | null {
  if (!reason) return null;
  switch (name) {
    case 'cuda':
      if (/shared library|not found|cannot open/i.test(reason))
        return 'Not installed: the CUDA provider is a separate download. With an NVIDIA GPU, CUDA 12 and cuDNN 9, run `npm run gpu:cuda` once (needs network).';
      break;
    case 'dml':
      if (/backend not found|not supported|no available backend/i.test(reason)) return 'DirectML runs only on Windows.';
      break;
    case 'coreml':
      if (/backend not found|not supported|no available backend/i.test(reason)) return 'Core ML runs only on macOS.';
      break;
    case 'webgpu':
      if (/adapter/i.test(reason))
        return 'No graphics adapter for WebGPU was found: this machine has no GPU, or no Vulkan (Linux), D3D12 (Windows) or Metal (macOS) driver for it.';
      break;
  }
  // Unknown wording: the first sentence, without source locations.
  const cleaned = reason
    .replace(/\S+\.(cc|cpp|h):\d+\s*/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return cleaned.length > 200 ? `${cleaned.slice(0, 200)}…` : cleaned;
}
