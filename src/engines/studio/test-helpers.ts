/** Measuring helpers for the studio tests: CIELAB k-means palettes, distances, correlation. */
import { deltaE, rgbToLab, type Lab, type Rgb } from './colour.ts';
import type { RawImage } from '../spec/image-engine.ts';

export interface Swatch {
  readonly lab: Lab;
  readonly weight: number;
}

/** Dominant colours of an image by k-means in CIELAB (deterministic seeding, sampled pixels). */
export function dominantLab(image: RawImage, k = 6, samples = 4000): Swatch[] {
  const n = image.width * image.height;
  const stride = Math.max(1, Math.floor(n / samples));
  const points: Lab[] = [];
  for (let i = 0; i < n; i += stride) {
    const p = i * image.channels;
    points.push(rgbToLab([image.data[p]!, image.data[p + 1]!, image.data[p + 2]!]));
  }
  const centres: Lab[] = [points[0]!];
  while (centres.length < k) {
    let best = points[0]!;
    let bestD = -1;
    for (const p of points) {
      const d = Math.min(...centres.map((c) => deltaE(p, c)));
      if (d > bestD) (bestD = d), (best = p);
    }
    centres.push(best);
  }
  let counts = new Array<number>(k).fill(0);
  for (let iteration = 0; iteration < 12; iteration++) {
    const sums = centres.map(() => [0, 0, 0]);
    counts = new Array<number>(k).fill(0);
    for (const p of points) {
      let bi = 0;
      let bd = Infinity;
      centres.forEach((c, i) => {
        const d = deltaE(p, c);
        if (d < bd) (bd = d), (bi = i);
      });
      counts[bi]!++;
      const s = sums[bi]!;
      s[0]! += p[0];
      s[1]! += p[1];
      s[2]! += p[2];
    }
    centres.forEach((_c, i) => {
      if (counts[i]! > 0) centres[i] = [sums[i]![0]! / counts[i]!, sums[i]![1]! / counts[i]!, sums[i]![2]! / counts[i]!];
    });
  }
  return centres.map((lab, i) => ({ lab, weight: counts[i]! / points.length })).filter((s) => s.weight > 0);
}

/** Weighted mean, over a's swatches, of the ΔE to the nearest swatch of b; averaged both ways. */
export function paletteDistance(a: readonly Swatch[], b: readonly Swatch[]): number {
  const oneWay = (x: readonly Swatch[], y: readonly Swatch[]): number => {
    const total = x.reduce((s, w) => s + w.weight, 0);
    return x.reduce((s, w) => s + w.weight * Math.min(...y.map((v) => deltaE(w.lab, v.lab))), 0) / total;
  };
  return (oneWay(a, b) + oneWay(b, a)) / 2;
}

export function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** Box-averaged `size`×`size` RGB thumbnail. */
export function thumb(image: RawImage, size = 16): Float64Array {
  const out = new Float64Array(size * size * 3);
  const counts = new Float64Array(size * size);
  for (let y = 0; y < image.height; y++) {
    const ty = Math.floor((y * size) / image.height);
    for (let x = 0; x < image.width; x++) {
      const tx = Math.floor((x * size) / image.width);
      const t = ty * size + tx;
      const p = (y * image.width + x) * image.channels;
      out[t * 3]! += image.data[p]!;
      out[t * 3 + 1]! += image.data[p + 1]!;
      out[t * 3 + 2]! += image.data[p + 2]!;
      counts[t]!++;
    }
  }
  for (let t = 0; t < size * size; t++) for (let c = 0; c < 3; c++) out[t * 3 + c]! /= counts[t]!;
  return out;
}

export function thumbDistance(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** Normalised cross-correlation of two equally long sample arrays. */
export function ncc(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) (ma += a[i]!), (mb += b[i]!);
  ma /= a.length;
  mb /= b.length;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! - ma;
    const y = b[i]! - mb;
    num += x * y;
    da += x * x;
    db += y * y;
  }
  return num / Math.sqrt(da * db || 1);
}

/** Grey values of a rectangle of an RGB image. */
export function crop(image: RawImage, x: number, y: number, width: number, height: number): Float64Array {
  const out = new Float64Array(width * height);
  for (let j = 0; j < height; j++) {
    for (let i = 0; i < width; i++) {
      const p = ((y + j) * image.width + x + i) * image.channels;
      out[j * width + i] = 0.299 * image.data[p]! + 0.587 * image.data[p + 1]! + 0.114 * image.data[p + 2]!;
    }
  }
  return out;
}

export function meanLab(image: RawImage): Lab {
  const swatches = dominantLab(image, 1, 3000);
  return swatches[0]!.lab;
}

export function rgbLab(rgb: Rgb): Lab {
  return rgbToLab(rgb);
}
