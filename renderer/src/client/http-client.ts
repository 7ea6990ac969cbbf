import type { CallResponse, CommandName, EngineEvent } from '../../../native/api/contract';
import { ClientError, type ConnectionState, type FlaneurClient, unwrap } from './client';

/**
 * Browser mode: calls are POST /api/call, events arrive on a WebSocket. The launch token travels in the HttpOnly
 * cookie the server set on first load, so page code never sees it.
 */
export function createHttpClient(base = ''): FlaneurClient {
  const listeners = new Set<(e: EngineEvent) => void>();
  const connectionListeners = new Set<(s: ConnectionState) => void>();
  let socket: WebSocket | null = null;
  let retryMs = 250;

  const setState = (s: ConnectionState) => {
    for (const l of connectionListeners) l(s);
  };

  const connect = () => {
    const url = new URL('/api/events', base || window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = () => {
      retryMs = 250;
      setState('connected');
    };
    ws.onmessage = (m) => {
      const event = JSON.parse(String(m.data)) as EngineEvent;
      for (const l of listeners) l(event);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      setState('reconnecting');
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    };
  };

  return {
    transport: 'browser',
    async call(command: CommandName, args: unknown) {
      let res: Response;
      try {
        res = await fetch(`${base}/api/call`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          credentials: 'same-origin',
          body: JSON.stringify({ command, args }),
        });
      } catch (err) {
        throw new ClientError({
          code: 'UNREACHABLE',
          message: `The engine is not reachable: ${(err as Error).message}`,
        });
      }
      const body = (await res.json()) as CallResponse<never>;
      return unwrap(body);
    },
    subscribe(listener) {
      listeners.add(listener);
      if (!socket) connect();
      return () => listeners.delete(listener);
    },
    onConnection(listener) {
      connectionListeners.add(listener);
      return () => connectionListeners.delete(listener);
    },
    pickFolder: null,
  } as FlaneurClient;
}
