/** Seeded randomness and cheap value noise: everything the studio renderer draws is a pure function of these. */

/** A 32-bit hash of a string (FNV-1a followed by a murmur finaliser), stable across runs and platforms. */
export function hashString(text: string, salt = 0): number {
  let h = (0x811c9dc5 ^ salt) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** Murmur3's finaliser: spreads every input bit over the output, so consecutive seeds give unrelated streams. */
export function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Combines several integers into one well-mixed 32-bit value. */
export function combine(...values: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const v of values) h = mix32((h ^ mix32(v | 0)) + 0x6d2b79f5);
  return h >>> 0;
}

/** mulberry32: tiny, fast and good enough for layout decisions. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = mix32(seed) || 0x2545f491;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Fills `values` with the next `values.length` draws (the same numbers as calling `next` that often). */
  fill<T extends Float32Array | Float64Array>(values: T): T {
    let state = this.state;
    for (let i = 0; i < values.length; i++) {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), state | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      values[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }
    this.state = state;
    return values;
  }

  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  int(min: number, maxInclusive: number): number {
    return min + Math.floor(this.next() * (maxInclusive - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** Roughly normal (sum of three uniforms), mean 0, deviation about 0.5. */
  gauss(): number {
    return this.next() + this.next() + this.next() - 1.5;
  }

  /** A child stream, so that adding a draw in one part of the plan does not shift another part. */
  fork(label: number): Random {
    return new Random(combine(this.state, label));
  }
}

/** 1D value noise over a lattice of `cells` random values, smooth-step interpolated; output in [0, 1]. */
export class Noise1D {
  private readonly values: Float32Array;

  private readonly cells: number;
  private readonly inverse: number;

  /** `cells` is a power of two: the wrap below is then exact (a division by it only shifts the exponent). */
  constructor(random: Random, cells = 256) {
    if (!(cells > 0 && (cells & (cells - 1)) === 0)) throw new Error(`noise cells must be a power of two, not ${cells}`);
    this.cells = cells;
    this.inverse = 1 / cells;
    this.values = new Float32Array(cells + 1);
    for (let i = 0; i <= cells; i++) this.values[i] = random.next();
  }

  at(x: number): number {
    const n = this.cells;
    // x mod n in [0, n), exact, without the floating-point remainder (a slow library call). A
    // remainder too small to survive the subtraction rounds up to n, and a negative x too small
    // for x/n to be anything but -0 leaves x itself: both wrap to the lattice's start.
    let xf = x - Math.floor(x * this.inverse) * n;
    if (!(xf >= 0 && xf < n)) xf = 0;
    const i = Math.floor(xf);
    const f = xf - i;
    const a = this.values[i]!;
    const b = this.values[i + 1]!;
    const s = f * f * (3 - 2 * f);
    return a + (b - a) * s;
  }

  /** Fractal sum of `octaves` octaves, normalised to [0, 1]. */
  fbm(x: number, octaves: number, gain = 0.5): number {
    let sum = 0;
    let amp = 1;
    let norm = 0;
    let freq = 1;
    for (let o = 0; o < octaves; o++) {
      sum += amp * this.at(x * freq + o * 37.17);
      norm += amp;
      amp *= gain;
      freq *= 2.03;
    }
    return sum / norm;
  }
}

/** 2D value noise on a 256×256 wrapping lattice; output in [0, 1]. */
export class Noise2D {
  private readonly values: Float32Array;

  /** `into` (at least 256² entries) is used instead of a new table: a caller that makes one field at a time can keep it. */
  constructor(random: Random, into?: Float32Array) {
    this.values = random.fill(into ? into.subarray(0, 256 * 256) : new Float32Array(256 * 256));
  }

  at(x: number, y: number): number {
    const xi = Math.floor(x);
    const yi = Math.floor(y);
    let fx = x - xi;
    let fy = y - yi;
    fx = fx * fx * (3 - 2 * fx);
    fy = fy * fy * (3 - 2 * fy);
    const x0 = xi & 255;
    const x1 = (xi + 1) & 255;
    const y0 = (yi & 255) << 8;
    const y1 = ((yi + 1) & 255) << 8;
    const v = this.values;
    const a = v[y0 + x0]!;
    const b = v[y0 + x1]!;
    const c = v[y1 + x0]!;
    const d = v[y1 + x1]!;
    const top = a + (b - a) * fx;
    const bottom = c + (d - c) * fx;
    return top + (bottom - top) * fy;
  }

  fbm(x: number, y: number, octaves: number, gain = 0.5): number {
    let sum = 0;
    let amp = 1;
    let norm = 0;
    let fx = x;
    let fy = y;
    for (let o = 0; o < octaves; o++) {
      sum += amp * this.at(fx, fy);
      norm += amp;
      amp *= gain;
      // Rotate a little between octaves so the lattice axes do not line up.
      const nx = fx * 1.6 - fy * 1.2 + 17.3;
      fy = fx * 1.2 + fy * 1.6 + 9.1;
      fx = nx;
    }
    return sum / norm;
  }
}
