/**
 * App-wide state fed by the engine: the open project, the jobs of that project, notices, and the connection.
 * Views read it through useApp(); they call the engine through `client` and let events update what they show.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import type { AppInfo, JobInfo, ProjectInfo, RuntimeInfo } from '../../../native/api/contract';
import { ClientError, type ConnectionState, type FlaneurClient } from '../client';
import { type Explained, explainError } from '../shell/errors';
import { setFramesProject } from '../shell/media';

export interface Notice {
  id: number;
  kind: 'error' | 'info';
  title: string;
  message: string;
  details?: string | undefined;
  code?: string | undefined;
}

/** The outcome of an engine call whose failure is shown where the user acted (next to a field), not as a notice. */
export type Attempt<T> = { ok: true; value: T } | { ok: false; error: Explained };

interface AppState {
  client: FlaneurClient;
  appInfo: AppInfo | null;
  project: ProjectInfo | null;
  /** False until the first answer from the engine arrived. */
  loaded: boolean;
  jobs: JobInfo[];
  /** Execution providers and the one in use; null until the engine has probed them. */
  runtime: RuntimeInfo | null;
  connection: ConnectionState;
  notices: Notice[];
  notify(notice: Omit<Notice, 'id'>): void;
  dismiss(id: number): void;
  /**
   * Runs an engine call; a failure becomes a notice (its message explained in a sentence) and the promise resolves
   * to undefined. A later success of the same action (same title) removes that action's error notice.
   */
  run<T>(title: string, action: () => Promise<T>): Promise<T | undefined>;
  /** Runs an engine call and returns its error explained instead of raising a notice: show it beside the field. */
  attempt<T>(action: () => Promise<T>): Promise<Attempt<T>>;
  refresh(): Promise<void>;
  /** A set of media items other views hand to the Library (e.g. a lasso on the embedding map). */
  selection: LibrarySelection | null;
  setSelection(s: LibrarySelection | null): void;
}

export interface LibrarySelection {
  label: string;
  mediaIds: number[];
}

const Ctx = createContext<AppState | null>(null);

let nextNoticeId = 1;

export function AppStateProvider({ client, children }: { client: FlaneurClient; children: ReactNode }) {
  const [appInfo, setAppInfo] = useState<AppInfo | null>(null);
  const [project, setProject] = useState<ProjectInfo | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [jobMap, setJobMap] = useState<Map<number, JobInfo>>(new Map());
  const [runtime, setRuntime] = useState<RuntimeInfo | null>(null);
  const [connection, setConnection] = useState<ConnectionState>('connected');
  const [notices, setNotices] = useState<Notice[]>([]);
  const [selection, setSelection] = useState<LibrarySelection | null>(null);

  const notify = useCallback((n: Omit<Notice, 'id'>) => {
    setNotices((list) => [...list.slice(-4), { ...n, id: nextNoticeId++ }]);
  }, []);
  const dismiss = useCallback((id: number) => setNotices((list) => list.filter((n) => n.id !== id)), []);

  const attempt = useCallback(async <T,>(action: () => Promise<T>): Promise<Attempt<T>> => {
    try {
      return { ok: true, value: await action() };
    } catch (err) {
      const e = err instanceof ClientError ? err : null;
      return {
        ok: false,
        error: explainError({
          code: e?.code,
          message: (err as Error).message,
          field: e?.field,
          details: e?.details,
        }),
      };
    }
  }, []);

  const run = useCallback(
    async <T,>(title: string, action: () => Promise<T>): Promise<T | undefined> => {
      const r = await attempt(action);
      if (r.ok) {
        // The action worked this time: its earlier failure no longer applies.
        setNotices((list) => (list.some((n) => n.title === title) ? list.filter((n) => n.title !== title) : list));
        return r.value;
      }
      notify({ kind: 'error', title, message: r.error.message, details: r.error.details, code: r.error.code });
      return undefined;
    },
    [attempt, notify],
  );

  const refresh = useCallback(async () => {
    const [info, current] = await Promise.all([client.call('app.info', {}), client.call('project.current', {})]);
    setAppInfo(info);
    setFramesProject(current?.id ?? null);
    setProject(current);
    const jobs = current ? await client.call('jobs.list', { limit: 200 }) : [];
    setJobMap(new Map(jobs.map((j) => [j.id, j])));
    setLoaded(true);
    // Probing providers takes a moment; the status bar fills in when it is done.
    void client.call('runtime.info', {}).then(setRuntime, () => {});
  }, [client]);

  useEffect(() => {
    const offEvents = client.subscribe((event) => {
      if (event.type === 'job.updated') {
        setJobMap((m) => new Map(m).set(event.job.id, event.job));
      } else if (event.type === 'runtime.changed') {
        setRuntime(event.runtime);
      } else if (event.type === 'project.changed') {
        setFramesProject(event.project?.id ?? null);
        setProject(event.project);
        // A selection names items of the project it was made in.
        setSelection(null);
        setJobMap(new Map());
        if (event.project)
          void client.call('jobs.list', { limit: 200 }).then((jobs) => setJobMap(new Map(jobs.map((j) => [j.id, j]))));
      }
    });
    const offConn = client.onConnection((s) => {
      setConnection(s);
      if (s === 'connected') void refresh().catch(() => {});
    });
    void run('Could not reach the engine', refresh);
    return () => {
      offEvents();
      offConn();
    };
  }, [client, refresh, run]);

  const jobs = useMemo(() => [...jobMap.values()].sort((a, b) => b.id - a.id), [jobMap]);

  const value: AppState = {
    client,
    appInfo,
    project,
    loaded,
    jobs,
    runtime,
    connection,
    notices,
    notify,
    dismiss,
    run,
    attempt,
    refresh,
    selection,
    setSelection,
  };
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useApp(): AppState {
  const v = useContext(Ctx);
  if (!v) throw new Error('useApp outside AppStateProvider');
  return v;
}
