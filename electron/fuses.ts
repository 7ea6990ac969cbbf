/**
 * Electron fuses for a packaged Flaneur: flipped in the Electron binary itself by the packaging step (an
 * electron-builder `afterPack` hook is this module's default export; Electron Forge users would give the same
 * FLANEUR_FUSES to @electron-forge/plugin-fuses). Running from source (`npm start`) uses the stock binary: the
 * app is loaded from build/, not an ASAR, so these fuses apply only to a packaged app.
 *
 *   node --import tsx electron/fuses.ts <path to the packaged app's Electron executable>
 *
 * Off: running the binary as plain Node (ELECTRON_RUN_AS_NODE), NODE_OPTIONS, --inspect: nobody can turn the
 * signed app into a Node interpreter. On: cookie encryption, ASAR integrity validation and loading the app only
 * from its ASAR (a modified app.asar or a loose folder beside it is refused). The engine runs in Electron's
 * utilityProcess, which none of these fuses affects.
 */
import path from 'node:path';
import { type FuseConfig, FuseV1Options, FuseVersion, flipFuses, getCurrentFuseWire } from '@electron/fuses';

export const FLANEUR_FUSES: FuseConfig = {
  version: FuseVersion.V1,
  // Fails the build when a new Electron adds a fuse this list does not decide.
  strictlyRequireAllFuses: true,
  [FuseV1Options.RunAsNode]: false,
  [FuseV1Options.EnableCookieEncryption]: true,
  [FuseV1Options.EnableNodeOptionsEnvironmentVariable]: false,
  [FuseV1Options.EnableNodeCliInspectArguments]: false,
  [FuseV1Options.EnableEmbeddedAsarIntegrityValidation]: true,
  [FuseV1Options.OnlyLoadAppFromAsar]: true,
  [FuseV1Options.LoadBrowserProcessSpecificV8Snapshot]: false,
  [FuseV1Options.GrantFileProtocolExtraPrivileges]: false,
  [FuseV1Options.WasmTrapHandlers]: true,
};

/** Flips Flaneur's fuses in an Electron executable (or a macOS .app); resolves to the fuse wire now in it. */
export async function flipFlaneurFuses(electronBinary: string): Promise<Record<string, unknown>> {
  await flipFuses(electronBinary, {
    ...FLANEUR_FUSES,
    // arm64 macOS apps must be re-signed (ad hoc) after their binary changed; a real signature comes after.
    resetAdHocDarwinSignature: process.platform === 'darwin' && electronBinary.includes('.app'),
  });
  return (await getCurrentFuseWire(electronBinary)) as Record<string, unknown>;
}

interface AfterPackContext {
  appOutDir: string;
  electronPlatformName: string;
  packager: { appInfo: { productFilename: string } };
}

/** electron-builder's afterPack hook: the packaged executable's fuses, before signing. */
export default async function afterPack(context: AfterPackContext): Promise<void> {
  const name = context.packager.appInfo.productFilename;
  const binary =
    context.electronPlatformName === 'darwin' || context.electronPlatformName === 'mas'
      ? path.join(context.appOutDir, `${name}.app`)
      : context.electronPlatformName === 'win32'
        ? path.join(context.appOutDir, `${name}.exe`)
        : path.join(context.appOutDir, name.toLowerCase());
  await flipFlaneurFuses(binary);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const target = process.argv[2];
  if (!target) {
    console.error('usage: node --import tsx electron/fuses.ts <Electron executable or .app>');
    process.exit(2);
  }
  console.log(JSON.stringify(await flipFlaneurFuses(target)));
}
