/**
 * `npm start`: opens the desktop app when the Electron runtime is present; otherwise (offline first launch, a
 * server, `--browser`) runs browser mode and prints the URL. Never downloads anything itself beyond what
 * Electron's own package does on first launch.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { APP_ROOT } from '../native/base/version.js';
import { runBrowserMode } from '../native/server/browser-mode.js';

/** Asks the electron package for its runtime in a child process, so its download noise and failure stay there. */
export function findElectronRuntime(): { path: string } | { error: string } {
  const probe = spawnSync(process.execPath, ['-e', "process.stdout.write(require('electron'))"], {
    cwd: APP_ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (probe.status === 0 && probe.stdout) return { path: probe.stdout.trim() };
  const stderr = `${probe.stderr ?? ''}`;
  if (stderr.includes('failed to install')) return { error: 'its runtime is not downloaded and could not be fetched' };
  const lines = stderr.split('\n').filter((l) => l.includes('Error'));
  return { error: lines.at(-1)?.trim() || `exit code ${probe.status ?? 'none'}` };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      browser: { type: 'boolean', default: false },
      port: { type: 'string' },
      project: { type: 'string' },
    },
    strict: false,
  });
  const project = typeof values.project === 'string' ? values.project : undefined;
  const port = typeof values.port === 'string' ? Number(values.port) : undefined;
  const browser = values.browser === true || process.env.FLANEUR_BROWSER === '1';

  if (!browser) {
    const runtime = findElectronRuntime();
    if ('path' in runtime) {
      const args = [path.join(APP_ROOT, 'build', 'electron', 'main.js'), ...(project ? ['--project', project] : [])];
      const child = spawn(runtime.path, args, { stdio: 'inherit', cwd: APP_ROOT });
      child.on('exit', (code) => process.exit(code ?? 0));
      return;
    }
    console.log(`Electron runtime unavailable (${runtime.error}); starting browser mode instead.`);
  }
  await runBrowserMode({
    ...(project ? { project } : {}),
    ...(port !== undefined && Number.isFinite(port) ? { port } : {}),
  });
}

await main();
