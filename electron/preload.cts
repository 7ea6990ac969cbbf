/**
 * The only bridge between the sandboxed page and the app: a typed `window.flaneur` with a call, an event
 * subscription and the native folder dialog. Nothing else from Electron or Node is exposed.
 */
import electron = require('electron');

const { contextBridge, ipcRenderer } = electron;
type IpcRendererEvent = electron.IpcRendererEvent;

const api = {
  transport: 'electron' as const,
  call(command: string, args: unknown): Promise<unknown> {
    return ipcRenderer.invoke('flaneur:call', { command, args });
  },
  onEvent(listener: (event: unknown) => void): () => void {
    const wrapped = (_e: IpcRendererEvent, event: unknown) => listener(event);
    ipcRenderer.on('flaneur:event', wrapped);
    return () => ipcRenderer.removeListener('flaneur:event', wrapped);
  },
  pickFolder(title?: string): Promise<string | null> {
    return ipcRenderer.invoke('flaneur:pickFolder', title) as Promise<string | null>;
  },
};

export type FlaneurBridge = typeof api;

contextBridge.exposeInMainWorld('flaneur', api);
