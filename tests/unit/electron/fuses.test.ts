import fs from 'node:fs';
import path from 'node:path';
import { FuseState, FuseV1Options } from '@electron/fuses';
import { describe, expect, it } from 'vitest';
import { flipFlaneurFuses } from '../../../electron/fuses.js';
import { tmpDir } from '../../helpers/tmp.js';

/**
 * Issue 15 item 9: Electron fuses. No Electron runtime is installed here, so the packaging script is run on a file
 * laid out as Electron's binary lays out its fuse wire (the sentinel, version 1, the wire length, one byte per fuse,
 * every fuse in Electron's default state), inside other bytes.
 */
const SENTINEL = 'dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX';
// Electron's defaults: RunAsNode, NODE_OPTIONS and --inspect on; cookie encryption, ASAR integrity and ASAR-only off.
const DEFAULTS = [1, 0, 1, 1, 0, 0, 0, 1, 1].map((on) => (on ? FuseState.ENABLE : FuseState.DISABLE));

describe('Electron fuses of a packaged app', () => {
  it('turn off RunAsNode, NODE_OPTIONS and --inspect, and turn on cookie encryption and ASAR integrity / ASAR only', async () => {
    const file = path.join(tmpDir(), 'flaneur');
    const before = Buffer.alloc(1 << 20, 0x90);
    fs.writeFileSync(
      file,
      Buffer.concat([before, Buffer.from(SENTINEL), Buffer.from([1, DEFAULTS.length, ...DEFAULTS]), before]),
    );
    const wire = await flipFlaneurFuses(file);
    const on = (o: FuseV1Options) => wire[o] === FuseState.ENABLE;
    expect(on(FuseV1Options.RunAsNode)).toBe(false);
    expect(on(FuseV1Options.EnableNodeOptionsEnvironmentVariable)).toBe(false);
    expect(on(FuseV1Options.EnableNodeCliInspectArguments)).toBe(false);
    expect(on(FuseV1Options.EnableCookieEncryption)).toBe(true);
    expect(on(FuseV1Options.EnableEmbeddedAsarIntegrityValidation)).toBe(true);
    expect(on(FuseV1Options.OnlyLoadAppFromAsar)).toBe(true);
    expect(on(FuseV1Options.GrantFileProtocolExtraPrivileges)).toBe(false);
    // Nothing else in the binary changed.
    const after = fs.readFileSync(file);
    expect(after.length).toBe(2 * before.length + SENTINEL.length + 2 + DEFAULTS.length);
    expect(after.subarray(0, before.length).equals(before)).toBe(true);
    expect(after.subarray(-before.length).equals(before)).toBe(true);
  });

  it('refuses a binary whose fuse wire has a fuse the list does not decide (a newer Electron)', async () => {
    const file = path.join(tmpDir(), 'flaneur');
    const wire = [...DEFAULTS, FuseState.ENABLE];
    fs.writeFileSync(file, Buffer.concat([Buffer.from(SENTINEL), Buffer.from([1, wire.length, ...wire])]));
    await expect(flipFlaneurFuses(file)).rejects.toThrow(/strictlyRequireAllFuses/);
  });
});
