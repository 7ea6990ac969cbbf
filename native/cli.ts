/**
 * `flaneur` — headless commands over the same dispatcher as the UI. `--json` prints machine-readable results.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { CallResponse, CommandArgs, CommandName, CommandResult, EngineEvent, JobInfo } from './api/contract.js';
import { FlaneurError } from './api/errors.js';
import { Engine } from './engine/engine.js';
import { createEngineDispatcher } from './engine/handlers.js';
import { APP_VERSION } from './engine/version.js';
import { adapterLine } from './runtime/webgpu-probe.js';
import { runBrowserMode } from './server/browser-mode.js';
import { defaultHome } from './store/app-home.js';

const USAGE = `flaneur ${APP_VERSION} — learn from images and video without annotations

Usage: flaneur <command> [options]

  serve [--port N] [--project DIR]       run the engine and the UI in browser mode on 127.0.0.1
  project create <dir> [--name NAME]     create a project folder
  project info [<dir>]                   show a project (default: the most recent one)
  project recent                         list recent projects
  jobs list [--state S]                  list the project's jobs
  jobs show <id> [--items]               one job, optionally with its per-item results
  jobs cancel <id>                       cancel a job (also one running in the app)
  jobs resume <id>                       resume an interrupted, failed or cancelled job and wait for it
  hash <folder> [--algorithm A]          hash every file in a folder as a job and wait for it
  add <file-or-folder...> [--fps F | --every N | --keyframes | --scene T] [--size S] [--square]
                                         ingest images and videos into the catalog (a job; waits for it)
  library [--problems]                   the catalog: media, frames, and what could not be read
  media-tools                            the ffmpeg and ffprobe in use
  train [--preset P | --from-model ID] [--steps N] [--batch B] [--seed S]
                                         DINO training on the project's frames (a job; waits; exports a model)
  model import <file.safetensors> [--name N] [--licence L] [--heads H]
                                         validate a DINO/DINOv2 checkpoint and add it to the project
  model list                             the project's models
  embed <image...> --model ID [--size S] [--out FILE.npy|FILE.json]
                                         CLS embeddings of images (JSON on stdout by default)
  device                                 execution providers on this machine and the one in use

Options: --project DIR (default: the most recent project), --json, --help
Environment: FLANEUR_HOME (app data folder), FLANEUR_PROJECT (default project)`;

class CliError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

function formatJob(j: JobInfo): string {
  const p = j.progress;
  const pct = p.total ? ` ${Math.floor((100 * p.done) / p.total)}%` : '';
  const err = j.error ? ` — ${j.error.message}` : '';
  return `#${j.id}\t${j.state}${pct}\t${j.title}\t(${j.items.ok} ok, ${j.items.failed} failed, ${j.items.skipped} skipped)${err}`;
}

/** Writes vectors as .npy (float32, C order) or JSON, by extension. */
export function writeVectors(file: string, vectors: number[][], dim: number): void {
  if (file.endsWith('.json')) {
    fs.writeFileSync(file, JSON.stringify(vectors));
    return;
  }
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${vectors.length}, ${dim}), }`;
  header += `${' '.repeat(64 - ((10 + header.length + 1) % 64))}\n`;
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Float32Array.from(vectors.flat());
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(body.buffer)]));
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      project: { type: 'string' },
      name: { type: 'string' },
      port: { type: 'string' },
      state: { type: 'string', multiple: true },
      items: { type: 'boolean', default: false },
      algorithm: { type: 'string' },
      licence: { type: 'string' },
      heads: { type: 'string' },
      model: { type: 'string' },
      size: { type: 'string' },
      out: { type: 'string' },
      fps: { type: 'string' },
      every: { type: 'string' },
      keyframes: { type: 'boolean', default: false },
      scene: { type: 'string' },
      square: { type: 'boolean', default: false },
      problems: { type: 'boolean', default: false },
      preset: { type: 'string' },
      'from-model': { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      seed: { type: 'string' },
    },
  });
  const [group, action, ...rest] = positionals;
  const json = values.json ?? false;
  if (values.help || !group) {
    console.log(USAGE);
    return group || values.help ? 0 : 2;
  }

  if (group === 'serve') {
    try {
      await runBrowserMode({
        json,
        ...(values.project ? { project: values.project } : {}),
        ...(values.port ? { port: Number(values.port) } : {}),
      });
    } catch (err) {
      // A locked project (another `serve` owns it), a damaged one or a port in use: the message, not a trace.
      const code = err instanceof FlaneurError ? err.code : ((err as NodeJS.ErrnoException).code ?? 'INTERNAL');
      const message = (err as Error).message;
      if (json) console.log(JSON.stringify({ ok: false, error: { code, message } }));
      else console.error(`flaneur: ${message}`);
      return 1;
    }
    return -1; // keeps running
  }

  const engine = new Engine({ home: defaultHome(), whenLocked: 'observe', runner: { autoResume: false } });
  const dispatcher = createEngineDispatcher(engine);
  const call = async <K extends CommandName>(command: K, args: CommandArgs<K>): Promise<CommandResult<K>> => {
    const res = (await dispatcher.dispatch(command, args)) as CallResponse<CommandResult<K>>;
    if (!res.ok) throw new CliError(res.error.message, res.error.code);
    return res.result;
  };
  const out = (value: unknown, human: () => string) => console.log(json ? JSON.stringify(value, null, 2) : human());
  const openProjectArg = async (dir?: string) => {
    const target =
      dir ?? values.project ?? process.env.FLANEUR_PROJECT ?? engine.home.recent().find((r) => r.exists)?.path;
    if (!target) throw new CliError('No project given and no recent project. Use --project DIR.', 'NO_PROJECT', 2);
    return call('project.open', { path: target });
  };
  const waitFor = async (id: number): Promise<JobInfo> => {
    const stop = engine.on((e: EngineEvent) => {
      if (!json && e.type === 'job.updated' && e.job.id === id && e.job.state === 'running') {
        const p = e.job.progress;
        process.stderr.write(`\r${p.phase} ${p.done}${p.total !== null ? `/${p.total}` : ''} ${p.unit}   `);
      }
    });
    const onSigint = () => void engine.close();
    process.once('SIGINT', onSigint);
    await engine.requireProject().runner.idle();
    process.off('SIGINT', onSigint);
    stop();
    if (!json) process.stderr.write('\n');
    return call('jobs.get', { id });
  };

  try {
    switch (`${group} ${action ?? ''}`.trim()) {
      case 'project create': {
        if (!rest[0]) throw new CliError('project create needs a folder', 'INVALID_ARGUMENT', 2);
        const info = await call('project.create', {
          path: rest[0] ?? '',
          ...(values.name ? { name: values.name } : {}),
        });
        out(info, () => `Created ${info.name} at ${info.path}`);
        break;
      }
      case 'project info':
      case 'project open': {
        const info = await openProjectArg(rest[0]);
        out(info, () =>
          [
            `${info.name}${info.isDemo ? ' (demo)' : ''}`,
            `  path:    ${info.path}`,
            `  schema:  ${info.schemaVersion}`,
            `  created: ${info.createdAt}`,
            `  jobs:    ${info.summary.jobs} (${info.summary.runningJobs} running)`,
          ].join('\n'),
        );
        break;
      }
      case 'project recent': {
        const list = await call('project.recent', {});
        out(
          list,
          () => list.map((r) => `${r.exists ? ' ' : '!'} ${r.name}\t${r.path}\t${r.openedAt}`).join('\n') || '(none)',
        );
        break;
      }
      case 'jobs list': {
        await openProjectArg();
        const states = values.state as CommandArgs<'jobs.list'>['states'];
        const list = await call('jobs.list', states ? { states } : {});
        out(list, () => list.map(formatJob).join('\n') || '(no jobs)');
        break;
      }
      case 'jobs show': {
        await openProjectArg();
        const id = Number(rest[0]);
        const job = await call('jobs.get', { id });
        const items = values.items ? await call('jobs.items', { id, limit: 1000 }) : null;
        out({ job, items }, () => {
          const lines = [formatJob(job)];
          for (const it of items?.items ?? []) {
            lines.push(`  ${it.status}\t${it.key}${it.error ? `\t${it.error.message}` : ''}`);
          }
          return lines.join('\n');
        });
        break;
      }
      case 'jobs cancel': {
        await openProjectArg();
        const job = await call('jobs.cancel', { id: Number(rest[0]) });
        out(job, () =>
          job.state === 'running' ? `Asked the running engine to cancel job #${job.id}` : formatJob(job),
        );
        break;
      }
      case 'jobs resume': {
        await openProjectArg();
        const job = await call('jobs.resume', { id: Number(rest[0]) });
        const done = await waitFor(job.id);
        out(done, () => formatJob(done));
        break;
      }
      case 'model import': {
        await openProjectArg();
        if (!rest[0]) throw new CliError('model import needs a .safetensors file', 'INVALID_ARGUMENT', 2);
        const info = await call('models.import', {
          path: rest[0],
          ...(values.name ? { name: values.name } : {}),
          ...(values.licence ? { licence: values.licence } : {}),
          ...(values.heads ? { heads: Number(values.heads) } : {}),
        });
        const a = info.architecture;
        out(
          info,
          () =>
            `#${info.id} ${info.name}: ${a.family} ViT, patch ${a.patchSize}, dim ${a.dim}, depth ${a.depth}, ${a.heads} heads${a.registers ? `, ${a.registers} registers` : ''} (${(info.params / 1e6).toFixed(1)}M params, ${info.scheme} names, ${info.sourceDtype})`,
        );
        break;
      }
      case 'model list': {
        await openProjectArg();
        const list = await call('models.list', {});
        out(
          list,
          () =>
            list
              .map(
                (m) =>
                  `#${m.id}\t${m.name}\t${m.architecture.family} p${m.architecture.patchSize} d${m.architecture.dim}\t${(m.params / 1e6).toFixed(1)}M\t${m.sha256.slice(0, 12)}`,
              )
              .join('\n') || '(no models)',
        );
        break;
      }
      case 'library': {
        await openProjectArg();
        const list = await call('library.list', { limit: 1000, ...(values.problems ? { withProblem: true } : {}) });
        out(list, () =>
          [
            `${list.counts.images} images, ${list.counts.videos} videos, ${list.counts.frames} frames, ${list.counts.failed} failed`,
            ...list.items.map(
              (m) =>
                `#${m.id}\t${m.status}\t${m.kind}\t${m.frameCount} frames\t${m.name}${m.problem ? `\t[${m.problem.code}] ${m.problem.message}` : ''}`,
            ),
          ].join('\n'),
        );
        break;
      }
      case 'train': {
        await openProjectArg();
        const preset = (values.preset ?? 'vit_ti16') as 'vit_ti16' | 'vit_s16' | 'vit_b16' | 'vit_s8' | 'tiny';
        const job = await call('train.start', {
          init: values['from-model']
            ? { kind: 'model', id: Number(values['from-model']) }
            : { kind: 'scratch', preset },
          ...(values.steps ? { steps: Number(values.steps) } : {}),
          ...(values.batch ? { batch: Number(values.batch) } : {}),
          ...(values.seed ? { seed: Number(values.seed) } : {}),
        });
        const done = await waitFor(job.id);
        out(done, () => formatJob(done));
        break;
      }
      case 'media-tools': {
        const t = await call('media.tools', {});
        out(
          t,
          () =>
            `ffmpeg:  ${t.ffmpeg.version} (${t.ffmpeg.source}: ${t.ffmpeg.path})\nffprobe: ${t.ffprobe.version} (${t.ffprobe.source}: ${t.ffprobe.path})`,
        );
        break;
      }
      case 'device': {
        const info = await call('runtime.info', {});
        out(info, () =>
          [
            `onnxruntime ${info.ortVersion}, ${info.cpus} CPU threads, provider setting: ${info.settings.provider}`,
            ...info.providers.flatMap((p) => [
              `  ${p.available ? 'yes' : 'no '} ${p.name}${p.reason ? `  (${p.reason})` : ''}`,
              ...(p.adapter ? [`      adapter: ${adapterLine(p.adapter)}`] : []),
              ...(p.autoSkip ? [`      auto: ${p.autoSkip}`] : []),
            ]),
          ].join('\n'),
        );
        break;
      }
      default: {
        if (group === 'embed' && action) {
          await openProjectArg();
          if (!values.model)
            throw new CliError('embed needs --model ID (see `flaneur model list`)', 'INVALID_ARGUMENT', 2);
          const res = await call('models.embed', {
            id: Number(values.model),
            paths: [action, ...rest],
            ...(values.size ? { size: Number(values.size) } : {}),
          });
          if (values.out) {
            writeVectors(values.out, res.vectors, res.dim);
            console.error(`wrote ${res.vectors.length} x ${res.dim} to ${values.out} (${res.provider})`);
          } else {
            console.log(JSON.stringify(res));
          }
          break;
        }
        if (group === 'add' && action) {
          await openProjectArg();
          const sampling: CommandArgs<'library.add'>['sampling'] = values.keyframes
            ? { policy: 'keyframes' }
            : values.every
              ? { policy: 'every', n: Number(values.every) }
              : values.scene
                ? { policy: 'scene', threshold: Number(values.scene) }
                : { policy: 'fps', fps: Number(values.fps ?? 1) };
          const job = await call('library.add', {
            paths: [action, ...rest],
            sampling,
            frameSize: { mode: values.square ? 'square' : 'short-side', size: Number(values.size ?? 224) },
          });
          const done = await waitFor(job.id);
          out(done, () => formatJob(done));
          break;
        }
        if (group === 'hash' && action) {
          await openProjectArg();
          const algorithm = values.algorithm as CommandArgs<'ingest.hashFolder'>['algorithm'];
          const job = await call('ingest.hashFolder', { root: action, ...(algorithm ? { algorithm } : {}) });
          const done = await waitFor(job.id);
          out(done, () => formatJob(done));
          break;
        }
        throw new CliError(`Unknown command: ${positionals.join(' ')}\n\n${USAGE}`, 'UNKNOWN_COMMAND', 2);
      }
    }
    return 0;
  } catch (err) {
    const e = err instanceof CliError ? err : new CliError((err as Error).message, 'INTERNAL');
    if (json) console.log(JSON.stringify({ ok: false, error: { code: e.code, message: e.message } }));
    else console.error(`flaneur: ${e.message}`);
    return e.exitCode;
  } finally {
    await engine.close();
  }
}
