/**
 * The desktop shell: one hardened window showing the bundled UI over app://, and the engine in a utility process.
 * The main process only checks and forwards calls; it holds no application state of its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  app,
  BrowserWindow,
  dialog,
  type IpcMainInvokeEvent,
  ipcMain,
  Menu,
  net,
  protocol,
  session,
  type UtilityProcess,
  utilityProcess,
} from 'electron';
import type { CallResponse, EngineEvent } from '../native/api/contract.js';
import { createRpcClient, type HostMessage, type RpcClient } from '../native/api/rpc.js';
import { CONTENT_SECURITY_POLICY } from '../native/api/security-policy.js';
import { APP_ROOT } from '../native/base/version.js';
import {
  APP_HOST,
  APP_ORIGIN,
  APP_SCHEME,
  checkCall,
  isAllowedNavigation,
  isTrustedSenderUrl,
  resolveAppAsset,
} from './ipc-guard.js';
import { RestartPolicy } from './restart-policy.js';

const RENDERER_DIR = path.join(APP_ROOT, 'build', 'renderer');
const ENGINE_ENTRY = path.join(APP_ROOT, 'build', 'native', 'engine', 'ipc-host-main.js');
const PRELOAD = path.join(APP_ROOT, 'build', 'electron', 'preload.cjs');

protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, stream: true } },
]);

const { values: cli } = parseArgs({ options: { project: { type: 'string' } }, strict: false });

/**
 * The engine in a utility process, restarted if it dies (its jobs resume from their checkpoints): with exponential
 * back-off, and a message to the user after a few deaths in a row (RestartPolicy).
 */
class EngineProcess {
  private child: UtilityProcess | null = null;
  private readonly restarts = new RestartPolicy();
  private startedAt = 0;
  private rpc: RpcClient | null = null;
  private ready: Promise<void> = Promise.resolve();
  private quitting = false;

  constructor(private readonly onEvent: (event: EngineEvent) => void) {}

  start(): void {
    const args = typeof cli.project === 'string' ? ['--project', cli.project] : [];
    const child = utilityProcess.fork(ENGINE_ENTRY, args, { serviceName: 'Flaneur engine', stdio: 'inherit' });
    const rpc = createRpcClient((req) => child.postMessage(req), this.onEvent);
    this.ready = new Promise((resolve) => {
      child.on('message', (msg: HostMessage) => {
        if (msg.type === 'ready') resolve();
        rpc.receive(msg);
      });
    });
    this.startedAt = Date.now();
    child.on('exit', (code) => {
      if (this.quitting) {
        rpc.failAll('The engine stopped.');
        return;
      }
      const next = this.restarts.onExit(Date.now() - this.startedAt);
      rpc.failAll(
        `The engine stopped (exit code ${code}); restarting it in ${(next.delayMs / 1000).toFixed(1)} s. Running jobs resume from their last checkpoint.`,
      );
      this.child = null;
      // Calls until the next start are answered at once instead of waiting on the dead process.
      this.rpc = null;
      this.ready = Promise.resolve();
      if (next.tell) {
        void dialog.showMessageBox({
          type: 'warning',
          title: 'Flaneur engine',
          message: 'The engine keeps stopping',
          detail: this.restarts.message(next.failures, code, next.delayMs),
        });
      }
      setTimeout(() => this.start(), next.delayMs);
    });
    this.child = child;
    this.rpc = rpc;
  }

  async call(command: string, args: unknown): Promise<CallResponse> {
    await this.ready;
    if (!this.rpc) {
      return {
        ok: false,
        error: { code: 'INTERNAL', message: 'The engine is restarting after it stopped; try again in a moment.' },
      };
    }
    return this.rpc.call(command, args);
  }

  async resource(urlPath: string): Promise<{ contentType: string | null; body: Uint8Array | null }> {
    await this.ready;
    if (!this.rpc) return { contentType: null, body: null };
    return this.rpc.resource(urlPath);
  }

  async stop(): Promise<void> {
    this.quitting = true;
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill();
        resolve();
      }, 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.postMessage({ type: 'shutdown' });
    });
  }
}

function sendToWindows(event: EngineEvent): void {
  for (const win of BrowserWindow.getAllWindows()) {
    if (!win.isDestroyed()) win.webContents.send('flaneur:event', event);
  }
}

const engine = new EngineProcess(sendToWindows);

function trusted(event: IpcMainInvokeEvent): boolean {
  return isTrustedSenderUrl(event.senderFrame?.url);
}

function registerIpc(): void {
  ipcMain.handle('flaneur:call', async (event, payload: unknown): Promise<CallResponse> => {
    if (!trusted(event)) return { ok: false, error: { code: 'UNAUTHORIZED', message: 'Untrusted sender' } };
    const refusal = checkCall(payload);
    if (refusal) return refusal;
    const { command, args } = payload as { command: string; args: unknown };
    return engine.call(command, args);
  });
  ipcMain.handle('flaneur:pickFolder', async (event, title: unknown): Promise<string | null> => {
    if (!trusted(event)) return null;
    const win = BrowserWindow.fromWebContents(event.sender);
    const options = {
      title: typeof title === 'string' ? title.slice(0, 200) : 'Choose a folder',
      properties: ['openDirectory', 'createDirectory'] as ('openDirectory' | 'createDirectory')[],
    };
    const res = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    return res.canceled ? null : (res.filePaths[0] ?? null);
  });
}

function registerProtocol(): void {
  protocol.handle(APP_SCHEME, async (request) => {
    const url = new URL(request.url);
    if (url.host === APP_HOST && url.pathname.startsWith('/media/')) {
      // Media by id through the engine: the renderer never names a file path.
      const r = await engine.resource(url.pathname);
      if (!r.body) return new Response('Not found', { status: 404 });
      return new Response(Buffer.from(r.body), {
        // The same address is another image in another project: never reused without asking.
        headers: { 'Content-Type': r.contentType ?? 'application/octet-stream', 'Cache-Control': 'no-cache' },
      });
    }
    let file = resolveAppAsset(RENDERER_DIR, request.url, path.join, path.sep);
    if (file && !fs.existsSync(file) && !path.extname(file)) file = path.join(RENDERER_DIR, 'index.html');
    if (!file || !fs.existsSync(file)) return new Response('Not found', { status: 404 });
    const res = await net.fetch(pathToFileURL(file).toString());
    const headers = new Headers(res.headers);
    headers.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    headers.set('X-Content-Type-Options', 'nosniff');
    return new Response(res.body, { status: res.status, headers });
  });
}

function hardenSession(): void {
  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  ses.setPermissionCheckHandler(() => false);
  // No network at run time: anything but our own scheme is cancelled.
  ses.webRequest.onBeforeRequest({ urls: ['http://*/*', 'https://*/*', 'ws://*/*', 'wss://*/*'] }, (_d, callback) =>
    callback({ cancel: true }),
  );
}

app.on('web-contents-created', (_event, contents) => {
  contents.on('will-navigate', (e, url) => {
    if (!isAllowedNavigation(url)) e.preventDefault();
  });
  contents.on('will-redirect', (e, url) => {
    if (!isAllowedNavigation(url)) e.preventDefault();
  });
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
});

function createWindow(): void {
  const win = new BrowserWindow({
    width: 1400,
    height: 900,
    minWidth: 900,
    minHeight: 600,
    title: 'Flaneur',
    show: false,
    webPreferences: {
      preload: PRELOAD,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      spellcheck: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  void win.loadURL(`${APP_ORIGIN}/`);
}

app.enableSandbox();
const gotLock = app.requestSingleInstanceLock();
if (!gotLock) {
  app.quit();
} else {
  app.on('second-instance', () => {
    const win = BrowserWindow.getAllWindows()[0];
    if (win) {
      if (win.isMinimized()) win.restore();
      win.focus();
    }
  });
  app.whenReady().then(() => {
    Menu.setApplicationMenu(
      Menu.buildFromTemplate([
        { role: 'fileMenu' },
        { role: 'editMenu' },
        { role: 'viewMenu' },
        { role: 'windowMenu' },
      ]),
    );
    hardenSession();
    registerProtocol();
    registerIpc();
    engine.start();
    createWindow();
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) createWindow();
    });
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  let stopped = false;
  app.on('before-quit', (e) => {
    if (stopped) return;
    e.preventDefault();
    void engine.stop().then(() => {
      stopped = true;
      app.quit();
    });
  });
}

export { APP_HOST };
