/**
 * The Chromium the end-to-end tests drive, from npm alone: `@sparticuz/chromium` ships a headless Chromium, its
 * fonts and SwiftShader (software Vulkan / GL) as brotli archives inside the package. They are unpacked once per
 * package version and user into a folder of the temp directory, so a fresh machine needs no apt step.
 *
 * The package's own `executablePath()` unpacks into the bare temp folder (`/tmp/chromium`, `/tmp/fonts`, …) and
 * returns whatever is already there; two test processes unpacking at once would see a half-written binary, and a
 * file left by another version or user would be used silently. So the package's code runs in a child process whose
 * temp folder is a private staging folder, which is then renamed into place (atomic: a reader sees all or nothing).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const PACKAGE = '@sparticuz/chromium';

export interface UnpackedChromium {
  /** The headless Chromium binary. */
  executable: string;
  /** The folder everything was unpacked into. */
  dir: string;
  /** A fontconfig file that lists only the package's fonts (Open Sans), so screenshots show text on any machine. */
  fontConfig: string;
  /**
   * SwiftShader, software Vulkan and GL: `vk_swiftshader_icd.json`, `libvk_swiftshader.so`, a Vulkan loader
   * (`libvulkan.so.1`), `libEGL.so`, `libGLESv2.so`. For Vulkan users outside the browser (ONNX Runtime's WebGPU
   * provider): `VK_ICD_FILENAMES=<swiftshader>/vk_swiftshader_icd.json LD_LIBRARY_PATH=<swiftshader>`.
   */
  swiftshader: string;
  /**
   * The shared libraries the binary needs beyond glibc (NSS, NSPR, expat), which a minimal Debian lacks; the
   * package carries them for Amazon Linux 2023 (built against an older glibc, so they load on newer ones).
   * Put this folder first on LD_LIBRARY_PATH when launching.
   */
  libraries: string;
  /** The package version the files came from. */
  version: string;
}

function packageRoot(): string {
  // The package's exports map has no ./package.json entry; its main file is build/index.js.
  return path.resolve(path.dirname(require.resolve(PACKAGE)), '..');
}

function layout(dir: string): Omit<UnpackedChromium, 'version'> {
  return {
    dir,
    executable: path.join(dir, 'chromium'),
    fontConfig: path.join(dir, 'fontconfig', 'fonts.conf'),
    swiftshader: dir,
    libraries: path.join(dir, 'al2023', 'lib'),
  };
}

function complete(dir: string): boolean {
  const l = layout(dir);
  return [
    l.executable,
    l.fontConfig,
    path.join(l.swiftshader, 'vk_swiftshader_icd.json'),
    path.join(l.libraries, 'libnss3.so'),
  ].every((f) => fs.existsSync(f));
}

/**
 * Unpacks `@sparticuz/chromium` (first call on a machine: ~10-20 s; then instant) and returns where its files are.
 * Throws with a sentence saying what to do when the package is missing or cannot run here.
 */
export function unpackedChromium(): UnpackedChromium {
  let root: string;
  try {
    root = packageRoot();
  } catch {
    throw new Error(`${PACKAGE} is not installed: run \`npm ci\` (it is a devDependency), or set CHROMIUM_PATH`);
  }
  const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const uid = typeof process.getuid === 'function' ? process.getuid() : os.userInfo().username;
  const dir = path.join(os.tmpdir(), `flaneur-chromium-${version}-${uid}`);
  if (complete(dir)) return { ...layout(dir), version };

  const staging = fs.mkdtempSync(`${dir}.staging-`);
  try {
    // The package's own unpacking, with the staging folder as its temp folder.
    execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { default: c, inflate } = await import(${JSON.stringify(PACKAGE)});
await c.executablePath();
await inflate(${JSON.stringify(path.join(root, 'bin', 'al2023.tar.br'))});`,
      ],
      { cwd: root, env: { ...process.env, TMPDIR: staging, TMP: staging, TEMP: staging }, stdio: 'pipe' },
    );
    // The package's fonts.conf names /tmp/fonts; this one names the fonts where they are after the rename.
    fs.mkdirSync(path.join(staging, 'fontconfig'));
    fs.writeFileSync(
      path.join(staging, 'fontconfig', 'fonts.conf'),
      `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>${path.join(dir, 'fonts', 'fonts')}</dir>
  <cachedir>${path.join(dir, 'fontconfig', 'cache')}</cachedir>
</fontconfig>
`,
    );
    if (!complete(staging))
      throw new Error(`${PACKAGE} ${version} unpacked without its chromium binary, fonts, SwiftShader or libraries`);
    try {
      fs.renameSync(staging, dir);
    } catch (err) {
      // Another process renamed its copy into place first: use that one. A folder left incomplete by hand is
      // replaced.
      if (complete(dir)) return { ...layout(dir), version };
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(staging, dir);
      if (!complete(dir)) throw err;
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return { ...layout(dir), version };
}
