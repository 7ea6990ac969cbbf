/**
 * Training state kept in GPU memory between steps, for the step runners (DINO/Dora, NeCo): a step graph's state
 * outputs (`p_next/…`, …) are asked to stay on the device (ModelSession keepOnDevice → 'gpu-buffer' tensors) and
 * are fed back as the next step's state inputs (`p/…`, …); the host copy is brought up to date by `sync`
 * (checkpoints, previews, export). On the CPU provider, or with keepOnDevice off, nothing is kept: the runners copy
 * the state through host memory as before. A gpu-buffer tensor is never read on the host (onnxruntime-node 1.30
 * aborts the process), only fed to sessions on the same device.
 */
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';

/** Bytes that crossed between host and device memory in one step (inputs uploaded, outputs downloaded). */
export interface StepTransfer {
  hostToDevice: number;
  deviceToHost: number;
}

const bytesOf = (t: ort.Tensor) => t.size * (t.type === 'float16' ? 2 : t.type === 'int64' ? 8 : 4);

export class DeviceState {
  /** The state inputs held in GPU memory, or null when the host copy is current. */
  private device: Map<string, ort.Tensor> | null = null;
  private readback: ModelSession | null = null;
  /** Host state arrays free for the next step's outputs (two sets taking turns), by output name. */
  private readonly spare = new Map<string, Float32Array>();
  /** Bytes crossing host<->device in the last step (null on the CPU provider, where there is no device). */
  lastTransfer: StepTransfer | null = null;

  constructor(
    /** [state input, the output that becomes it next step]. */
    private readonly pairs: readonly (readonly [string, string])[],
    /** Whether the session keeps the outputs on its device (made with keepOnDevice, running on WebGPU). */
    readonly resident: boolean,
    private readonly provider: string,
    private readonly settings: RuntimeSettings | undefined,
  ) {}

  /** The outputs to keep on the device when making the session. */
  static outputs(pairs: readonly (readonly [string, string])[]): string[] {
    return pairs.map(([, out]) => out);
  }

  /** The state feeds: the device's while the state lives there, else `host()` (the host copy as tensors). */
  feeds(host: () => Map<string, ort.Tensor>): Map<string, ort.Tensor> {
    return this.device ?? host();
  }

  /**
   * After a run: counts the bytes that crossed, and on a resident session keeps the state outputs as the next
   * state feeds (`stateFeeds`: this step's state inputs; those without an output, e.g. frozen parameters, stay).
   * Returns whether the state now lives on the device (else the caller reads the outputs into the host copy).
   */
  absorb(
    feeds: Record<string, ort.Tensor>,
    stateFeeds: ReadonlyMap<string, ort.Tensor>,
    out: Record<string, ort.Tensor>,
  ): boolean {
    if (this.provider !== 'cpu') {
      const sum = (ts: ort.Tensor[]) =>
        ts.filter((x) => x.location !== 'gpu-buffer').reduce((a, x) => a + bytesOf(x), 0);
      this.lastTransfer = { hostToDevice: sum(Object.values(feeds)), deviceToHost: sum(Object.values(out)) };
    }
    if (!this.resident) return false;
    const next = new Map(stateFeeds);
    for (const [input, output] of this.pairs) {
      const v = out[output];
      if (!v) throw new Error(`the step graph has no output ${output}`);
      next.set(input, v);
    }
    if (this.device) for (const [name, old] of this.device) if (next.get(name) !== old) old.dispose();
    this.device = next;
    return true;
  }

  /**
   * On the host (not resident): the step's outputs to fetch, each state output pre-allocated (no output
   * allocation by the runtime), and `next(input)`: the array that holds that state input's next value after the run.
   * `inPlace` (a step graph in which every update waits for a barrier that follows every other read of the state,
   * as the DINO step's global-norm clipping does): the outputs are the very arrays fed as the state inputs — AdamW,
   * EMA and centre updated in place, one copy of the state. Otherwise two sets of arrays take turns (the step
   * writes into the set not fed; the next step feeds it): a graph without such a barrier (NeCo's) may update a
   * parameter while the backward pass still reads it. Other outputs (loss, metrics) are left to the runtime. Null on
   * a resident session (the state stays on the device) or when a state input is not a host float32 tensor.
   */
  hostFetches(
    stateFeeds: ReadonlyMap<string, ort.Tensor>,
    outputNames: readonly string[],
    inPlace: boolean,
  ): { fetches: Record<string, ort.Tensor | null>; next: (input: string) => Float32Array } | null {
    if (this.resident) return null;
    const fetches: Record<string, ort.Tensor | null> = Object.fromEntries(outputNames.map((n) => [n, null]));
    const next = new Map<string, Float32Array>();
    const seen = new Set<unknown>();
    for (const [input, output] of this.pairs) {
      const feed = stateFeeds.get(input);
      if (feed?.location !== 'cpu' || feed.type !== 'float32' || !Object.hasOwn(fetches, output)) return null;
      // Two state inputs on one array (a teacher sharing the student's) cannot both be updated in place.
      if (seen.has(feed.data)) return null;
      seen.add(feed.data);
      const fed = feed.data as Float32Array;
      let into = fed;
      if (!inPlace) {
        const spare = this.spare.get(output);
        into = spare && spare.length === fed.length && spare !== fed ? spare : new Float32Array(fed.length);
        // After this step the fed array is free: the next step's outputs go there.
        this.spare.set(output, fed);
      }
      fetches[output] = new ort.Tensor('float32', into, feed.dims as number[]);
      next.set(input, into);
    }
    return {
      fetches,
      next: (input) => {
        const a = next.get(input);
        if (!a) throw new Error(`the step graph has no state input ${input}`);
        return a;
      },
    };
  }

  /** A state input as kept on the device (undefined while the host copy is current). */
  get(name: string): ort.Tensor | undefined {
    return this.device?.get(name);
  }

  get onDevice(): boolean {
    return this.device !== null;
  }

  /** The state kept on the device, read back to the host (null when the host copy is current). */
  async read(): Promise<Map<string, Float32Array> | null> {
    const device = this.device;
    if (!device) return null;
    if (!this.readback) {
      // One Identity per state tensor on the same device, outputs to the host.
      const b = new GraphBuilder('readback');
      for (const [name, v] of device) b.output(b.identity(b.input(name, 'float32', v.dims as number[])), `h/${name}`);
      this.readback = await ModelSession.create(toOnnx(b.build()), this.settings);
    }
    const out = await this.readback.run(Object.fromEntries(device));
    return new Map([...device.keys()].map((name) => [name, out[`h/${name}`]?.data as Float32Array]));
  }

  /**
   * Brings a runner's host copy up to date from the device (what every runner's `sync` does): each state input
   * `<prefix>/<name>` read back goes into `into[prefix]` under `name`. False when the host copy was current.
   */
  async readInto(into: Readonly<Record<string, Map<string, Float32Array>>>): Promise<boolean> {
    const host = await this.read();
    if (!host) return false;
    for (const [input, data] of host) {
      const slash = input.indexOf('/');
      const target = slash > 0 ? into[input.slice(0, slash)] : undefined;
      target?.set(input.slice(slash + 1), data);
    }
    return true;
  }

  async release(): Promise<void> {
    if (this.device) for (const t of this.device.values()) if (t.location === 'gpu-buffer') t.dispose();
    this.device = null;
    await this.readback?.release();
    this.readback = null;
  }
}
