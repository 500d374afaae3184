/** The sky at low resolution (gradient, sun glow, clouds, aurora, rays); smooth, so upsampling hides the scale. */
import { Noise1D, Noise2D, Random } from './random.ts';
import type { SkyPlan } from './scene-types.ts';

export interface SkyField {
  readonly data: Float32Array;
  readonly width: number;
  readonly height: number;
  /** Image pixels per field cell. */
  readonly scale: number;
}

/** The cloud noise's lattice, refilled for every field (a thread makes one field at a time, and nothing keeps it after). */
const NOISE_TABLE = new Float32Array(256 * 256);

/** Field cells are about this many; clouds and glow need no more. */
const FIELD_CELLS = 40_000;

export function skyScale(width: number, height: number): number {
  return Math.max(2, Math.round(Math.sqrt((width * height) / FIELD_CELLS)));
}

function smooth(edge0: number, edge1: number, x: number): number {
  const t = Math.min(1, Math.max(0, (x - edge0) / (edge1 - edge0)));
  return t * t * (3 - 2 * t);
}

/**
 * Renders the field for rows 0…maxY of an image of `width`×`height`, in field columns
 * `firstColumn` ≤ i ≤ `lastColumn` (all of them by default; a strip of the image needs only its
 * own). A cell depends only on its (i, j), so the cells of a strip are those of the whole field.
 */
export function renderSkyField(sky: SkyPlan, width: number, height: number, maxY: number, firstColumn = 0, lastColumn = Infinity): SkyField {
  const scale = skyScale(width, height);
  const fw = Math.ceil(width / scale) + 2;
  const fh = Math.ceil(height / scale) + 2;
  const data = new Float32Array(fw * fh * 3);
  const random = new Random(sky.noiseSeed);
  const noise = new Noise2D(random.fork(1), NOISE_TABLE);
  const curtains = new Noise1D(random.fork(2));
  const rayNoise = new Noise1D(random.fork(3));
  const rowColour = new Float32Array(3);
  const lastRow = Math.min(fh - 1, Math.ceil(maxY / scale) + 1);
  const invH = 1 / height;
  const cloudFreq = sky.cloudScale * 4;
  const sunDx = sky.sunX;
  const sunDy = sky.sunY;
  // exp(−60·d²) is separable: a column table times a row factor.
  const tightX = new Float32Array(fw);
  for (let i = 0; i < fw; i++) {
    const dx = (i * scale - sunDx) * invH;
    tightX[i] = Math.exp(-dx * dx * 60) * 0.85;
  }
  const i0 = Math.max(0, firstColumn);
  const i1 = Math.min(fw - 1, lastColumn);
  for (let j = 0; j <= lastRow; j++) {
    const y = j * scale;
    let t = Math.min(1, Math.max(0, y / Math.max(1, sky.horizonY)));
    if (sky.posterize > 0) t = Math.floor(t * sky.posterize + 0.5) / sky.posterize;
    const k = t < 0.55 ? smooth(0, 0.55, t) : smooth(0.55, 1, t);
    const from = t < 0.55 ? sky.top : sky.mid;
    const to = t < 0.55 ? sky.mid : sky.horizon;
    rowColour[0] = from[0] + (to[0] - from[0]) * k;
    rowColour[1] = from[1] + (to[1] - from[1]) * k;
    rowColour[2] = from[2] + (to[2] - from[2]) * k;
    const yn = y * invH;
    const band = smooth(sky.cloudBandTop - 0.08, sky.cloudBandTop + 0.1, yn) * (1 - smooth(sky.cloudBandBottom - 0.1, sky.cloudBandBottom + 0.04, yn));
    const auroraRow = sky.aurora > 0 ? sky.aurora * Math.exp(-(((yn - 0.22) / 0.16) ** 2)) : 0;
    const dyRow = (y - sunDy) * invH;
    const tightY = Math.exp(-dyRow * dyRow * 60);
    for (let i = i0; i <= i1; i++) {
      const x = i * scale;
      let r = rowColour[0]!;
      let g = rowColour[1]!;
      let b = rowColour[2]!;
      const dx = (x - sunDx) * invH;
      const dy = (y - sunDy) * invH;
      const d2 = dx * dx + dy * dy;
      const len = Math.sqrt(d2);
      // exp(−3.2·len) = exp(−1.6·len)², and the rays use exp(−1.6·len): one exp for both.
      const wide = Math.exp(-len * 1.6);
      const glow = sky.glow * (tightX[i]! * tightY + wide * wide * 0.45);
      r += (sky.sunColour[0] - r) * Math.min(1, glow);
      g += (sky.sunColour[1] - g) * Math.min(1, glow);
      b += (sky.sunColour[2] - b) * Math.min(1, glow);
      if (sky.rays > 0 && dy > -0.5) {
        const angle = Math.atan2(dy, dx);
        const rn = rayNoise.at(angle * 14 + 50);
        const ray = rn * rn * rn * sky.rays * wide;
        r += (sky.sunColour[0] - r) * ray;
        g += (sky.sunColour[1] - g) * ray;
        b += (sky.sunColour[2] - b) * ray;
      }
      if (auroraRow > 0) {
        const c = curtains.fbm(x * invH * 3 + yn * 1.5, 2);
        const a = auroraRow * smooth(0.45, 0.85, c);
        r += sky.aurora * 0 + (sky.auroraColour[0] - r) * a * 0.8;
        g += (sky.auroraColour[1] - g) * a * 0.8;
        b += (sky.auroraColour[2] - b) * a * 0.8;
      }
      if (band > 0.01 && sky.clouds > 0) {
        const nx = x * invH * cloudFreq;
        const ny = yn * cloudFreq * sky.cloudStretch;
        const n = noise.fbm(nx, ny, 4, 0.55);
        const coverage = smooth(1 - sky.clouds * 0.62, 1.02 - sky.clouds * 0.42, n * (0.55 + 0.45 * band)) * band;
        if (coverage > 0.003) {
          const toward = 0.08;
          const n2 = noise.fbm(nx - (dx / (len + 1e-6)) * toward * cloudFreq, ny - (dy / (len + 1e-6)) * toward * cloudFreq * sky.cloudStretch, 3, 0.55);
          const lit = Math.min(1, Math.max(0, 0.55 + (n - n2) * 5 + glow * 0.6));
          const cr = sky.cloudShade[0] + (sky.cloudLit[0] - sky.cloudShade[0]) * lit;
          const cg = sky.cloudShade[1] + (sky.cloudLit[1] - sky.cloudShade[1]) * lit;
          const cb = sky.cloudShade[2] + (sky.cloudLit[2] - sky.cloudShade[2]) * lit;
          const a = coverage * 0.92;
          r += (cr - r) * a;
          g += (cg - g) * a;
          b += (cb - b) * a;
        }
      }
      const p = (j * fw + i) * 3;
      data[p] = r;
      data[p + 1] = g;
      data[p + 2] = b;
    }
  }
  return { data, width: fw, height: fh, scale };
}
