import { type ComponentType, type KeyboardEvent, useEffect, useRef, useState } from 'react';
import { useApp } from '../state/app-state';
import { ClassifyView } from '../views/classify/ClassifyView';
import { CountView } from '../views/count/CountView';
import { DeviceView } from '../views/device/DeviceView';
import { ProjectView } from '../views/home/ProjectView';
import { JobsView } from '../views/jobs/JobsView';
import { LibraryView } from '../views/library/LibraryView';
import { MapView } from '../views/map/MapView';
import { ModelsView } from '../views/models/ModelsView';
import { PlayerView } from '../views/player/PlayerView';
import { RetrieveView } from '../views/retrieve/RetrieveView';
import { SegmentView } from '../views/segment/SegmentView';
import { TrainView } from '../views/train/TrainView';
import { Notices } from './Notices';
import { StatusBar } from './StatusBar';

interface ViewSpec {
  id: string;
  label: string;
  component: ComponentType;
  /** Shown only with a project open. */
  needsProject: boolean;
}

/** A view is listed here only once it works end to end. */
const VIEWS: readonly ViewSpec[] = [
  { id: 'project', label: 'Project', component: ProjectView, needsProject: false },
  { id: 'library', label: 'Library', component: LibraryView, needsProject: true },
  { id: 'models', label: 'Models', component: ModelsView, needsProject: true },
  { id: 'segment', label: 'Segment', component: SegmentView, needsProject: true },
  { id: 'retrieve', label: 'Retrieve', component: RetrieveView, needsProject: true },
  { id: 'map', label: 'Map', component: MapView, needsProject: true },
  { id: 'classify', label: 'Classify', component: ClassifyView, needsProject: true },
  { id: 'count', label: 'Count', component: CountView, needsProject: true },
  { id: 'train', label: 'Train', component: TrainView, needsProject: true },
  { id: 'jobs', label: 'Jobs', component: JobsView, needsProject: true },
  { id: 'device', label: 'Device', component: DeviceView, needsProject: false },
];

/** Routes: #/<view> or #/player/<mediaId>. */
function viewFromHash(): string {
  const id = window.location.hash.replace(/^#\/?/, '');
  if (/^player\/\d+$/.test(id)) return id;
  return VIEWS.some((v) => v.id === id) ? id : 'project';
}

export function App() {
  const { project, jobs, selection } = useApp();
  const [current, setCurrent] = useState(viewFromHash);
  const navRef = useRef<HTMLElement>(null);
  const available = VIEWS.filter((v) => !v.needsProject || project);
  const view =
    available.find((v) => v.id === (current.startsWith('player/') && project ? 'library' : current)) ??
    available[0] ??
    VIEWS[0];
  const running = jobs.filter((j) => j.state === 'running').length;

  useEffect(() => {
    const onHash = () => setCurrent(viewFromHash());
    window.addEventListener('hashchange', onHash);
    const onKey = (e: globalThis.KeyboardEvent) => {
      // Alt+1..9 switches views from anywhere.
      if (e.altKey && !e.ctrlKey && !e.metaKey && /^[1-9]$/.test(e.key)) {
        const target = available[Number(e.key) - 1];
        if (target) {
          e.preventDefault();
          window.location.hash = `#/${target.id}`;
        }
      }
    };
    window.addEventListener('keydown', onKey);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('keydown', onKey);
    };
  }, [available]);

  // Arrow keys move between navigation entries (roving focus).
  const onNavKey = (e: KeyboardEvent) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const links = [...(navRef.current?.querySelectorAll<HTMLAnchorElement>('a') ?? [])];
    const i = links.indexOf(document.activeElement as HTMLAnchorElement);
    const next = links[(i + (e.key === 'ArrowDown' ? 1 : links.length - 1)) % links.length];
    next?.focus();
    e.preventDefault();
  };

  if (!view) return null;
  const playerId = /^player\/(\d+)$/.exec(current)?.[1];
  const View = view.component;
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className="sidebar">
        <div className="brand">Flaneur</div>
        <nav ref={navRef} aria-label="Views" onKeyDown={onNavKey}>
          {available.map((v, i) => (
            <a
              key={v.id}
              href={`#/${v.id}`}
              aria-current={v.id === view.id ? 'page' : undefined}
              title={`${v.label} (Alt+${i + 1})`}
            >
              {v.label}
              {v.id === 'jobs' && running > 0 && <span className="count">{running}</span>}
              {v.id === 'library' && selection && (
                <span className="count" title={`Filtered: ${selection.label}`} data-testid="nav-library-filtered">
                  filtered
                </span>
              )}
            </a>
          ))}
        </nav>
      </aside>
      <div className="main-column">
        <header className="project-header">
          {project ? (
            <>
              <span className="project-name" data-testid="project-name">
                {project.name}
              </span>
              {project.isDemo && <span className="badge">demo</span>}
              <span className="mono muted project-path">{project.path}</span>
            </>
          ) : (
            <span className="muted">No project open</span>
          )}
        </header>
        <main id="main" tabIndex={-1}>
          {playerId && project ? <PlayerView mediaId={Number(playerId)} /> : <View />}
        </main>
        <StatusBar />
      </div>
      <Notices />
    </div>
  );
}
