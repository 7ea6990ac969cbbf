import { type FormEvent, useCallback, useEffect, useState } from 'react';
import type { IntegrityReport, RecentProject } from '../../../../native/api/contract';
import { ClientError } from '../../client/client';
import { type Explained, explainError } from '../../shell/errors';
import { formatTime } from '../../shell/format';
import { PathField } from '../../shell/PathField';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';

/** The open project, what is in it, and how to create or open another. */
export function ProjectView() {
  const { client, project, run, attempt, loaded, jobs } = useApp();
  /** Why the last create or open from the forms failed, shown under the folder field. */
  const [createError, setCreateError] = useState<Explained | null>(null);
  const [openError, setOpenError] = useState<Explained | null>(null);
  const [recent, setRecent] = useState<RecentProject[]>([]);
  const [createPath, setCreatePath] = useState('');
  const [createName, setCreateName] = useState('');
  const [openPath, setOpenPath] = useState('');
  /** A project that did not open because its database is damaged: what the engine said, and the way out. */
  const [damaged, setDamaged] = useState<{ path: string; message: string } | null>(null);
  const [check, setCheck] = useState<IntegrityReport | null>(null);
  const [checking, setChecking] = useState(false);

  // A damaged project's options are shown here instead of a passing notice; anything else is notified as usual.
  const openProject = async (path: string, fromForm = false): Promise<boolean> => {
    try {
      await client.call('project.open', { path });
      setDamaged(null);
      setOpenError(null);
      return true;
    } catch (err) {
      if (err instanceof ClientError && err.code === 'PROJECT_DAMAGED') {
        setDamaged({ path, message: err.message });
        return false;
      }
      if (fromForm && err instanceof ClientError) {
        setOpenError(explainError(err));
        return false;
      }
      return Boolean(await run('Could not open the project', () => Promise.reject(err)));
    }
  };
  const repair = async (command: 'project.restoreBackup' | 'project.rebuild', path: string) => {
    const title = command === 'project.rebuild' ? 'Could not rebuild the project' : 'Could not restore the backup';
    if (await run(title, () => client.call(command, { path }))) {
      setDamaged(null);
      setCheck(null);
    }
  };
  const runCheck = async () => {
    setChecking(true);
    setCheck((await run('Could not check the database', () => client.call('project.check', {}))) ?? null);
    setChecking(false);
  };

  const loadRecent = useCallback(async () => {
    setRecent(await client.call('project.recent', {}));
  }, [client]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: the list changes whenever another project opens
  useEffect(() => {
    void run('Could not list recent projects', loadRecent);
  }, [run, loadRecent, project?.id]);

  const [withStarter, setWithStarter] = useState(true);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    const r = await attempt(() =>
      client.call('project.create', { path: createPath, ...(createName ? { name: createName } : {}) }),
    );
    setCreateError(r.ok ? null : r.error);
    if (r.ok) {
      setCreatePath('');
      setCreateName('');
      // A new project can see at once: the starter model that ships with the app (unless the user said no).
      if (withStarter) await run('Could not add the starter model', () => client.call('models.addBundled', {}));
    }
  };
  const open = async (e: FormEvent) => {
    e.preventDefault();
    if (await openProject(openPath, true)) setOpenPath('');
  };

  return (
    <div className="view">
      <header className="view-header">
        <h1>Project</h1>
      </header>

      {damaged && (
        <section className="card" role="alert" data-testid="damaged-project">
          <h2>This project's database is damaged</h2>
          <p>{damaged.message}</p>
          <div className="row-actions">
            <button
              type="button"
              className="primary"
              onClick={() => void repair('project.restoreBackup', damaged.path)}
            >
              Restore the automatic backup
            </button>
            <button type="button" onClick={() => void repair('project.rebuild', damaged.path)}>
              Rebuild without the damaged results
            </button>
            <button type="button" onClick={() => setDamaged(null)}>
              Dismiss
            </button>
          </div>
        </section>
      )}

      {!loaded ? (
        <p className="muted">Connecting to the engine…</p>
      ) : project ? (
        <section className="card" aria-labelledby="current-project">
          <h2 id="current-project">{project.name}</h2>
          <dl className="facts">
            <dt>Folder</dt>
            <dd className="mono">{project.path}</dd>
            <dt>Created</dt>
            <dd>{formatTime(project.createdAt)}</dd>
            <dt>Jobs</dt>
            <dd data-testid="project-jobs">
              {/* The summary is as of the opening; the job list follows every job started since. */}
              {Math.max(project.summary.jobs, jobs.length)} ({jobs.filter((j) => j.state === 'running').length} running)
            </dd>
            <dt>Schema</dt>
            <dd>version {project.schemaVersion}</dd>
          </dl>
          <div className="row-actions">
            <ActionButton
              why={null}
              busy={checking && 'Checking every page of the database…'}
              onClick={() => void runCheck()}
              data-testid="check-database"
            >
              Check database
            </ActionButton>
          </div>
          {check && (
            <div className="callout" data-testid="check-result" role="status">
              {check.ok ? (
                <>
                  <strong>The database is intact</strong> (every page checked in {(check.ms / 1000).toFixed(1)} s).{' '}
                </>
              ) : (
                <>
                  <strong>Damaged:</strong> {check.message}{' '}
                  <button type="button" onClick={() => void repair('project.restoreBackup', project.path)}>
                    Restore the automatic backup
                  </button>{' '}
                  {check.derivedOnly && (
                    <button type="button" onClick={() => void repair('project.rebuild', project.path)}>
                      Rebuild without the damaged results
                    </button>
                  )}{' '}
                </>
              )}
              {check.backup
                ? `Automatic backup: ${formatTime(check.backup.at)} (${(check.backup.bytes / 1e6).toFixed(1)} MB).`
                : 'No automatic backup yet: one is made at the next clean open.'}
            </div>
          )}
          {project.isDemo && (
            <div className="callout" data-testid="demo-note">
              <strong>This is the demo project.</strong> On first start it ingests the bundled sample video — a real
              street scene (OpenCV's vtest, 80 s) — which you can browse in the Library and scrub in the player. It
              comes with the bundled ViT-Ti/16 that Flaneur trained itself on this clip with Dora (Models; 300 steps on
              a laptop-class CPU, so it has learned little — its manifest says how it was made and how it scores).
              Extract features in Segment, then segment, retrieve, map, track and count; import DINO / DINOv2 weights in
              Models for real work.
            </div>
          )}
        </section>
      ) : (
        <section className="card empty">
          <h2>No project open</h2>
          <p>Create a project folder below, open an existing one, or open the demo project.</p>
          <button
            type="button"
            onClick={() => void run('Could not open the demo', () => client.call('project.openDemo', {}))}
          >
            Open the demo project
          </button>
        </section>
      )}

      <div className="grid-2">
        <form className="card" onSubmit={create} aria-labelledby="create-title">
          <h2 id="create-title">New project</h2>
          <p className="muted">A project is a folder: its database, caches and checkpoints live inside it.</p>
          <PathField
            label="Project folder"
            name="create-path"
            value={createPath}
            onChange={(v) => {
              setCreatePath(v);
              setCreateError(null);
            }}
            error={createError}
          />
          <div className="field">
            <label htmlFor="create-name">Name (optional)</label>
            <input id="create-name" value={createName} onChange={(e) => setCreateName(e.target.value)} />
          </div>
          <div className="field">
            <label className="check">
              <input type="checkbox" checked={withStarter} onChange={(e) => setWithStarter(e.target.checked)} /> Add the
              starter model
            </label>
            <span className="muted">
              A small encoder that ships with Flaneur, so features, tracking and counting work at once. It learned
              little: for real results get a published model in Models.
            </span>
          </div>
          <ActionButton
            type="submit"
            className="primary"
            why={!createPath.trim() && 'Type the folder for the new project first.'}
          >
            Create project
          </ActionButton>
        </form>

        <form className="card" onSubmit={open} aria-labelledby="open-title">
          <h2 id="open-title">Open a project</h2>
          <PathField
            label="Existing project folder"
            name="open-path"
            value={openPath}
            onChange={(v) => {
              setOpenPath(v);
              setOpenError(null);
            }}
            error={openError}
          />
          <ActionButton type="submit" why={!openPath.trim() && 'Type the folder of a project first.'}>
            Open
          </ActionButton>
          <h3>Recent</h3>
          {recent.length === 0 ? (
            <p className="muted">No recent projects.</p>
          ) : (
            <ul className="recent">
              {recent.map((r) => (
                <li key={r.path}>
                  <div>
                    <strong>{r.name}</strong>
                    <span className="mono muted"> {r.path}</span>
                    {!r.exists && <span className="badge badge-failed">missing</span>}
                  </div>
                  <div className="row-actions">
                    <ActionButton
                      why={
                        r.path === project?.path
                          ? 'This is the open project.'
                          : !r.exists && 'The folder is gone (moved or deleted).'
                      }
                      onClick={() => void openProject(r.path)}
                    >
                      {r.path === project?.path ? 'Current' : 'Open'}
                    </ActionButton>
                    <button
                      type="button"
                      onClick={() =>
                        void run('Could not update the list', async () => {
                          setRecent(await client.call('project.forgetRecent', { path: r.path }));
                        })
                      }
                    >
                      Forget
                    </button>
                  </div>
                </li>
              ))}
            </ul>
          )}
        </form>
      </div>
    </div>
  );
}
