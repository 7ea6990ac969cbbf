import type { CallResponse, CommandName, EngineEvent } from '../../../native/api/contract';
import { type ConnectionState, type FlaneurClient, unwrap } from './client';

/** What electron/preload.cts exposes as window.flaneur. */
export interface FlaneurBridge {
  transport: 'electron';
  call(command: string, args: unknown): Promise<unknown>;
  onEvent(listener: (event: unknown) => void): () => void;
  pickFolder(title?: string): Promise<string | null>;
}

declare global {
  interface Window {
    flaneur?: FlaneurBridge;
  }
}

export function createElectronClient(bridge: FlaneurBridge): FlaneurClient {
  return {
    transport: 'electron',
    async call(command: CommandName, args: unknown) {
      return unwrap((await bridge.call(command, args)) as CallResponse<never>);
    },
    subscribe(listener) {
      return bridge.onEvent((e) => listener(e as EngineEvent));
    },
    onConnection(_listener: (s: ConnectionState) => void) {
      return () => {};
    },
    pickFolder: (title) => bridge.pickFolder(title),
  } as FlaneurClient;
}
