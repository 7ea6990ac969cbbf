import type { FlaneurClient } from './client';
import { createElectronClient } from './electron-client';
import { createHttpClient } from './http-client';

export type { ConnectionState, FlaneurClient } from './client';
export { ClientError } from './client';

/** Electron's preload provides window.flaneur; anywhere else we are in browser mode. */
export function createClient(): FlaneurClient {
  return window.flaneur ? createElectronClient(window.flaneur) : createHttpClient();
}
