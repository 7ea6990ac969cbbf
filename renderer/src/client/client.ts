/**
 * The renderer's one way to reach the engine. Views use this interface; which transport carries it (Electron IPC
 * or browser-mode HTTP/WebSocket) is decided once at start-up.
 */
import type {
  CallResponse,
  CommandArgs,
  CommandName,
  CommandResult,
  EngineEvent,
  ErrorInfo,
} from '../../../native/api/contract';

export type ConnectionState = 'connected' | 'reconnecting';

export interface FlaneurClient {
  readonly transport: 'electron' | 'browser';
  call<K extends CommandName>(command: K, args: CommandArgs<K>): Promise<CommandResult<K>>;
  subscribe(listener: (event: EngineEvent) => void): () => void;
  onConnection(listener: (state: ConnectionState) => void): () => void;
  /** The native folder dialog; null where there is none (browser mode): the UI shows a path field instead. */
  readonly pickFolder: ((title: string) => Promise<string | null>) | null;
}

export class ClientError extends Error {
  readonly code: string;
  readonly field: string | undefined;
  readonly details: string | undefined;

  constructor(info: ErrorInfo) {
    super(info.message);
    this.name = 'ClientError';
    this.code = info.code;
    this.field = info.field;
    this.details = info.details;
  }
}

export function unwrap<T>(response: CallResponse<T>): T {
  if (response.ok) return response.result;
  throw new ClientError(response.error);
}
