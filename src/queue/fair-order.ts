import { fairWeight, type QueueJob } from './task-queue.ts';

/** A waiting job with its virtual start tag and arrival order. */
export interface TaggedJob {
  readonly job: QueueJob;
  readonly tag: number;
  readonly seq: number;
}

/**
 * Start-time fair queueing over groups, in one process (the memory queue). `tag` gives a new
 * job its virtual start; `started` advances the virtual clock; `insert` keeps a waiting list
 * ordered by (tag, arrival). See `QueueJob` for the guarantee.
 */
export class FairOrder {
  private virtual = 0;
  private seq = 0;
  private readonly finish = new Map<string, number>();

  tag(job: QueueJob): TaggedJob {
    const group = job.group ?? '';
    const start = Math.max(this.virtual, this.finish.get(group) ?? 0);
    const cost = Math.max(0, job.cost ?? 1);
    this.finish.set(group, start + cost / fairWeight(job));
    return { job, tag: start, seq: this.seq++ };
  }

  started(tagged: TaggedJob): void {
    this.virtual = Math.max(this.virtual, tagged.tag);
    // Groups whose work is all behind the clock start afresh at it: forget them.
    if (this.finish.size > 1_000) for (const [group, end] of this.finish) if (end <= this.virtual) this.finish.delete(group);
  }

  /** Inserts into a list kept in (tag, seq) order. */
  static insert(list: TaggedJob[], tagged: TaggedJob): void {
    let low = 0;
    let high = list.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const other = list[mid]!;
      if (other.tag < tagged.tag || (other.tag === tagged.tag && other.seq < tagged.seq)) low = mid + 1;
      else high = mid;
    }
    list.splice(low, 0, tagged);
  }
}
