import type { ImageSlot } from '../spec/image-engine.ts';

/**
 * What the engine keeps in a call's checkpoint: the upstream task it submitted (so a restarted
 * Kiln polls it instead of paying for a new one) and which upstream image fills which slot (so
 * a resumed call never delivers one upstream image twice or to another slot).
 */
export interface CallState {
  readonly version: 1;
  /** The upstream `taskUUID`. */
  readonly upstream: string;
  /** Images the upstream task makes. */
  readonly expected: number;
  /** Upstream `imageUUID` → `ImageSlot.index`. */
  readonly assigned: Readonly<Record<string, number>>;
}

export function serializeState(state: CallState): string {
  return JSON.stringify(state);
}

/** Reads a checkpoint; a bare upstream taskUUID (an older or hand-written note) is accepted too. */
export function parseState(raw: string | undefined): CallState | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^[0-9a-f-]{36}$/i.test(raw.trim())) return { version: 1, upstream: raw.trim(), expected: 0, assigned: {} };
  try {
    const value = JSON.parse(raw) as Partial<CallState>;
    if (typeof value.upstream !== 'string') return undefined;
    const assigned: Record<string, number> = {};
    for (const [uuid, index] of Object.entries(value.assigned ?? {})) if (typeof index === 'number') assigned[uuid] = index;
    return { version: 1, upstream: value.upstream, expected: typeof value.expected === 'number' ? value.expected : 0, assigned };
  } catch {
    return undefined;
  }
}

/** One finished upstream image, as far as slot assignment cares. */
export interface ArrivedImage {
  readonly imageUUID: string;
  readonly seed?: number;
  readonly seriesIndex?: number;
}

/**
 * Maps upstream images to the call's slots, in arrival order and stable by `imageUUID`: an
 * image keeps the slot it was first given (also across restarts, through the checkpoint); a new
 * one prefers the slot of its `seriesIndex`, then the slot with its `seed`, then the first free.
 */
export class SlotAssigner {
  private readonly assigned: Record<string, number>;
  private readonly filled = new Set<number>();
  private readonly seen = new Set<string>();

  constructor(
    private readonly slots: readonly ImageSlot[],
    assigned: Readonly<Record<string, number>>,
  ) {
    this.assigned = { ...assigned };
  }

  /** The assignments so far (for the checkpoint). */
  snapshot(): Readonly<Record<string, number>> {
    return { ...this.assigned };
  }

  /** True when `imageUUID` was already handled in this run (delivered, or skipped as not this call's). */
  isSeen(imageUUID: string): boolean {
    return this.seen.has(imageUUID);
  }

  /** True when every slot of the call has its image. */
  get complete(): boolean {
    return this.slots.every((slot) => this.filled.has(slot.index));
  }

  /**
   * The slot `image` fills, or undefined when it was seen before, fills a slot this call does
   * not make (finished before a restart) or is an extra. `isNew` says the checkpoint changed.
   */
  assign(image: ArrivedImage): { slot: ImageSlot; isNew: boolean } | undefined {
    if (this.seen.has(image.imageUUID)) return undefined;
    this.seen.add(image.imageUUID);
    const known = this.assigned[image.imageUUID];
    if (known !== undefined) {
      const slot = this.slots.find((s) => s.index === known);
      if (!slot || this.filled.has(slot.index)) return undefined;
      this.filled.add(slot.index);
      return { slot, isNew: false };
    }
    const claimed = new Set(Object.values(this.assigned));
    const free = this.slots.filter((s) => !this.filled.has(s.index) && !claimed.has(s.index));
    let slot: ImageSlot | undefined;
    if (image.seriesIndex !== undefined && this.slots.some((s) => s.seriesIndex !== undefined)) {
      // In a series every image has its place; one this call does not make is an extra.
      slot = free.find((s) => s.seriesIndex === image.seriesIndex);
    } else {
      slot = free.find((s) => s.seed === image.seed) ?? free[0];
    }
    if (!slot) return undefined;
    this.assigned[image.imageUUID] = slot.index;
    this.filled.add(slot.index);
    return { slot, isNew: true };
  }
}
