/**
 * `npm run bench -- NAME [options]`: runs one benchmark; each prints progress lines and, as its last line, one JSON
 * object with its figures (ratios against a reference measured in the same run). Never asserts on time.
 */
import { benchBank } from './bank.js';
import { benchCli } from './cli.js';
import { benchCount } from './count.js';
import { benchDora } from './dora.js';
import { benchFungi } from './fungi.js';
import { benchGpu } from './gpu.js';
import { benchHash } from './hash.js';
import { benchIngest } from './ingest.js';
import { benchKnn } from './knn.js';
import { benchMap } from './map.js';
import { benchNeco } from './neco.js';
import { benchPropagate } from './propagate.js';
import { BenchSetupFault } from './reference.js';
import { benchResponsiveness } from './responsiveness.js';
import { benchSegment } from './segment.js';
import { benchSharelock } from './sharelock.js';
import { benchTrack } from './track.js';
import { benchTrain } from './train.js';
import { benchVit } from './vit.js';

const BENCHES: Record<string, (args: string[]) => Promise<Record<string, unknown>>> = {
  hash: benchHash,
  cli: benchCli,
  count: benchCount,
  bank: benchBank,
  ingest: benchIngest,
  knn: benchKnn,
  map: benchMap,
  train: benchTrain,
  track: benchTrack,
  segment: benchSegment,
  propagate: benchPropagate,
  dora: benchDora,
  neco: benchNeco,
  fungi: benchFungi,
  vit: benchVit,
  gpu: benchGpu,
  sharelock: benchSharelock,
  responsiveness: benchResponsiveness,
};

const [name, ...rest] = process.argv.slice(2);
const bench = name ? BENCHES[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [options]`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await bench(rest)));
} catch (err) {
  if (!(err instanceof BenchSetupFault)) throw err;
  // Every figure measured, with the reason no ratio is given.
  console.error(err.message);
  console.log(JSON.stringify({ setup_fault: err.message, ...err.figures }));
  process.exit(1);
}
