/**
 * The final grade: tone curves, mist, sun bloom, vignette, paper and film grain. Everything that
 * varies smoothly is separable, so it is precomputed per column and per row once; the per-pixel
 * work is three table look-ups and a handful of multiply-adds.
 */
import { Noise1D, Random } from './random.ts';
import type { GradePlan } from './scene-types.ts';

/** Grain tile side (a power of two, so the column wraps with a mask). */
const GRAIN_TILE = 128;

function toneCurve(grade: GradePlan, channel: 0 | 1 | 2): Float32Array {
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) {
    let x = (v / 255) * grade.exposure;
    x = x > 1 ? 1 : x;
    // S-curve around mid grey; contrast 0 leaves the value alone.
    const s = x * x * (3 - 2 * x);
    x = x + (s - x) * grade.contrast;
    x = grade.lift + (1 - grade.lift) * x;
    x += (grade.shadowTint[channel] / 255) * (1 - x) * (1 - x) + (grade.highlightTint[channel] / 255) * x * x;
    lut[v] = Math.max(0, Math.min(255, Math.round(x * 255)));
  }
  return lut;
}

/** The grain's uniform draws (two per value), reused by every grade a thread prepares. */
const scratchDraws = new Float64Array(GRAIN_TILE * GRAIN_TILE * 2);

/** Offset into `CLAMP`: grade results from −384 to 639 map to 0…255 with one look-up, no branches. */
const CLAMP_OFFSET = 384;
const CLAMP = new Uint8Array(1024);
for (let i = 0; i < CLAMP.length; i++) CLAMP[i] = Math.max(0, Math.min(255, i - CLAMP_OFFSET));

/**
 * Fixed point throughout: tone curves and bloom in 1/256 of a level, factors in 1/256, so that
 * `(level·k) >> 16` is a level again. Grain is whole levels (plus the clamp offset).
 */
export interface PreparedGrade {
  readonly width: number;
  readonly lutR: Int32Array;
  readonly lutG: Int32Array;
  readonly lutB: Int32Array;
  readonly grain: Int32Array;
  /**
   * The grain again as packed output words, for groups of four pixels of one colour: per tile row
   * and group of four columns, the grain bytes of the group's three words, less `grainMin` (so
   * every byte is 0…`grainSpan`).
   */
  readonly grainWords: Uint32Array;
  readonly grainMin: number;
  readonly grainSpan: number;
  /** Per column: vignette and paper (added to the row's factor), bloom falloffs, mist strength. */
  readonly kx: Int32Array;
  readonly gx1: Int32Array;
  readonly gx2: Int32Array;
  readonly mistX: Float32Array;
  /** Per row: the brightness factor, the two bloom weights and the mist amount (0 when none). */
  readonly ky: Int32Array;
  readonly gy1: Int32Array;
  readonly gy2: Int32Array;
  readonly mistY: Float32Array;
  readonly fog: readonly [number, number, number];
  readonly glow: readonly [number, number, number];
  /**
   * The tone curves already multiplied by the brightness factor k, for `K_LEVELS` levels of k
   * spanning the image's range: entry `(level·3 + channel)·256 + value`, in whole output levels.
   * A pixel's level is `levelY[y] + levelX[x]` rounded (k is linear in both).
   */
  readonly curves: Int16Array;
  readonly levelX: Float32Array;
  readonly levelY: Float32Array;
}

/** Brightness levels of the pre-multiplied curves: one step is under 1.2 output levels even with a strong vignette, and grain hides it. */
const K_LEVELS = 128;

function multipliedCurves(luts: readonly Int32Array[], kx: Int32Array, ky: Int32Array): { curves: Int16Array; levelX: Float32Array; levelY: Float32Array } {
  let minX = Infinity;
  let maxX = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (const v of kx) (minX = Math.min(minX, v)), (maxX = Math.max(maxX, v));
  for (const v of ky) (minY = Math.min(minY, v)), (maxY = Math.max(maxY, v));
  const kMin = (minX + minY) / 256;
  const kMax = (maxX + maxY) / 256;
  const step = Math.max(1e-6, (kMax - kMin) / (K_LEVELS - 1));
  const curves = new Int16Array(K_LEVELS * 3 * 256);
  for (let level = 0; level < K_LEVELS; level++) {
    const k = kMin + level * step;
    for (let c = 0; c < 3; c++) {
      const lut = luts[c]!;
      const base = (level * 3 + c) * 256;
      for (let v = 0; v < 256; v++) curves[base + v] = Math.round((lut[v]! / 256) * k);
    }
  }
  // level = (k − kMin)/step, split into a row part (carrying the 0.5 for rounding) and a column part.
  const levelY = Float32Array.from(ky, (v) => (v / 256 - kMin) / step + 0.5);
  const levelX = Float32Array.from(kx, (v) => v / 256 / step);
  return { curves, levelX, levelY };
}

/** The grain tile as the packed words of `PreparedGrade.grainWords`; `min` is in levels (without the clamp offset). */
function packGrain(grain: Int32Array): { words: Uint32Array; min: number; span: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of grain) (min = Math.min(min, v)), (max = Math.max(max, v));
  const groups = GRAIN_TILE / 4;
  const words = new Uint32Array(GRAIN_TILE * groups * 3);
  for (let y = 0; y < GRAIN_TILE; y++) {
    for (let x = 0; x < GRAIN_TILE; x += 4) {
      const at = y * GRAIN_TILE + x;
      const n0 = grain[at]! - min;
      const n1 = grain[at + 1]! - min;
      const n2 = grain[at + 2]! - min;
      const n3 = grain[at + 3]! - min;
      // Little-endian bytes R0 G0 B0 R1 | G1 B1 R2 G2 | B2 R3 G3 B3, as gradeRowPacked writes them.
      const w = (y * groups + (x >> 2)) * 3;
      words[w] = (n0 | (n0 << 8) | (n0 << 16) | (n1 << 24)) >>> 0;
      words[w + 1] = (n1 | (n1 << 8) | (n2 << 16) | (n2 << 24)) >>> 0;
      words[w + 2] = (n2 | (n3 << 8) | (n3 << 16) | (n3 << 24)) >>> 0;
    }
  }
  return { words, min: min - CLAMP_OFFSET, span: max - min };
}

/** The parts of a grade that do not depend on the seed (tone curves, the vignette's factors and the curves multiplied by them). */
interface SeedFreeGrade {
  readonly lutR: Int32Array;
  readonly lutG: Int32Array;
  readonly lutB: Int32Array;
  /** Set when the factors have no paper noise (the common case): they then depend on the size and vignette only. */
  readonly factors: { readonly kx: Int32Array; readonly ky: Int32Array; readonly curves: Int16Array; readonly levelX: Float32Array; readonly levelY: Float32Array } | undefined;
}

/**
 * Recently used seed-free parts, by the values they are computed from. Images of one prompt and
 * size share them, so a small image does not pay a few hundred microseconds of tables each time;
 * the tables are only read, and the same inputs give the same numbers, so the output is unchanged.
 */
const seedFree = new Map<string, SeedFreeGrade>();
const SEED_FREE_ENTRIES = 32;

function seedFreeKey(grade: GradePlan, width: number, height: number): string {
  const { exposure, contrast, lift, shadowTint: s, highlightTint: h, vignette, paper } = grade;
  return `${width}x${height}|${exposure}|${contrast}|${lift}|${s[0]},${s[1]},${s[2]}|${h[0]},${h[1]},${h[2]}|${vignette}|${paper > 0 ? 'paper' : ''}`;
}

/** The columns' and rows' brightness factors (vignette and paper). */
function factors(grade: GradePlan, width: number, height: number, paperNoise: Noise1D | undefined): { kx: Int32Array; ky: Int32Array } {
  const invH = 1 / height;
  const aspect = width / height;
  const vig = grade.vignette;
  const kx = new Int32Array(width);
  for (let x = 0; x < width; x++) {
    const u = (x / width) * 2 - 1;
    kx[x] = Math.round((-vig * u * u * aspect * 0.25 + (grade.paper > 0 ? (paperNoise!.fbm(x * invH * 9, 3) - 0.5) * grade.paper : 0)) * 256);
  }
  const ky = new Int32Array(height);
  for (let y = 0; y < height; y++) {
    const v = (y / height) * 2 - 1;
    ky[y] = Math.round((1 - vig * v * v * 0.5 + (grade.paper > 0 ? (paperNoise!.at(y * invH * 9 + 300) - 0.5) * grade.paper : 0)) * 256);
  }
  return { kx, ky };
}

function seedFreeGrade(grade: GradePlan, width: number, height: number): SeedFreeGrade {
  const key = seedFreeKey(grade, width, height);
  const cached = seedFree.get(key);
  if (cached) {
    // Most recently used last, so the oldest entry is the first one dropped.
    seedFree.delete(key);
    seedFree.set(key, cached);
    return cached;
  }
  const curve = (channel: 0 | 1 | 2): Int32Array => Int32Array.from(toneCurve(grade, channel), (v) => Math.round(v * 256));
  const lutR = curve(0);
  const lutG = curve(1);
  const lutB = curve(2);
  let shared: SeedFreeGrade['factors'];
  if (!(grade.paper > 0)) {
    const { kx, ky } = factors(grade, width, height, undefined);
    shared = { kx, ky, ...multipliedCurves([lutR, lutG, lutB], kx, ky) };
  }
  const entry: SeedFreeGrade = { lutR, lutG, lutB, factors: shared };
  seedFree.set(key, entry);
  if (seedFree.size > SEED_FREE_ENTRIES) seedFree.delete(seedFree.keys().next().value as string);
  return entry;
}

export function prepareGrade(grade: GradePlan, width: number, height: number): PreparedGrade {
  const random = new Random(grade.seed);
  // Grain scales with the image so a thumbnail and a 4K render look alike.
  // Two uniform draws per grain value, in order: drawn as one block, then summed in pairs.
  const draws = random.fill(scratchDraws);
  const grain = new Int32Array(GRAIN_TILE * GRAIN_TILE);
  for (let i = 0; i < grain.length; i++) grain[i] = Math.round((draws[2 * i]! + draws[2 * i + 1]! - 1) * grade.grain) + CLAMP_OFFSET;
  const invH = 1 / height;
  const mistNoise = new Noise1D(random.fork(7));
  // Forking does not advance `random`, so the paper noise is made only when it is used.
  const paperNoise = grade.paper > 0 ? new Noise1D(random.fork(8)) : undefined;
  const gx1 = new Int32Array(width);
  const gx2 = new Int32Array(width);
  const mistX = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const dx = ((x - grade.glowX) * invH) / grade.glowRadius;
    gx1[x] = Math.round(Math.exp(-dx * dx * 4) * 256);
    gx2[x] = Math.round(Math.exp(-dx * dx * 0.6) * 256);
    mistX[x] = 0.55 + 0.45 * mistNoise.fbm(x * invH * 2.2, 3);
  }
  const gy1 = new Int32Array(height);
  const gy2 = new Int32Array(height);
  const mistY = new Float32Array(height);
  for (let y = 0; y < height; y++) {
    const dy = ((y - grade.glowY) * invH) / grade.glowRadius;
    gy1[y] = Math.round(Math.exp(-dy * dy * 4) * grade.glowStrength * 256);
    gy2[y] = Math.round(Math.exp(-dy * dy * 0.6) * grade.glowStrength * 0.35 * 256);
    const my = (y * invH - grade.mistY) / grade.mistHeight;
    const mist = grade.mist > 0 ? grade.mist * Math.exp(-my * my) : 0;
    mistY[y] = mist > 0.002 ? mist : 0;
  }
  const { words: grainWords, min: grainMin, span: grainSpan } = packGrain(grain);
  const { lutR, lutG, lutB, factors: shared } = seedFreeGrade(grade, width, height);
  let perImage = shared;
  if (!perImage) {
    const { kx, ky } = factors(grade, width, height, paperNoise);
    perImage = { kx, ky, ...multipliedCurves([lutR, lutG, lutB], kx, ky) };
  }
  const { kx, ky, curves, levelX, levelY } = perImage;
  return {
    width, lutR, lutG, lutB, grain, grainWords, grainMin, grainSpan, kx, gx1, gx2, mistX, ky, gy1, gy2, mistY, curves, levelX, levelY,
    fog: [grade.fogColour[0], grade.fogColour[1], grade.fogColour[2]], glow: [Math.round(grade.glowColour[0]), Math.round(grade.glowColour[1]), Math.round(grade.glowColour[2])],
  };
}

/**
 * Grades columns `x0` ≤ x < `x1` of the packed rows `top` ≤ y < `bottom` into the RGB bytes of
 * `out` (the whole image). `band` holds those rows from column `left`, `stride` pixels per row.
 * When the image width is a multiple of four, four pixels go out as three words (one vignette and
 * bloom factor per group of four): `x0` and `x1` must then be multiples of four, so that a strip groups
 * its pixels as the whole image does.
 */
export function gradeBand(band: Uint32Array, stride: number, left: number, out: Uint8Array, out32: Uint32Array | undefined, g: PreparedGrade, top: number, bottom: number, x0 = 0, x1 = g.width): void {
  const { width } = g;
  const packed = out32 !== undefined && (width & 3) === 0;
  if (packed && ((x0 | x1) & 3) !== 0) throw new Error(`a strip must start and end on multiples of four columns, not ${x0}…${x1}`);
  for (let y = top; y < bottom; y++) {
    // Pixel x of this row is `band[row + x]`.
    const row = (y - top) * stride - left;
    const mist = g.mistY[y]!;
    if (mist > 0) mistRow(band, row, g, mist, x0, x1);
    const start = (y * width + x0) * 3;
    if (packed) gradeRowPacked(band, row, out32, start >> 2, g, y, x0, x1);
    else gradeRowBytes(band, row, out, start, g, y, x0, x1);
  }
}

/** Mist (before the tone curve, as a fog colour blended in), in place on the band. */
function mistRow(band: Uint32Array, row: number, g: PreparedGrade, mist: number, x0: number, x1: number): void {
  const { mistX } = g;
  const [fr, fg, fb] = g.fog;
  for (let x = x0; x < x1; x++) {
    const m = mist * mistX[x]!;
    const p = band[row + x]!;
    const r = p & 255;
    const gg = (p >>> 8) & 255;
    const b = (p >>> 16) & 255;
    band[row + x] = ((r + (fr - r) * m + 0.5) | 0) | (((gg + (fg - gg) * m + 0.5) | 0) << 8) | (((b + (fb - b) * m + 0.5) | 0) << 16);
  }
}

function gradeRowBytes(band: Uint32Array, row: number, out: Uint8Array, start: number, g: PreparedGrade, y: number, x0: number, x1: number): void {
  const { lutR, lutG, lutB, grain, kx, gx1, gx2 } = g;
  const ky = g.ky[y]!;
  const gy1 = g.gy1[y]!;
  const gy2 = g.gy2[y]!;
  // `| 0` keeps the multiply-adds in int32 (a rounded double would drag the whole chain into float64).
  const glR = g.glow[0] | 0;
  const glG = g.glow[1] | 0;
  const glB = g.glow[2] | 0;
  const clamp = CLAMP;
  const mask = GRAIN_TILE - 1;
  const grainRow = (y & mask) * GRAIN_TILE;
  for (let x = x0, o = start; x < x1; x++, o += 3) {
    const p = band[row + x]!;
    const k = ky + kx[x]!;
    const gl = (gx1[x]! * gy1 + gx2[x]! * gy2) >> 8;
    const n = grain[grainRow + (x & mask)]! ;
    out[o] = clamp[(((lutR[p & 255]! + glR * gl) * k + 0x8000) >> 16) + n]!;
    out[o + 1] = clamp[(((lutG[(p >>> 8) & 255]! + glG * gl) * k + 0x8000) >> 16) + n]!;
    out[o + 2] = clamp[(((lutB[(p >>> 16) & 255]! + glB * gl) * k + 0x8000) >> 16) + n]!;
  }
}

function gradeRowPacked(band: Uint32Array, row: number, out32: Uint32Array, word: number, g: PreparedGrade, y: number, x0: number, x1: number): void {
  const { curves, levelX, grain, grainWords, kx, gx1, gx2 } = g;
  const ky = g.ky[y]!;
  const levelY = g.levelY[y]!;
  const gy1 = g.gy1[y]!;
  const gy2 = g.gy2[y]!;
  // `| 0` keeps the multiply-adds in int32 (a rounded double would drag the whole chain into float64).
  const glR = g.glow[0] | 0;
  const glG = g.glow[1] | 0;
  const glB = g.glow[2] | 0;
  const clamp = CLAMP;
  const mask = GRAIN_TILE - 1;
  const grainRow = (y & mask) * GRAIN_TILE;
  const wordRow = (y & mask) * (GRAIN_TILE / 4) * 3;
  const grainMin = g.grainMin;
  const roof = 255 - g.grainSpan;
  // Most groups of four are one colour (flat fills, smooth sky), and most of those carry the same
  // colour and factors as the group before: their three words are kept and only the grain added.
  let lastP = -1;
  let lastK = -1;
  let lastGl = -1;
  let lastC = -1;
  let fits = false;
  let w0 = 0;
  let w1 = 0;
  let w2 = 0;
  // The same colour before grain and clamp (grain levels carry the clamp offset), for uniform groups that do not fit.
  let baseR = 0;
  let baseG = 0;
  let baseB = 0;
  for (let x = x0, w = word; x < x1; x += 4, w += 3) {
    // Vignette and bloom are smooth: one factor per group of four pixels is plenty.
    const k = ky + kx[x]!;
    const gl = (gx1[x]! * gy1 + gx2[x]! * gy2) >> 8;
    const cr = ((levelY + levelX[x]!) | 0) * 768;
    let p = band[row + x]!;
    if (p === band[row + x + 1] && p === band[row + x + 2] && p === band[row + x + 3]) {
      if (p !== lastP || k !== lastK || gl !== lastGl || cr !== lastC) {
        lastP = p;
        lastK = k;
        lastGl = gl;
        lastC = cr;
        // The graded colour before grain, plus the least grain: when every channel stays within
        // 0…255 for any grain of the tile, no byte needs the clamp and the grain adds bytewise.
        const r = curves[cr + (p & 255)]! + ((glR * gl * k) >> 16) + grainMin;
        const gg = curves[cr + 256 + ((p >>> 8) & 255)]! + ((glG * gl * k) >> 16) + grainMin;
        const b = curves[cr + 512 + ((p >>> 16) & 255)]! + ((glB * gl * k) >> 16) + grainMin;
        fits = (r | gg | b | (roof - r) | (roof - gg) | (roof - b)) >= 0;
        w0 = r | (gg << 8) | (b << 16) | (r << 24);
        w1 = gg | (b << 8) | (r << 16) | (gg << 24);
        w2 = b | (r << 8) | (gg << 16) | (b << 24);
        baseR = r - grainMin;
        baseG = gg - grainMin;
        baseB = b - grainMin;
      }
      if (fits) {
        const i = wordRow + ((x & mask) >> 2) * 3;
        out32[w] = w0 + grainWords[i]!;
        out32[w + 1] = w1 + grainWords[i + 1]!;
        out32[w + 2] = w2 + grainWords[i + 2]!;
        continue;
      }
      // One colour near black or white: the clamp is needed, but the tone curves and glow are shared.
      const at = grainRow + (x & mask);
      let m = grain[at]!;
      const s0 = clamp[baseR + m]!;
      const t0 = clamp[baseG + m]!;
      const u0 = clamp[baseB + m]!;
      m = grain[at + 1]!;
      const s1 = clamp[baseR + m]!;
      const t1 = clamp[baseG + m]!;
      const u1 = clamp[baseB + m]!;
      m = grain[at + 2]!;
      const s2 = clamp[baseR + m]!;
      const t2 = clamp[baseG + m]!;
      const u2 = clamp[baseB + m]!;
      m = grain[at + 3]!;
      const s3 = clamp[baseR + m]!;
      const t3 = clamp[baseG + m]!;
      const u3 = clamp[baseB + m]!;
      out32[w] = s0 | (t0 << 8) | (u0 << 16) | (s1 << 24);
      out32[w + 1] = t1 | (u1 << 8) | (s2 << 16) | (t2 << 24);
      out32[w + 2] = u2 | (s3 << 8) | (t3 << 16) | (u3 << 24);
      continue;
    }
    const gr = (glR * gl * k) >> 16;
    const gg = (glG * gl * k) >> 16;
    const gb = (glB * gl * k) >> 16;
    const cg = cr + 256;
    const cb = cr + 512;
    let n = grain[grainRow + (x & mask)]!;
    const r0 = clamp[curves[cr + (p & 255)]! + gr + n]!;
    const g0 = clamp[curves[cg + ((p >>> 8) & 255)]! + gg + n]!;
    const b0 = clamp[curves[cb + ((p >>> 16) & 255)]! + gb + n]!;
    p = band[row + x + 1]!;
    n = grain[grainRow + ((x + 1) & mask)]!;
    const r1 = clamp[curves[cr + (p & 255)]! + gr + n]!;
    const g1 = clamp[curves[cg + ((p >>> 8) & 255)]! + gg + n]!;
    const b1 = clamp[curves[cb + ((p >>> 16) & 255)]! + gb + n]!;
    p = band[row + x + 2]!;
    n = grain[grainRow + ((x + 2) & mask)]!;
    const r2 = clamp[curves[cr + (p & 255)]! + gr + n]!;
    const g2 = clamp[curves[cg + ((p >>> 8) & 255)]! + gg + n]!;
    const b2 = clamp[curves[cb + ((p >>> 16) & 255)]! + gb + n]!;
    p = band[row + x + 3]!;
    n = grain[grainRow + ((x + 3) & mask)]!;
    const r3 = clamp[curves[cr + (p & 255)]! + gr + n]!;
    const g3 = clamp[curves[cg + ((p >>> 8) & 255)]! + gg + n]!;
    const b3 = clamp[curves[cb + ((p >>> 16) & 255)]! + gb + n]!;
    // Little-endian bytes R0 G0 B0 R1 | G1 B1 R2 G2 | B2 R3 G3 B3.
    out32[w] = r0 | (g0 << 8) | (b0 << 16) | (r1 << 24);
    out32[w + 1] = g1 | (b1 << 8) | (r2 << 16) | (g2 << 24);
    out32[w + 2] = b2 | (r3 << 8) | (g3 << 16) | (b3 << 24);
  }
}
