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

export interface PreparedGrade {
  readonly width: number;
  readonly lutR: Float32Array;
  readonly lutG: Float32Array;
  readonly lutB: Float32Array;
  readonly grain: Float32Array;
  /** Per column: vignette and paper (added to the row's factor), bloom falloffs, mist strength. */
  readonly kx: Float32Array;
  readonly gx1: Float32Array;
  readonly gx2: Float32Array;
  readonly mistX: Float32Array;
  /** Per row: the brightness factor, the two bloom weights and the mist amount. */
  readonly ky: Float32Array;
  readonly gy1: Float32Array;
  readonly gy2: Float32Array;
  readonly mistY: Float32Array;
  readonly fog: readonly [number, number, number];
  readonly glow: readonly [number, number, number];
}

export function prepareGrade(grade: GradePlan, width: number, height: number): PreparedGrade {
  const random = new Random(grade.seed);
  // Grain scales with the image so a thumbnail and a 4K render look alike.
  const grain = new Float32Array(GRAIN_TILE * GRAIN_TILE);
  for (let i = 0; i < grain.length; i++) grain[i] = (random.next() + random.next() - 1) * grade.grain;
  const invH = 1 / height;
  const mistNoise = new Noise1D(random.fork(7));
  const paperNoise = new Noise1D(random.fork(8));
  const aspect = width / height;
  const vig = grade.vignette;
  const kx = new Float32Array(width);
  const gx1 = new Float32Array(width);
  const gx2 = new Float32Array(width);
  const mistX = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const u = (x / width) * 2 - 1;
    const dx = ((x - grade.glowX) * invH) / grade.glowRadius;
    gx1[x] = Math.exp(-dx * dx * 4);
    gx2[x] = Math.exp(-dx * dx * 0.6);
    mistX[x] = 0.55 + 0.45 * mistNoise.fbm(x * invH * 2.2, 3);
    kx[x] = -vig * u * u * aspect * 0.25 + (grade.paper > 0 ? (paperNoise.fbm(x * invH * 9, 3) - 0.5) * grade.paper : 0);
  }
  const ky = new Float32Array(height);
  const gy1 = new Float32Array(height);
  const gy2 = new Float32Array(height);
  const mistY = new Float32Array(height);
  for (let y = 0; y < height; y++) {
    const v = (y / height) * 2 - 1;
    const dy = ((y - grade.glowY) * invH) / grade.glowRadius;
    gy1[y] = Math.exp(-dy * dy * 4) * grade.glowStrength;
    gy2[y] = Math.exp(-dy * dy * 0.6) * grade.glowStrength * 0.35;
    const my = (y * invH - grade.mistY) / grade.mistHeight;
    const mist = grade.mist > 0 ? grade.mist * Math.exp(-my * my) : 0;
    mistY[y] = mist > 0.002 ? mist : 0;
    ky[y] = 1 - vig * v * v * 0.5 + (grade.paper > 0 ? (paperNoise.at(y * invH * 9 + 300) - 0.5) * grade.paper : 0);
  }
  return {
    width, lutR: toneCurve(grade, 0), lutG: toneCurve(grade, 1), lutB: toneCurve(grade, 2), grain, kx, gx1, gx2, mistX, ky, gy1, gy2, mistY,
    fog: [grade.fogColour[0], grade.fogColour[1], grade.fogColour[2]], glow: [grade.glowColour[0], grade.glowColour[1], grade.glowColour[2]],
  };
}

/** Grades rows `y0` ≤ y < `y1` of `data` in place. */
export function gradeRows(data: Uint8ClampedArray, g: PreparedGrade, y0: number, y1: number): void {
  const { width, lutR, lutG, lutB, grain, kx, gx1, gx2, mistX } = g;
  const [fogR, fogG, fogB] = g.fog;
  const [glowR, glowG, glowB] = g.glow;
  for (let y = y0; y < y1; y++) {
    const ky = g.ky[y]!;
    const gy1 = g.gy1[y]!;
    const gy2 = g.gy2[y]!;
    const mist = g.mistY[y]!;
    const grainRow = (y & (GRAIN_TILE - 1)) * GRAIN_TILE;
    let index = y * width * 3;
    if (mist > 0) {
      for (let x = 0; x < width; x++, index += 3) {
        const m = mist * mistX[x]!;
        const gl = gx1[x]! * gy1 + gx2[x]! * gy2;
        const k = ky + kx[x]!;
        const n = grain[grainRow + (x & (GRAIN_TILE - 1))]!;
        const r = lutR[data[index]!]!;
        const gg = lutG[data[index + 1]!]!;
        const b = lutB[data[index + 2]!]!;
        data[index] = (r + (fogR - r) * m + glowR * gl) * k + n;
        data[index + 1] = (gg + (fogG - gg) * m + glowG * gl) * k + n;
        data[index + 2] = (b + (fogB - b) * m + glowB * gl) * k + n;
      }
    } else {
      for (let x = 0; x < width; x++, index += 3) {
        const gl = gx1[x]! * gy1 + gx2[x]! * gy2;
        const k = ky + kx[x]!;
        const n = grain[grainRow + (x & (GRAIN_TILE - 1))]!;
        data[index] = (lutR[data[index]!]! + glowR * gl) * k + n;
        data[index + 1] = (lutG[data[index + 1]!]! + glowG * gl) * k + n;
        data[index + 2] = (lutB[data[index + 2]!]! + glowB * gl) * k + n;
      }
    }
  }
}
