/**
 * Request/response correlation over any message channel (Electron's utility-process port, Node's child IPC).
 * Both ends speak these messages; the engine side is native/engine/ipc-host.ts.
 */
import type { CallResponse, EngineEvent } from './contract.js';

export type HostRequest =
  | { type: 'call'; id: number; command: string; args: unknown }
  | { type: 'resource'; id: number; path: string }
  | { type: 'shutdown' };

export type HostMessage =
  | { type: 'ready'; pid: number }
  | { type: 'result'; id: number; response: CallResponse }
  | { type: 'resource'; id: number; contentType: string | null; body: Uint8Array | null }
  | { type: 'event'; event: EngineEvent }
  | { type: 'fatal'; message: string };

export interface RpcClient {
  call(command: string, args: unknown): Promise<CallResponse>;
  /** A binary resource (frame image); null body when not found. */
  resource(path: string): Promise<{ contentType: string | null; body: Uint8Array | null }>;
  /** Feed every message that arrives from the host here. */
  receive(message: HostMessage): void;
  /** Fails every call still waiting (the host died). */
  failAll(message: string): void;
}

export function createRpcClient(post: (req: HostRequest) => void, onEvent: (event: EngineEvent) => void): RpcClient {
  let nextId = 1;
  const pending = new Map<number, (r: CallResponse) => void>();
  const pendingResources = new Map<number, (r: { contentType: string | null; body: Uint8Array | null }) => void>();
  return {
    call(command, args) {
      const id = nextId++;
      return new Promise<CallResponse>((resolve) => {
        pending.set(id, resolve);
        try {
          post({ type: 'call', id, command, args });
        } catch (err) {
          pending.delete(id);
          resolve({ ok: false, error: { code: 'INTERNAL', message: `Engine unreachable: ${(err as Error).message}` } });
        }
      });
    },
    resource(path) {
      const id = nextId++;
      return new Promise((resolve) => {
        pendingResources.set(id, resolve);
        try {
          post({ type: 'resource', id, path });
        } catch {
          pendingResources.delete(id);
          resolve({ contentType: null, body: null });
        }
      });
    },
    receive(message) {
      if (message.type === 'resource') {
        const resolve = pendingResources.get(message.id);
        pendingResources.delete(message.id);
        resolve?.({ contentType: message.contentType, body: message.body });
      } else if (message.type === 'result') {
        const resolve = pending.get(message.id);
        pending.delete(message.id);
        resolve?.(message.response);
      } else if (message.type === 'event') {
        onEvent(message.event);
      }
    },
    failAll(message) {
      for (const resolve of pending.values()) resolve({ ok: false, error: { code: 'INTERNAL', message } });
      pending.clear();
      for (const resolve of pendingResources.values()) resolve({ contentType: null, body: null });
      pendingResources.clear();
    },
  };
}
