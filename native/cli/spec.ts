/**
 * The CLI's command table: names, synopses, options and help, with the code of each command group loaded only when
 * that command runs. Nothing here imports the engine, so `--help` and argument errors answer without loading
 * onnxruntime, SQLite or zod.
 */
import { UsageError } from './errors.js';
import type { CommandSpec, OptionSpec } from './invocation.js';

export type { CommandRun, CommandSpec, Invocation, OptionSpec, OptionValue } from './invocation.js';
export { UsageError };

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  project: { type: 'string', value: 'DIR', help: 'the project (default: $FLANEUR_PROJECT, else the most recent one)' },
  json: { type: 'boolean', help: 'print the result as JSON on stdout (progress stays on stderr)' },
  help: { type: 'boolean', short: 'h', help: 'this help' },
};

const s = (value: string, help: string): OptionSpec => ({ type: 'string', value, help });
const b = (help: string): OptionSpec => ({ type: 'boolean', help });
const many = (value: string, help: string): OptionSpec => ({ type: 'string', value, help, multiple: true });
const none = { min: 0, max: 0, label: '' };
const items = { min: 1, max: Number.POSITIVE_INFINITY, label: 'items' };
const one = (label: string) => ({ min: 1, max: 1, label });

const MODEL = s(
  'ID',
  "registered model (`flaneur model list`; default: the project's default, `flaneur model default`)",
);
const RUN = s('R', 'feature run (`flaneur features runs`; default: the latest, or the latest at --size)');
const RUN_SIZE = s('S', 'without --run: the latest feature run at this input size');
const SIZE = s('S', 'input size: the shorter side in pixels, a multiple of the patch size (default 224)');
const ALL = b('every item of the catalog instead of a list');
const STORED_PIXELS = b(
  "boxes and points in the stored frame's pixels (`flaneur library` shows its size) instead of the source file's",
);
const VECTORS = s('cls|fungi', 'frame vectors: CLS embeddings (default) or FUNGI features');
const TEXT_HEAD = s('ID', 'ShareLock head (`flaneur text models`; default: the newest)');
const TEXT_LLM = s('ID', 'language model (default: the one the head was trained on)');

const projectCmds = () => import('./commands/project.js');
const libraryCmds = () => import('./commands/library.js');
const modelCmds = () => import('./commands/models.js');
const featureCmds = () => import('./commands/features.js');
const segmentCmds = () => import('./commands/segment.js');
const countCmds = () => import('./commands/count.js');
const trackCmds = () => import('./commands/track.js');
const retrieveCmds = () => import('./commands/retrieve.js');
const analyseCmds = () => import('./commands/analyse.js');
const evalCmds = () => import('./commands/eval.js');
const textCmds = () => import('./commands/text.js');

export const ITEMS_HELP = `Items are catalog ids (\`flaneur library\`) or file paths (or a file name that is unique in the catalog).
A frame is ITEM:N, N numbered as in the app's player (the first frame is 1); an image is its frame 1.`;

export const COMMANDS: CommandSpec[] = [
  {
    name: 'serve',
    synopsis: '[--port N]',
    summary: 'run the engine and the UI in browser mode on 127.0.0.1',
    positionals: none,
    options: { port: s('N', 'port (default: a free one)') },
    load: async () => (await projectCmds()).serve,
  },
  {
    name: 'project create',
    synopsis: '<dir> [--name NAME] [--no-starter-model]',
    summary: 'create a project folder, with the starter model that ships with Flaneur (as the app does)',
    positionals: one('a folder'),
    options: {
      name: s('NAME', 'display name'),
      'no-starter-model': b('no starter model: the project starts with no model (`flaneur model import FILE`)'),
    },
    load: async () => (await projectCmds()).create,
  },
  {
    name: 'project info',
    synopsis: '[<dir>]',
    summary: 'show a project (default: the most recent one)',
    positionals: { min: 0, max: 1, label: 'a folder' },
    options: {},
    load: async () => (await projectCmds()).info,
  },
  {
    name: 'project check',
    synopsis: '[<dir>]',
    summary: 'full integrity check of the project database, and its automatic backup',
    positionals: { min: 0, max: 1, label: 'a folder' },
    options: {},
    load: async () => (await projectCmds()).check,
  },
  {
    name: 'project restore-backup',
    synopsis: '<dir>',
    summary: 'put the automatic backup in place of a damaged database (the damaged file is kept beside it)',
    positionals: one('a folder'),
    options: {},
    load: async () => (await projectCmds()).restoreBackup,
  },
  {
    name: 'project rebuild',
    synopsis: '<dir>',
    summary: 'rebuild a project whose damage is only in derived tables (features, tracks…), without them',
    positionals: one('a folder'),
    options: {},
    load: async () => (await projectCmds()).rebuild,
  },
  {
    name: 'project recent',
    synopsis: '',
    summary: 'list recent projects',
    positionals: none,
    options: {},
    load: async () => (await projectCmds()).recent,
  },
  {
    name: 'jobs list',
    synopsis: '[--state S]',
    summary: "list the project's jobs",
    positionals: none,
    options: { state: many('S', 'only jobs in this state (queued, running, done, failed, cancelled, interrupted)') },
    load: async () => (await projectCmds()).jobsList,
  },
  {
    name: 'jobs show',
    synopsis: '<id> [--items]',
    summary: 'one job, optionally with its per-item results',
    positionals: one('a job id'),
    options: { items: b('also list every item with its result or reason') },
    load: async () => (await projectCmds()).jobsShow,
  },
  {
    name: 'jobs cancel',
    synopsis: '<id>',
    summary: 'cancel a job (also one running in the app)',
    positionals: one('a job id'),
    options: {},
    load: async () => (await projectCmds()).jobsCancel,
  },
  {
    name: 'jobs resume',
    synopsis: '<id>',
    summary: 'resume an interrupted, failed or cancelled job and wait for it',
    positionals: one('a job id'),
    options: {},
    load: async () => (await projectCmds()).jobsResume,
  },
  {
    name: 'hash',
    synopsis: '<folder> [--algorithm A]',
    summary: 'hash every file in a folder as a job and wait for it',
    positionals: one('a folder'),
    options: { algorithm: s('A', 'sha256 (default), sha1 or md5') },
    load: async () => (await libraryCmds()).hash,
  },
  {
    name: 'add',
    synopsis: '<file-or-folder…> [--fps F | --every N | --keyframes | --scene T] [--size S] [--square]',
    summary: 'ingest images and videos into the catalog (a job; waits for it)',
    positionals: { min: 1, max: Number.POSITIVE_INFINITY, label: 'files or folders' },
    options: {
      fps: s('F', 'sample videos at F frames per second (default 1)'),
      every: s('N', 'keep every Nth frame'),
      keyframes: b('keep keyframes only (fastest)'),
      scene: s('T', 'keep scene changes above T (0.01-1)'),
      size: s('S', 'shorter side of stored frames in pixels (default 224)'),
      square: b('store S x S frames (squashed) instead of keeping the aspect'),
    },
    load: async () => (await libraryCmds()).add,
  },
  {
    name: 'library',
    synopsis: '[--problems] [--limit N] [--offset N]',
    summary: 'the catalog: media, frames, and what could not be read',
    details:
      'Every item by default (however many); --limit and --offset page through them. --problems also lists the files an import skipped as duplicates of an item.',
    positionals: none,
    options: {
      problems: b('only items that failed or have a warning, and files skipped as duplicates'),
      limit: s('N', 'at most N items (default: all)'),
      offset: s('N', 'skip the first N items (default 0)'),
    },
    load: async () => (await libraryCmds()).library,
  },
  {
    name: 'media-tools',
    synopsis: '',
    summary: 'the ffmpeg and ffprobe in use',
    positionals: none,
    options: {},
    load: async () => (await libraryCmds()).mediaTools,
  },
  {
    name: 'train',
    synopsis:
      '[--objective dino|dora|neco|unco|sharelock] [--preset P | --from-model ID | --base ID] [--media ID,..] [--steps N] [--batch B] [--seed S] [--shots K] [--preview DIR]',
    summary:
      "DINO, Dora or NeCo training on the project's frames (a job; waits; exports a model), an UnCo counter (unco) or a ShareLock head (sharelock)",
    details:
      'ShareLock: --text-model ID (`flaneur text models`), --run R (the vision features; default the latest run), --classes DIR (sub-folder = class; prompts "a photo of a {class}"; --unseen a,b held out, else half the classes drawn with --seed) and/or --captions FILE (CSV path,caption / JSONL / COCO captions; --images-dir for relative paths).',
    positionals: none,
    options: {
      objective: s(
        'O',
        "dino (default), dora (objects tracked through clips), neco (adapt a registered model: patch neighbour consistency), unco (a counter trained on Self-Collages of the frames, on the frozen --base model, default the project's) or sharelock (a text head: --text-model, --classes / --captions)",
      ),
      shots: s('K', 'unco: exemplars per count (default 1; 0 trains an automatic counter)'),
      preview: s(
        'DIR',
        'unco: no training, a preview of what the counter learns from: a few Self-Collages of these settings (--seed) as collage-K.png, density-K.png and counts.json',
      ),
      collages: s('N', 'unco --preview: collages to build (default 4)'),
      preset: s('P', 'architecture from scratch: vit_ti16 (default), vit_s16, vit_b16, vit_s8, tiny'),
      'from-model': s('ID', 'start from a registered model instead'),
      base: s('ID', 'the registered model to start from (same as --from-model; what NeCo adapts)'),
      media: s('ID,..', 'train on these media items only (default: every ingested item)'),
      steps: s('N', 'training steps (default 1000)'),
      batch: s('B', 'images per step (default 32; NeCo 4)'),
      seed: s('S', 'random seed (default 0)'),
      'text-model': s('ID', 'sharelock: the language model (default: the newest)'),
      run: s('R', 'sharelock: the feature run of the vision model (default: the latest)'),
      classes: s('DIR', 'sharelock: a labelled folder (sub-folder = class)'),
      unseen: s('a,b', 'sharelock: classes held out for zero-shot (default: half, drawn with --seed)'),
      captions: s('FILE', 'sharelock: a captions file (CSV, JSONL or COCO captions JSON)'),
      'images-dir': s('DIR', "sharelock: where the captions' relative image paths start (default: the file's folder)"),
      name: s('N', "sharelock: the head's name"),
      hidden: s('H', 'sharelock: hidden width of the language projector (default 4096)'),
      layers: s('L', 'sharelock: linear layers of the language projector (default 4)'),
      'val-fraction': s(
        'F',
        'sharelock: share of the images held out for validation (default 0: none; official 50k images)',
      ),
      'val-every': s('N', 'sharelock: validate every N steps (default 500)'),
      patience: s('N', 'sharelock: stop after N validations without a fall of 0.1 (default 0: never; official 50)'),
    },
    load: async () => (await modelCmds()).train,
  },
  {
    name: 'train export',
    synopsis:
      '<dir> [--objective dino|dora|neco|unco] [--preset P | --from-model ID] [--media ID,..] [--steps N] [--batch B] [--seed S] [--frames auto|copy|decode] [--pool N]',
    summary: "write the same training as a folder for PyTorch's torchrun on other machines (a job; waits)",
    details:
      'The folder holds the frames, run.json, the starting weights, train.py and a README with the torchrun command and how to resume. Same losses as `flaneur train` on the same options.',
    positionals: one('a new or empty folder'),
    options: {
      objective: s(
        'O',
        'dino (default), dora, neco (adapts --base) or unco (a counter on the frozen --base model: Self-Collages built here, train_unco.py there)',
      ),
      preset: s('P', 'architecture from scratch: vit_ti16 (default), vit_s16, vit_b16, vit_s8, tiny'),
      'from-model': s('ID', 'start from a registered model instead'),
      base: s('ID', 'the registered model to start from (same as --from-model)'),
      shots: s('K', 'unco: exemplars per count (default 1; 0: an automatic counter)'),
      pool: s('N', 'unco: training collages built into the folder (default 512)'),
      media: s('ID,..', 'train on these media items only (default: every ingested item)'),
      steps: s('N', 'training steps (default 1000)'),
      batch: s('B', 'images per step (default 32; NeCo 4)'),
      seed: s('S', 'random seed (default 0)'),
      frames: s(
        'F',
        "videos' frames: copy (raw RGB), decode (the source video, decoded there with ffmpeg at the recorded timestamps) or auto (default: decode when the raw frames exceed 512 MiB and the video's size)",
      ),
    },
    load: async () => (await modelCmds()).trainExport,
  },
  {
    name: 'train import',
    synopsis: '<exported dir | checkpoint> [--name N]',
    summary:
      'bring back a run trained with torchrun: its encoder as a model (with provenance) and its curves; an UnCo export: its counter',
    positionals: one(
      'the exported folder, its run/ folder or a checkpoint (UnCo: the folder or out/decoder.safetensors)',
    ),
    options: { name: s('N', 'model name (default: objective, steps and machines)') },
    load: async () => (await modelCmds()).trainImport,
  },
  {
    name: 'model import',
    synopsis: '<file.safetensors> [--name N] [--licence L] [--heads H]',
    summary: 'validate a DINO/DINOv2 checkpoint and add it to the project',
    positionals: one('a .safetensors file'),
    options: {
      name: s('N', 'display name'),
      licence: s('L', 'licence of the weights'),
      heads: s('H', 'attention heads, when not width/64 and no config.json is beside the file'),
    },
    load: async () => (await modelCmds()).modelImport,
  },
  {
    name: 'model starter',
    synopsis: '',
    summary: 'add the starter model that ships with Flaneur (what `project create` adds; again: the one there)',
    positionals: none,
    options: {},
    load: async () => (await modelCmds()).modelStarter,
  },
  {
    name: 'model list',
    synopsis: '',
    summary: "the project's models",
    positionals: none,
    options: {},
    load: async () => (await modelCmds()).modelList,
  },
  {
    name: 'model default',
    synopsis: '[<id>] [--clear]',
    summary: "show or set the project's default model (used by every command without --model)",
    details:
      'Without a choice, the default is the newest model registered (trained, imported or downloaded). --clear forgets the choice.',
    positionals: { min: 0, max: 1, label: 'a model id' },
    options: { clear: b('forget the chosen default (the newest model is the default again)') },
    load: async () => (await modelCmds()).modelDefault,
  },
  {
    name: 'embed',
    synopsis: '<image…> [--model ID] [--size S] [--out FILE.npy|FILE.json]',
    summary: 'CLS embeddings of image files (JSON on stdout by default)',
    positionals: { min: 1, max: 256, label: 'image files' },
    options: { model: MODEL, size: SIZE, out: s('FILE', 'write float32 .npy [n, D] or .json instead') },
    load: async () => (await modelCmds()).embed,
  },
  {
    name: 'device',
    synopsis: '',
    summary: 'execution providers on this machine and the one in use',
    positionals: none,
    options: {},
    load: async () => (await modelCmds()).device,
  },
  {
    name: 'text models',
    synopsis: '',
    summary: "the project's language models and ShareLock heads",
    positionals: none,
    options: {},
    load: async () => (await textCmds()).textModels,
  },
  {
    name: 'text import',
    synopsis: '<file> [--name N]',
    summary: 'add a language model (.gguf; .safetensors with config.json) or a ShareLock head (.safetensors, .ckpt)',
    details:
      'A language model stays where it is (it is large) and is only described here: its size and the memory it needs. A ShareLock head is copied into the project; it says which language model and vision encoder it pairs with.',
    positionals: one('a model file'),
    options: { name: s('N', 'display name') },
    load: async () => (await textCmds()).textImport,
  },
  {
    name: 'text remove',
    synopsis: '<id>',
    summary: 'forget a language model (its file stays) or a ShareLock head (its copy in the project goes)',
    positionals: one('a text model id (`flaneur text models`)'),
    options: {},
    load: async () => (await textCmds()).textRemove,
  },
  {
    name: 'text features',
    synopsis: '<text…> | --file F [--model ID]',
    summary: 'ShareLock text features of a language model (cached in the project), --json prints them',
    positionals: { min: 0, max: Number.POSITIVE_INFINITY, label: 'texts' },
    options: {
      file: s('F', 'a text file, one text per line'),
      model: s('ID', 'the language model (`flaneur text models`; default: the newest)'),
    },
    load: async () => (await textCmds()).textFeatures,
  },
  {
    name: 'features',
    synopsis: '<items…|--all> [--model ID] [--size S] [--square]',
    summary: 'extract CLS and patch features of the items (a job; waits for it)',
    details: `Frames keep their aspect ratio (the shorter side becomes S; the grid follows). Frames already extracted
with the same model, size and resize policy are reused (same run).`,
    positionals: items,
    orAll: true,
    options: {
      all: ALL,
      model: MODEL,
      size: SIZE,
      square: b('squash frames to S x S (as runs before aspect-preserving features) instead of keeping their aspect'),
      batch: s('B', 'images per batch (default: from free memory)'),
    },
    load: async () => (await featureCmds()).extract,
  },
  {
    name: 'features runs',
    synopsis: '',
    summary: 'feature runs: model, input size, grid, frames',
    positionals: none,
    options: {},
    load: async () => (await featureCmds()).runs,
  },
  {
    name: 'features export',
    synopsis: '--out DIR [--run R] [--what cls|patches|both] [--format npy|safetensors] [<items…>]',
    summary: 'write stored features to files, one per frame, with a manifest (a job)',
    details: `Files: DIR/<media id>/<frame>.npy (npy: cls [D] or patches float32 [h, w, D]; with --what both,
<frame>.cls.npy and <frame>.patches.npy) or DIR/<media id>/<frame>.safetensors (tensors "cls" and/or
"patches"). DIR/manifest.json: model, input size, grid, preprocessing, and every frame's source file and time.`,
    positionals: { min: 0, max: Number.POSITIVE_INFINITY, label: 'items' },
    options: {
      run: RUN,
      size: RUN_SIZE,
      out: s('DIR', 'output folder'),
      what: s('W', 'cls, patches (default) or both'),
      format: s('F', 'npy (default) or safetensors'),
    },
    required: ['out'],
    load: async () => (await featureCmds()).exportFeatures,
  },
  {
    name: 'segment bank',
    synopsis: '(--examples DIR [--classes A,B,…] | --cluster K --from ITEM[:N]…) [--run R] [--name N]',
    summary: 'build a memory bank from example masks, or from k-means pseudo-classes',
    details: `--examples DIR: PNG masks named like the image they label
(street.png beside street.jpg; the image is added to the catalog if it is not there yet, and a copy of
an item is that item), or ITEM@N.png for frame N of a catalog item (tour.mp4@12.png, 3@1.png). Masks
may be at the source's size or the stored frame's. Class names: --classes or DIR/classes.txt (one per
line, class 0 first); binary masks without names are background and foreground. The masks' values are recognised (--masks auto):
class ids, 0/255 or 0/1 binary (two classes), palette PNGs (index = class), colour masks, JPEG
noise; a mask whose values do not fit the classes gets a warning on stderr, once per kind (and in
--json's "warnings"). --masks ids reads values as class ids as they are, --masks binary as background and
foreground.
--cluster K --from ITEM[:N]: K pseudo-classes from the patches of those frames (all frames of an item
without :N); name and merge them in the app.`,
    positionals: none,
    options: {
      run: RUN,
      size: RUN_SIZE,
      examples: s('DIR', 'folder of masks'),
      classes: s('A,B,…', 'class names, class 0 first'),
      cluster: s('K', 'number of pseudo-classes'),
      from: many('ITEM[:N]', 'frames to cluster'),
      name: s('N', 'bank name'),
      epochs: s('E', 'views per example (augmented crops after the first; default 1)'),
      memory: s('M', 'keep at most M patches, rare classes first'),
      masks: s('auto|ids|binary', "how the masks' values map to classes (default auto: recognised, with warnings)"),
    },
    load: async () => (await segmentCmds()).bank,
  },
  {
    name: 'segment banks',
    synopsis: '',
    summary: 'memory banks of the project',
    positionals: none,
    options: {},
    load: async () => (await segmentCmds()).banks,
  },
  {
    name: 'segment compare',
    synopsis: '--models ID,ID[,..] [--size S]',
    summary: "in-context segmentation (Hummingbird) of the project's labelled frames per model, e.g. before/after NeCo",
    details:
      'Each frame with a saved mask (Segment view) is segmented with a bank of the others; same frames and banks for every model.',
    positionals: none,
    options: {
      models: s('ID,ID', 'registered models to compare'),
      size: s('S', 'input size (default 224)'),
    },
    required: ['models'],
    load: async () => (await segmentCmds()).compare,
  },
  {
    name: 'segment apply',
    synopsis: '--bank B <items…|--all> --out DIR [--every N] [--truth DIR]',
    summary: 'segment every frame into class-id PNGs at the source resolution + COCO JSON (a job)',
    details: `Writes DIR/masks/<media id>-<frame>.png (pixel = class id) and DIR/coco.json.
--truth DIR: truth masks, named as for segment bank (ITEM@N.png, or name.png beside name.jpg), are
scored: IoU per class and mIoU, over all scored frames (pixels summed) and per frame, at the source
files' own resolution (the resolution of the written masks), as benchmarks score.`,
    positionals: items,
    orAll: true,
    options: {
      bank: s('B', 'memory bank (`flaneur segment banks`)'),
      all: ALL,
      out: s('DIR', 'output folder'),
      every: s('N', 'every Nth frame only (default 1)'),
      truth: s('DIR', 'truth masks to score against'),
      k: s('K', 'neighbours (default 30)'),
    },
    required: ['bank', 'out'],
    load: async () => (await segmentCmds()).apply,
  },
  {
    name: 'count',
    synopsis:
      '<image|ITEM:N> (--box x,y,w,h… [--negative x,y,w,h…] [--threshold T] | --auto) [--roi x,y,x,y,x,y…] [--model ID]',
    summary: 'count objects like the boxed example(s), or repeated things without an example',
    details: `Boxes, region corners (and the points found) are in the source file's pixels, as an image viewer shows
them (rotation applied); --stored-pixels: in the stored frame's. A box outside the picture is refused.
An image file not in the catalog is added first (a copy of an item is that item). Counting reads an image's file at
its own resolution (up to 4096 px), not the smaller stored frame; exemplar counting picks the scale from the
exemplar, --auto tries input sizes from --size up (doubling, tiled) and counts where the repeated things separate.
--negative boxes a look-alike that is not to be counted; --roi counts only inside the polygon.`,
    positionals: one('an image or ITEM:N'),
    options: {
      box: many('x,y,w,h', "an exemplar box (the source file's pixels)"),
      negative: many('x,y,w,h', 'a negative exemplar: something like this is not counted'),
      roi: s('x,y,x,y,x,y…', 'region of interest: the corners of a polygon (3 or more); only inside is counted'),
      threshold: s('T', 'similarity threshold (default: from the exemplars)'),
      auto: b('count without an exemplar'),
      counter: s(
        'JOB',
        "count with a trained UnCo counter (its training job): the density map's sum; --box for its exemplars",
      ),
      'stored-pixels': STORED_PIXELS,
      model: MODEL,
      size: s('S', 'input size (shorter side): the smallest scale of exemplar and of --auto counting (default 224)'),
    },
    load: async () => (await countCmds()).count,
  },
  {
    name: 'count video',
    synopsis:
      'ITEM --box x,y,w,h… [--negative x,y,w,h…] [--roi x,y,x,y,x,y…] [--frame N] [--every N] --out counts.csv [--threshold T] [--model ID] [--counter JOB]',
    summary: 'count in every (Nth) frame of a video with exemplars boxed on one frame (a job)',
    positionals: one('a video item'),
    options: {
      box: many('x,y,w,h', "an exemplar box on the exemplar frame (the source's pixels)"),
      negative: many('x,y,w,h', 'a negative exemplar on the exemplar frame: something like this is not counted'),
      roi: s('x,y,x,y,x,y…', 'region of interest in every frame: the corners of a polygon (3 or more)'),
      frame: s('N', 'the frame the boxes are on (default 1)'),
      every: s('N', 'every Nth frame (default 1)'),
      out: s('FILE', 'CSV: media_id, frame (from 1), time_s, count'),
      counter: s('JOB', "count with a trained UnCo counter (its training job) instead (a job): the density maps' sums"),
      threshold: s('T', 'similarity threshold (default: from the exemplars)'),
      'stored-pixels': STORED_PIXELS,
      model: MODEL,
    },
    required: ['out'],
    load: async () => (await countCmds()).video,
  },
  {
    name: 'track',
    synopsis: 'ITEM [--model ID] [--objects K] [--size S] [--mot out.txt] [--masks DIR]',
    summary: 'discover objects on the first frame and track them through the video (Dora; a job)',
    positionals: one('a video item'),
    options: {
      model: MODEL,
      objects: s('K', 'objects to discover (default 3)'),
      size: SIZE,
      seed: s('S', 'seed of the attention heads drawn (default 0)'),
      mot: s('FILE', 'write MOT Challenge CSV boxes (as the app exports)'),
      masks: s('DIR', "write per-frame PNG instance masks (at the video's own resolution)"),
    },
    load: async () => (await trackCmds()).track,
  },
  {
    name: 'track propagate',
    synopsis:
      'ITEM --masks FILE.png|DIR [--from-frame N] [--out DIR] [--truth DIR] [--context 3 --topk 5 --radius 12 --temperature 0.1 --size 480 --every 1] [--dino] [--direction both]',
    summary: "follow start masks through the whole video (DINO's label propagation; a job)",
    details:
      "Frames are decoded for the run: every frame of the video, or every Nth (--every N), not the library's sample; N of\n--from-frame counts them from 1. Start masks: a PNG of instance ids (palette PNG: index = object; 0/255: one object;\ngray ids), a folder of them named by frame (00000.png is the first), or --track-run R (the objects of a Dora run).\nWrites one palette PNG per frame at the video's size (DAVIS layout), coco.json (RLE) and mot.txt (boxes); --truth DIR\nscores J and F against PNGs named the same way.",
    positionals: one('a video item'),
    options: {
      model: MODEL,
      masks: s('FILE|DIR', 'the start masks'),
      'track-run': s('R', 'start from the objects of this Dora track run instead'),
      'from-frame': s('N', 'the frame the masks belong to (default: 1, or the number in the mask file name)'),
      out: s('DIR', 'output folder (default: <project>/exports/propagate-<job>)'),
      truth: s('DIR', 'truth masks to score J and F against'),
      context: s('N', 'recent predicted frames kept as context beside the first (default 3; DINO: 7)'),
      topk: s('K', 'neighbours each patch takes its label from (default 5)'),
      radius: s('R', 'neighbourhood half-size in patches, 0 = whole frame (default 12)'),
      temperature: s('T', 'affinity exp(cos / T) (default 0.1)'),
      'first-radius': s('R', "the first frame's neighbourhood, 0 = whole frame (default: --radius, DINO's)"),
      'first-prior': s('B', 'weight of the first-frame prior, 0 to 1 (0 = none, as DINO)'),
      reidentify: s(
        'D|off',
        'find lost objects again, cosine margin D over the recent frames (default: --reidentify=-0.05; off: as DINO)',
      ),
      dino: b(
        "DINO's protocol exactly: context 7, top-5, radius 12 for every frame, temperature 0.1, no prior, no re-identification",
      ),
      size: s('S', 'input size: shorter side, 224 to 896 (default 480)'),
      every: s('N', 'every Nth frame of the video (default 1: every frame)'),
      direction: s('D', 'forward, backward or both (default both)'),
      upsample: s('input|source', "bilinear upsampling to the network input (DINO's, default) or to the video's size"),
    },
    load: async () => (await trackCmds()).propagate,
  },
  {
    name: 'eval davis',
    synopsis: 'ROOT --model ID|FILE [--size 480] [--out results.json] [--masks DIR] [--sequences a,b] [--json]',
    summary: 'the DAVIS video object segmentation benchmark: propagate first-frame masks, score J, F, J&F',
    details:
      'ROOT holds JPEGImages/480p/<sequence>/*.jpg and Annotations/480p/<sequence>/*.png (palette PNGs, DAVIS-2016 0/255 or\nDAVIS-2017 ids). Every frame but the first and the last is scored, as the DAVIS toolkit does. Frames and features stay\nin memory: nothing is added to the project. --model FILE.safetensors runs in a temporary project deleted afterwards.',
    positionals: one('a DAVIS folder'),
    options: {
      model: s('ID|FILE', 'a registered model, or a .safetensors file (temporary project)'),
      out: s('FILE', 'write the results (JSON) here too'),
      masks: s('DIR', 'write the predicted masks (DAVIS results layout) here'),
      sequences: s('a,b', 'only these sequences'),
      resolution: s('R', 'the resolution folder (default 480p)'),
      context: s('N', 'recent predicted frames kept as context beside the first (default 3; DINO: 7)'),
      topk: s('K', 'neighbours each patch takes its label from (default 5)'),
      radius: s('R', 'neighbourhood half-size in patches, 0 = whole frame (default 12)'),
      temperature: s('T', 'affinity exp(cos / T) (default 0.1)'),
      'first-radius': s('R', "the first frame's neighbourhood, 0 = whole frame (default: --radius, DINO's)"),
      'first-prior': s('B', 'weight of the first-frame prior, 0 to 1 (0 = none, as DINO)'),
      reidentify: s(
        'D|off',
        'find lost objects again, cosine margin D over the recent frames (default: --reidentify=-0.05; off: as DINO)',
      ),
      dino: b(
        "DINO's protocol exactly: context 7, top-5, radius 12 for every frame, temperature 0.1, no prior, no re-identification",
      ),
      size: s('S', 'input size: shorter side, 224 to 896 (default 480)'),
      upsample: s('input|source', "bilinear upsampling to the network input (DINO's, default) or to the frame's size"),
      'keep-project': b('with --model FILE: keep the temporary project'),
    },
    load: async () => (await evalCmds()).davis,
  },
  {
    name: 'retrieve similar',
    synopsis: 'ITEM[:N] [--k N] [--run R] [--vectors cls|fungi]',
    summary: 'the most similar frames of the library',
    positionals: one('ITEM[:N]'),
    options: { k: s('N', 'results (default 12)'), run: RUN, size: RUN_SIZE, vectors: VECTORS },
    load: async () => (await retrieveCmds()).similar,
  },
  {
    name: 'retrieve text',
    synopsis: '"<query>" [--top N] [--head ID] [--llm ID] [--run R]',
    summary: 'the frames that best match a text (a ShareLock head and its language model; see `flaneur text`)',
    details:
      "Defaults: the project's newest ShareLock head, the language model it was trained on and the newest feature run of its vision encoder (each said on stderr). The language model runs only for a text it has not encoded before.",
    positionals: one('a text'),
    options: {
      top: s('N', 'results (default 24)'),
      head: TEXT_HEAD,
      llm: TEXT_LLM,
      run: s('R', "feature run of the head's vision encoder (default: its newest)"),
    },
    load: async () => (await retrieveCmds()).text,
  },
  {
    name: 'retrieve patch',
    synopsis: 'ITEM:N --at x,y [--k N] [--run R]',
    summary: "the patches most similar to the one at x,y (the source file's pixels)",
    positionals: one('ITEM:N'),
    options: {
      at: s('x,y', "a point in the picture, in the source file's pixels"),
      'stored-pixels': STORED_PIXELS,
      k: s('N', 'results (default 12)'),
      run: RUN,
      size: RUN_SIZE,
    },
    required: ['at'],
    load: async () => (await retrieveCmds()).patch,
  },
  {
    name: 'duplicates',
    synopsis: '[--min 0.95] [--limit N] [--run R]',
    summary: 'near-duplicate frame pairs, most similar first',
    positionals: none,
    options: {
      min: s('S', 'cosine similarity at least S (default 0.95)'),
      limit: s('N', 'pairs (default 100)'),
      run: RUN,
      size: RUN_SIZE,
    },
    load: async () => (await retrieveCmds()).duplicates,
  },
  {
    name: 'map',
    synopsis: '[--vectors cls|fungi] [--method umap|pca] --out map.csv [--run R] [--clusters K]',
    summary: 'a 2-D map of the frames (a job), written as CSV: media_id, path, frame, x, y, cluster',
    positionals: none,
    options: {
      vectors: VECTORS,
      method: s('M', 'umap (default) or pca'),
      out: s('FILE', 'CSV file'),
      run: RUN,
      size: RUN_SIZE,
      clusters: s('K', 'k-means clusters for colouring (default 8)'),
      seed: s('S', 'seed (default 0)'),
    },
    required: ['out'],
    load: async () => (await analyseCmds()).map,
  },
  {
    name: 'classify',
    synopsis: '--train DIR [--test DIR] [--run R] [--vectors cls|fungi] [--k K] | --zero-shot classes.txt [--test DIR]',
    summary:
      'kNN classification of a labelled folder (sub-folder = class), or zero-shot from class names: accuracy and confusion matrix',
    details:
      'The folders must be in the catalog (`flaneur add DIR`). Without --test: leave-one-out over --train.\nWith --zero-shot: class names, one a line (blank lines and lines starting with # skipped), each put in several prompt templates and compared with every frame through a ShareLock head (defaults as `retrieve text`); --test DIR scores the frames under its sub-folders named as the classes (case, _ and - aside), the others are predicted.',
    positionals: none,
    options: {
      train: s('DIR', 'labelled folder'),
      test: s('DIR', 'labelled folder to score'),
      'zero-shot': s('FILE', 'class names, one a line: classify by name with a ShareLock head instead of examples'),
      head: TEXT_HEAD,
      llm: TEXT_LLM,
      run: RUN,
      size: RUN_SIZE,
      vectors: VECTORS,
      k: s('K', 'neighbours (default 20)'),
    },
    load: async () => (await analyseCmds()).classify,
  },
  {
    name: 'fungi',
    synopsis: '[--run R] [<items…>] [--seed S]',
    summary: "FUNGI gradient features of the run's model (a job; ~80x the cost of embeddings)",
    positionals: { min: 0, max: Number.POSITIVE_INFINITY, label: 'items' },
    options: { run: RUN, seed: s('S', 'seed of the random heads (default 0)'), size: SIZE },
    load: async () => (await analyseCmds()).fungi,
  },
];

/** The command named by the leading words of argv (the longest match), and where its own arguments start. */
export function findCommand(words: readonly string[]): { command: CommandSpec; used: number } | null {
  let best: { command: CommandSpec; used: number } | null = null;
  for (const c of COMMANDS) {
    const parts = c.name.split(' ');
    if (parts.every((p, i) => words[i] === p) && (!best || parts.length > best.used))
      best = { command: c, used: parts.length };
  }
  return best;
}

/** Groups that have sub-commands only (`project`, `jobs`, …): their names, for "did you mean" errors. */
export function subcommandsOf(word: string): string[] {
  return COMMANDS.filter((c) => c.name.startsWith(`${word} `)).map((c) => c.name);
}

export function usage(version: string): string {
  const width = 34;
  const lines = COMMANDS.map((c) => {
    const head = `  ${c.name} ${c.synopsis}`.trimEnd();
    return head.length <= width
      ? `${head.padEnd(width + 2)}${c.summary}`
      : `${head}\n${' '.repeat(width + 2)}${c.summary}`;
  });
  return `flaneur ${version} — learn from images and video without annotations

Usage: flaneur <command> [options]      (flaneur <command> --help for its options)

${lines.join('\n')}

${ITEMS_HELP}
Jobs show progress on stderr; results go to stdout (JSON with --json). Exit code 0 on success, 1 when the
engine refuses or a job fails (its reason on stderr), 2 for a mistake in the command line.

Options: --project DIR (default: $FLANEUR_PROJECT, else the most recent project), --json, --help, --version
Environment: FLANEUR_HOME (app data folder), FLANEUR_PROJECT (default project)`;
}

export function commandHelp(c: CommandSpec): string {
  const opts = { ...c.options, ...GLOBAL_OPTIONS };
  const rows = Object.entries(opts).map(([name, o]) => {
    const flag = `--${name}${o.type === 'string' ? ` ${o.value ?? 'X'}` : ''}${o.short ? `, -${o.short}` : ''}`;
    const req = c.required?.includes(name) ? ' (required)' : '';
    return `  ${flag.padEnd(26)}${o.help}${o.multiple ? '' : ''}${req}`;
  });
  return [
    `Usage: flaneur ${c.name} ${c.synopsis}`.trimEnd(),
    '',
    `${c.summary[0]?.toUpperCase() ?? ''}${c.summary.slice(1)}.`,
    ...(c.details ? ['', c.details] : []),
    '',
    'Options:',
    ...rows,
  ].join('\n');
}
