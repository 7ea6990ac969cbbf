/**
 * A software Vulkan (SwiftShader) for the WebGPU tests and the GPU bench on machines without a GPU: onnxruntime's
 * WebGPU provider (Dawn) runs on it. Found, in order:
 *   1. FLANEUR_VK_ICD: the path of a Vulkan ICD manifest (a libvulkan.so.1 beside it is used too);
 *   2. Debian's chromium package: /usr/lib/chromium/vk_swiftshader_icd.json;
 *   3. the @sparticuz/chromium devDependency: its bin/swiftshader.tar.br (a brotli tar holding
 *      libvk_swiftshader.so, vk_swiftshader_icd.json and the Vulkan loader libvulkan.so.1), unpacked once into
 *      node_modules/.cache/.
 * The loader is found through LD_LIBRARY_PATH, which the dynamic linker reads only when a process starts: the
 * environment from `softwareVulkanEnv` must be given to a process before it starts (vitest.config.ts sets it in the
 * main process, whose workers inherit it; the bench starts a child).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

export interface SoftwareVulkan {
  /** The ICD manifest (VK_ICD_FILENAMES). */
  icd: string;
  /** A folder holding libvulkan.so.1 to put on LD_LIBRARY_PATH, or null when the system's loader is used. */
  libDir: string | null;
  source: 'FLANEUR_VK_ICD' | 'debian-chromium' | '@sparticuz/chromium';
}

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const DEBIAN_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const TARBALL = path.join(ROOT, 'node_modules', '@sparticuz', 'chromium', 'bin', 'swiftshader.tar.br');

function beside(icd: string): string | null {
  return fs.existsSync(path.join(path.dirname(icd), 'libvulkan.so.1')) ? path.dirname(icd) : null;
}

/** The regular files of a ustar archive, by base name. */
export function untar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const field = (h: Buffer, start: number, len: number) =>
    h
      .subarray(start, start + len)
      .toString('latin1')
      .replace(/\0[\s\S]*$/, '')
      .trim();
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const name = field(h, 0, 100);
    const size = Number.parseInt(field(h, 124, 12) || '0', 8);
    const type = String.fromCharCode(h[156] ?? 0);
    if (!Number.isFinite(size) || off + 512 + size > tar.length) throw new Error(`truncated tar entry ${name}`);
    if (type === '0' || type === '\0') files.set(path.basename(name), tar.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

function unpackSparticuz(): string | null {
  if (!fs.existsSync(TARBALL)) return null;
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(TARBALL), '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const dir = path.join(ROOT, 'node_modules', '.cache', `flaneur-swiftshader-${pkg.version}`);
  const icd = path.join(dir, 'vk_swiftshader_icd.json');
  if (fs.existsSync(icd)) return icd;
  const files = untar(zlib.brotliDecompressSync(fs.readFileSync(TARBALL)));
  const wanted = ['libvk_swiftshader.so', 'libvulkan.so.1', 'vk_swiftshader_icd.json'];
  for (const w of wanted) if (!files.has(w)) throw new Error(`${TARBALL} has no ${w}`);
  // Unpack beside the final folder and rename it into place, so that concurrent processes never see half a folder.
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.tmp-`);
  for (const w of wanted) fs.writeFileSync(path.join(tmp, w), files.get(w) as Buffer);
  try {
    fs.renameSync(tmp, dir);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }); // another process got there first
  }
  return icd;
}

/** The software Vulkan of this machine, or null (not Linux, or none of the three sources is there). */
export function findSoftwareVulkan(): SoftwareVulkan | null {
  if (process.platform !== 'linux') return null;
  const override = process.env.FLANEUR_VK_ICD;
  if (override) {
    if (!fs.existsSync(override)) throw new Error(`FLANEUR_VK_ICD names a missing file: ${override}`);
    return { icd: override, libDir: beside(override), source: 'FLANEUR_VK_ICD' };
  }
  if (fs.existsSync(DEBIAN_ICD)) return { icd: DEBIAN_ICD, libDir: beside(DEBIAN_ICD), source: 'debian-chromium' };
  const icd = unpackSparticuz();
  return icd ? { icd, libDir: path.dirname(icd), source: '@sparticuz/chromium' } : null;
}

/** Environment variables that make a new process's Dawn use `v` (and a writable XDG_RUNTIME_DIR, which it wants). */
export function softwareVulkanEnv(v: SoftwareVulkan, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = { VK_ICD_FILENAMES: v.icd };
  if (v.libDir) env.LD_LIBRARY_PATH = [v.libDir, base.LD_LIBRARY_PATH].filter(Boolean).join(':');
  const xdg = base.XDG_RUNTIME_DIR;
  let writable = false;
  try {
    if (xdg) {
      fs.accessSync(xdg, fs.constants.W_OK);
      writable = true;
    }
  } catch {}
  if (!writable) {
    const dir = path.join(os.tmpdir(), `flaneur-xdg-${process.getuid?.() ?? 'user'}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    env.XDG_RUNTIME_DIR = dir;
  }
  return env;
}

/**
 * Puts the software Vulkan into this process's environment for the processes it starts (unless the caller already
 * chose a Vulkan driver with VK_ICD_FILENAMES). Returns what it found, for a message.
 */
export function provideSoftwareVulkan(): SoftwareVulkan | null {
  if (process.env.VK_ICD_FILENAMES) return null;
  const v = findSoftwareVulkan();
  if (v) Object.assign(process.env, softwareVulkanEnv(v));
  return v;
}
