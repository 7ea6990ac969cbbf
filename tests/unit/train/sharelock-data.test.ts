/** ShareLock's training data: captions files, class prompts, the seen/unseen split and the order pairs are visited. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  batchIndices,
  classPrompt,
  labelledClass,
  readCaptionsFile,
  splitClasses,
} from '../../../native/train/sharelock-data.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('ShareLock training data', () => {
  const dir = tmpDir('flaneur-captions-');
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  it('reads CSV (quoted fields, a caption with a comma and a line break), JSON Lines and COCO captions', () => {
    const csv = write('c.csv', 'image,caption\r\na.jpg,"a dog, on a boat"\n"sub/b.jpg","two\nlines"\n');
    expect(readCaptionsFile(csv)).toEqual([
      { path: path.join(dir, 'a.jpg'), caption: 'a dog, on a boat' },
      { path: path.join(dir, 'sub', 'b.jpg'), caption: 'two\nlines' },
    ]);
    const jsonl = write(
      'c.jsonl',
      '{"path": "/abs/x.png", "caption": " a cat "}\n\n{"file": "y.png", "text": "a bird"}\n',
    );
    expect(readCaptionsFile(jsonl, { imagesDir: '/imgs' })).toEqual([
      { path: '/abs/x.png', caption: 'a cat' },
      { path: '/imgs/y.png', caption: 'a bird' },
    ]);
    const coco = write(
      'captions_train.json',
      JSON.stringify({
        images: [
          { id: 7, file_name: '000007.jpg' },
          { id: 9, file_name: '000009.jpg' },
        ],
        annotations: [
          { image_id: 9, caption: 'A train.' },
          { image_id: 7, caption: 'A bus.' },
          { image_id: 9, caption: 'A red train.' },
        ],
      }),
    );
    expect(readCaptionsFile(coco).map((c) => [path.basename(c.path), c.caption])).toEqual([
      ['000009.jpg', 'A train.'],
      ['000007.jpg', 'A bus.'],
      ['000009.jpg', 'A red train.'],
    ]);
  });

  it('refuses a captions file it cannot read, naming the line', () => {
    expect(() => readCaptionsFile(write('bad.csv', 'name,label\nx,y\n'))).toThrow(/header names no path and caption/);
    expect(() => readCaptionsFile(write('bad.jsonl', '{"path": "a", "caption": "b"}\nnot json\n'))).toThrow(
      /bad\.jsonl \(line 2\): not JSON/,
    );
    expect(() => readCaptionsFile(write('bad.json', '{"images": [], "annotations": [{"image_id": 1}]}'))).toThrow(
      /annotation 1/,
    );
  });

  it('makes prompts of class folders and splits the classes into exclusive seen and unseen sets', () => {
    expect(classPrompt('a photo of a {}', 'ankle_boot')).toBe('a photo of a ankle boot');
    expect(labelledClass('/data', '/data/cat/1.png')).toBe('cat');
    expect(labelledClass('/data', '/data/1.png')).toBeNull();
    expect(labelledClass('/data', '/other/cat/1.png')).toBeNull();
    const classes = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    const s = splitClasses(classes, { fraction: 0.5, seed: 1 });
    expect(s.unseen).toHaveLength(5);
    expect([...s.seen, ...s.unseen].sort()).toEqual(classes);
    expect(splitClasses(classes, { fraction: 0.5, seed: 1 })).toEqual(s); // the seed decides
    expect(splitClasses(classes, { fraction: 0.5, seed: 2 })).not.toEqual(s);
    expect(splitClasses(classes, { unseen: ['c', 'a'], fraction: 0.5, seed: 1 })).toEqual({
      seen: ['b', 'd', 'e', 'f', 'g', 'h', 'i', 'j'],
      unseen: ['a', 'c'],
    });
    expect(() => splitClasses(classes, { unseen: ['z'], fraction: 0, seed: 0 })).toThrow(/z are not sub-folders/);
  });

  it('visits every pair once per epoch, the same order for the same step whatever came before', () => {
    const n = 10;
    const epoch = [0, 1, 2, 3, 4].flatMap((s) => [...batchIndices(n, 2, s, 5)]);
    expect(epoch.slice().sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
    // a batch crossing into the next epoch, and the same step asked for again
    expect([...batchIndices(n, 4, 2, 5)]).toEqual([...batchIndices(n, 4, 2, 5)]);
    const next = [5, 6, 7, 8, 9].flatMap((s) => [...batchIndices(n, 2, s, 5)]);
    expect(next).not.toEqual(epoch);
    expect(next.slice().sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
  });
});
