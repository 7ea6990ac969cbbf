/** A small PNG encoder for RGB frames (thumbnails and frame views), on Node's zlib. */
import zlib from 'node:zlib';

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/**
 * Encodes 8-bit pixels: 1 channel (gray), 3 (RGB) or 4 (RGBA). With `palette` (1 channel only) the pixels are
 * indices into it: an indexed-colour PNG (as VOC/DAVIS label masks are stored).
 */
export function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  level = 6,
  channels: 1 | 3 | 4 = 3,
  palette?: readonly (readonly [number, number, number])[],
): Buffer {
  const rgb = pixels;
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter: none
    raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = palette ? 3 : channels === 1 ? 0 : channels === 3 ? 2 : 6; // indexed, gray, RGB, RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(palette ? [chunk('PLTE', Buffer.from(palette.flatMap((c) => [...c])))] : []),
    chunk('IDAT', zlib.deflateSync(raw, { level })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
