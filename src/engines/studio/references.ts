/** What the engine reads from reference images: a small palette, the light, and the first one's large shapes. */
import { labToRgb, rgbToLab, type Lab, type Rgb } from './colour.ts';
import { Random } from './random.ts';

export interface Thumbnail {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

export interface PaletteEntry {
  readonly rgb: Rgb;
  readonly lab: Lab;
  readonly weight: number;
}

export interface ReferenceSummary {
  /** Dominant colours, darkest first, weights summing to the reference's weight. */
  readonly palette: readonly PaletteEntry[];
  /** Mean CIELAB lightness, 0–100. */
  readonly lightness: number;
  /** Where sky meets ground, as a fraction of the height. */
  readonly horizon: number;
  /** The sky/ground boundary across 48 columns, fractions of the height. */
  readonly skyline: Float32Array;
  /** The brightest region, fractions of width and height. */
  readonly light: { readonly x: number; readonly y: number };
}

/** k-means in CIELAB over the thumbnail's pixels; deterministic (seeded from the data). */
export function dominantColours(image: Thumbnail, k: number, weight = 1): PaletteEntry[] {
  const n = image.width * image.height;
  const stride = Math.max(1, Math.floor(n / 1500));
  const samples: Lab[] = [];
  for (let i = 0; i < n; i += stride) {
    const p = i * image.channels;
    samples.push(rgbToLab([image.data[p]!, image.data[p + 1]!, image.data[p + 2]!]));
  }
  const random = new Random(samples.length * 7919 + k);
  const centres: [number, number, number][] = [];
  // k-means++ style seeding: spread the centres over the colours that are there.
  centres.push([...samples[Math.floor(random.next() * samples.length)]!]);
  while (centres.length < k) {
    let best = samples[0]!;
    let bestD = -1;
    for (let s = 0; s < samples.length; s += 3) {
      const lab = samples[s]!;
      let d = Infinity;
      for (const c of centres) d = Math.min(d, (lab[0] - c[0]) ** 2 + (lab[1] - c[1]) ** 2 + (lab[2] - c[2]) ** 2);
      if (d > bestD) (bestD = d), (best = lab);
    }
    centres.push([...best]);
  }
  const counts = new Float64Array(k);
  for (let iteration = 0; iteration < 10; iteration++) {
    const sums = new Float64Array(k * 3);
    counts.fill(0);
    for (const lab of samples) {
      let bi = 0;
      let bd = Infinity;
      for (let c = 0; c < k; c++) {
        const ce = centres[c]!;
        const d = (lab[0] - ce[0]) ** 2 + (lab[1] - ce[1]) ** 2 + (lab[2] - ce[2]) ** 2;
        if (d < bd) (bd = d), (bi = c);
      }
      counts[bi]!++;
      sums[bi * 3] = sums[bi * 3]! + lab[0];
      sums[bi * 3 + 1] = sums[bi * 3 + 1]! + lab[1];
      sums[bi * 3 + 2] = sums[bi * 3 + 2]! + lab[2];
    }
    for (let c = 0; c < k; c++) {
      if (counts[c]! === 0) continue;
      centres[c] = [sums[c * 3]! / counts[c]!, sums[c * 3 + 1]! / counts[c]!, sums[c * 3 + 2]! / counts[c]!];
    }
  }
  const entries: PaletteEntry[] = [];
  for (let c = 0; c < k; c++) {
    if (counts[c]! === 0) continue;
    const lab = centres[c]!;
    entries.push({ lab, rgb: labToRgb(lab), weight: (counts[c]! / samples.length) * weight });
  }
  return entries.sort((a, b) => a.lab[0] - b.lab[0]);
}

export function summarizeReference(image: Thumbnail, weight: number): ReferenceSummary {
  const { width, height, channels, data } = image;
  const luma = new Float32Array(width * height);
  let sum = 0;
  for (let i = 0; i < width * height; i++) {
    const p = i * channels;
    const l = 0.2126 * data[p]! + 0.7152 * data[p + 1]! + 0.0722 * data[p + 2]!;
    luma[i] = l;
    sum += l;
  }
  const palette = dominantColours(image, 5, weight);
  // Skyline: per column, the row where the colour departs most from the top rows.
  const columns = 48;
  const skyline = new Float32Array(columns);
  for (let c = 0; c < columns; c++) {
    const x = Math.min(width - 1, Math.floor(((c + 0.5) / columns) * width));
    const sky = (luma[x]! + luma[width + x]! + luma[2 * width + x]!) / 3;
    let boundary = height - 1;
    for (let y = 3; y < height; y++) {
      if (Math.abs(luma[y * width + x]! - sky) > 38) {
        boundary = y;
        break;
      }
    }
    skyline[c] = boundary / height;
  }
  for (let pass = 0; pass < 2; pass++) for (let c = 1; c < columns - 1; c++) skyline[c] = (skyline[c - 1]! + skyline[c]! * 2 + skyline[c + 1]!) / 4;
  const sorted = Array.from(skyline).sort((a, b) => a - b);
  let bx = 0.5;
  let by = 0.3;
  let best = -1;
  const cell = Math.max(1, Math.floor(Math.min(width, height) / 8));
  for (let y = 0; y + cell <= height; y += cell) {
    for (let x = 0; x + cell <= width; x += cell) {
      let s = 0;
      for (let yy = y; yy < y + cell; yy++) for (let xx = x; xx < x + cell; xx++) s += luma[yy * width + xx]!;
      if (s > best) (best = s), (bx = (x + cell / 2) / width), (by = (y + cell / 2) / height);
    }
  }
  return {
    palette,
    lightness: rgbToLab([sum / (width * height), sum / (width * height), sum / (width * height)])[0],
    horizon: sorted[Math.floor(columns / 2)] ?? 0.55,
    skyline,
    light: { x: bx, y: by },
  };
}
