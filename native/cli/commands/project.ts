/** Projects, jobs and browser mode. */
import type { CommandArgs } from '../../api/contract.js';
import { runBrowserMode } from '../../server/browser-mode.js';
import { CliError } from '../errors.js';
import type { Invocation } from '../invocation.js';
import { command, formatJob, type Session } from '../session.js';

export async function serve(inv: Invocation): Promise<void> {
  const port = inv.values.port;
  const project = inv.values.project;
  await runBrowserMode({
    json: inv.json,
    ...(typeof project === 'string' ? { project } : {}),
    ...(typeof port === 'string' ? { port: Number(port) } : {}),
  });
}

export const create = command(
  async (s) => {
    const info = await s.call('project.create', {
      path: s.inv.positionals[0] as string,
      ...(s.opt('name') ? { name: s.opt('name') } : {}),
    });
    // As a new project made in the app: it can extract, track and count at once, with the starter model.
    const starter = s.flag('no-starter-model') ? null : await starterModel(s);
    s.out({ ...info, starterModel: starter }, () =>
      [
        `Created ${info.name} at ${info.path}`,
        starter
          ? `with the starter model #${starter.id} ${starter.name}: ${starter.verdict}`
          : 'with no model yet: `flaneur model import FILE`',
      ].join('\n'),
    );
  },
  { project: false },
);

/**
 * The starter model that ships with Flaneur, registered in the new project (what it is, from its manifest); a copy
 * that ships none creates the project without one and says so.
 */
async function starterModel(s: Session): Promise<{ id: number; name: string; verdict: string } | null> {
  try {
    const m = await s.call('models.addBundled', {});
    return { id: m.id, name: m.name, verdict: m.about?.verdict ?? 'not verified' };
  } catch (err) {
    if (!(err instanceof CliError) || err.code !== 'NOT_FOUND') throw err;
    s.note(`flaneur: ${err.message}`);
    return null;
  }
}

export const info = command(
  async (s) => {
    const p = await s.openProject(s.inv.positionals[0]);
    s.out(p, () =>
      [
        `${p.name}${p.isDemo ? ' (demo)' : ''}`,
        `  path:    ${p.path}`,
        `  schema:  ${p.schemaVersion}`,
        `  created: ${p.createdAt}`,
        `  jobs:    ${p.summary.jobs} (${p.summary.runningJobs} running)`,
      ].join('\n'),
    );
  },
  { project: false },
);

export const check = command(
  async (s) => {
    await s.openProject(s.inv.positionals[0]);
    const report = await s.call('project.check', {});
    s.out(report, () =>
      [
        report.ok ? `The database is intact (checked in ${report.ms} ms).` : report.message,
        report.backup
          ? `Automatic backup: ${report.backup.at} (${report.backup.bytes} bytes)`
          : 'No automatic backup yet.',
      ].join('\n'),
    );
    if (!report.ok) throw new CliError('the project database is damaged (see above)', 'PROJECT_DAMAGED');
  },
  { project: false },
);

export const restoreBackup = command(
  async (s) => {
    const p = await s.call('project.restoreBackup', { path: s.inv.positionals[0] as string });
    s.out(p, () => `Restored the automatic backup of ${p.name} at ${p.path}`);
  },
  { project: false },
);

export const rebuild = command(
  async (s) => {
    const p = await s.call('project.rebuild', { path: s.inv.positionals[0] as string });
    s.out(p, () => `Rebuilt ${p.name} at ${p.path} without its damaged derived tables; run their jobs again.`);
  },
  { project: false },
);

export const recent = command(
  async (s) => {
    const list = await s.call('project.recent', {});
    s.out(
      list,
      () => list.map((r) => `${r.exists ? ' ' : '!'} ${r.name}\t${r.path}\t${r.openedAt}`).join('\n') || '(none)',
    );
  },
  { project: false },
);

const jobId = (s: Session) => s.numbers('id', s.inv.positionals[0] as string, 1)[0] as number;

export const jobsList = command(async (s) => {
  const states = s.list('state') as CommandArgs<'jobs.list'>['states'];
  const list = await s.call('jobs.list', states?.length ? { states } : {});
  s.out(list, () => list.map(formatJob).join('\n') || '(no jobs)');
});

export const jobsShow = command(async (s) => {
  const id = jobId(s);
  const job = await s.call('jobs.get', { id });
  const items = s.flag('items') ? await s.call('jobs.items', { id, limit: 1000 }) : null;
  s.out({ job, items }, () => {
    const lines = [formatJob(job)];
    for (const it of items?.items ?? []) {
      lines.push(`  ${it.status}\t${it.key}${it.error ? `\t${it.error.message}` : ''}`);
    }
    return lines.join('\n');
  });
});

export const jobsCancel = command(async (s) => {
  const job = await s.call('jobs.cancel', { id: jobId(s) });
  s.out(job, () => (job.state === 'running' ? `Asked the running engine to cancel job #${job.id}` : formatJob(job)));
});

export const jobsResume = command(async (s) => {
  const job = await s.call('jobs.resume', { id: jobId(s) });
  const done = await s.waitJob(job);
  s.out(done, () => formatJob(done));
});
