import { availableParallelism } from 'node:os';
import type { ImageEngine } from '../engines/spec/image-engine.ts';

/** Frees a slot; calling it again does nothing. */
export type Release = () => void;

/**
 * A counting semaphore with a FIFO of waiters, optionally also bounded by a total weight (e.g.
 * the pixels of the images inside): a holder heavier than the budget still gets in, alone.
 */
export class Slots {
  private used = 0;
  private weight = 0;
  private readonly waiting: { readonly weight: number; readonly resolve: () => void }[] = [];

  constructor(
    readonly size: number,
    readonly budget = Number.POSITIVE_INFINITY,
  ) {}

  private fits(weight: number): boolean {
    return this.used < this.size && (this.used === 0 || this.weight + weight <= this.budget);
  }

  /** Resolves with a release function once a slot (and `weight` of the budget) is free; at once when it is. */
  async acquire(weight = 0): Promise<Release> {
    if (this.waiting.length === 0 && this.fits(weight)) {
      this.used++;
      this.weight += weight;
    } else {
      await new Promise<void>((resolve) => this.waiting.push({ weight, resolve }));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
      this.weight -= weight;
      // First come, first served: the head waits until it fits, the others wait behind it.
      while (this.waiting.length > 0 && this.fits(this.waiting[0]!.weight)) {
        const next = this.waiting.shift()!;
        this.used++;
        this.weight += next.weight;
        next.resolve();
      }
    };
  }
}

/**
 * The two stages of making an image, each with its own slots shared by every task of the
 * process: **render** (engine calls; as many as the engine says it runs at once) and
 * **encode/store** (encode, object write, store rows, events; one per core, and at most
 * `ENCODE_PIXEL_BUDGET` pixels at once). A task holds a
 * render slot only while its engine works, so one task's next image renders while the last
 * one is encoded, and both cores stay busy. An image waits for an encode slot while still
 * holding its render slot, which bounds the raw images alive at once to the sum of the slots.
 */
export interface StageSlots {
  readonly render: Slots;
  readonly encode: Slots;
}

/**
 * Pixels encoded at once: one 4096² image, or several smaller ones. An encode holds its raw
 * pixels and, for a JPEG with per-image Huffman tables, mozjpeg's buffer of every DCT coefficient
 * (about twice the raw size); two 4096² encodes side by side peaked about 250 MB higher than one
 * at a time, and finished no sooner, the renders keeping the other core busy.
 */
const ENCODE_PIXEL_BUDGET = 20_000_000;

const encodeSlots = new WeakMap<object, Slots>();
const renderSlots = new WeakMap<ImageEngine, Slots>();

/** The stage slots of `engine` in the process that `owner` (the task service's dependencies) stands for. */
export function stageSlots(owner: object, engine: ImageEngine): StageSlots {
  let encode = encodeSlots.get(owner);
  if (!encode) encodeSlots.set(owner, (encode = new Slots(Math.max(1, availableParallelism()), ENCODE_PIXEL_BUDGET)));
  let render = renderSlots.get(engine);
  if (!render) renderSlots.set(engine, (render = new Slots(Math.max(1, engine.concurrency))));
  return { render, encode };
}
