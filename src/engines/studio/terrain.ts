/** Skyline generators: each returns, per column, the y where a layer begins (its silhouette). */
import { Noise1D, type Random } from './random.ts';

/** Maps columns to world units, so a series can pan across one world and shapes keep proportions at any aspect. */
export interface View {
  readonly width: number;
  readonly height: number;
  readonly zoom: number;
  readonly pan: number;
}

export function worldX(view: View, x: number): number {
  return ((x - view.width / 2) / view.height) * view.zoom + view.pan;
}

export function columnOf(view: View, u: number): number {
  return ((u - view.pan) / view.zoom) * view.height + view.width / 2;
}

function fill(view: View, f: (u: number) => number): Float32Array {
  const top = new Float32Array(view.width);
  for (let x = 0; x < view.width; x++) top[x] = f(worldX(view, x));
  return top;
}

export function ridgeLine(view: View, random: Random, baseY: number, amplitude: number, frequency: number, sharpness: number): Float32Array {
  const noise = new Noise1D(random, 512);
  const off = random.range(0, 400);
  return fill(view, (u) => {
    let sum = 0;
    let amp = 1;
    let norm = 0;
    let f = frequency;
    for (let o = 0; o < 5; o++) {
      const n = 1 - Math.abs(noise.at(u * f + off + o * 31) * 2 - 1);
      sum += amp * n ** (1 + sharpness);
      norm += amp;
      amp *= 0.48;
      f *= 2.1;
    }
    return baseY - amplitude * (sum / norm) * 1.25 + amplitude * 0.2;
  });
}

export function hillLine(view: View, random: Random, baseY: number, amplitude: number, frequency: number): Float32Array {
  const noise = new Noise1D(random, 512);
  const off = random.range(0, 400);
  return fill(view, (u) => baseY - amplitude * (noise.fbm(u * frequency + off, 3, 0.35) - 0.3) * 1.6);
}

export function terraceLine(view: View, random: Random, baseY: number, amplitude: number, frequency: number, steps: number): Float32Array {
  const smooth = hillLine(view, random, baseY, amplitude, frequency);
  const step = Math.max(2, amplitude / steps);
  for (let x = 0; x < smooth.length; x++) {
    const h = baseY - smooth[x]!;
    const k = h / step;
    const i = Math.floor(k);
    const f = k - i;
    const edge = f > 0.82 ? (f - 0.82) / 0.18 : 0;
    smooth[x] = baseY - (i + edge * edge) * step;
  }
  return smooth;
}

export function duneLine(view: View, random: Random, baseY: number, amplitude: number, frequency: number): Float32Array {
  const noise = new Noise1D(random, 512);
  const off = random.range(0, 400);
  return fill(view, (u) => {
    const w = u * frequency + noise.at(u * frequency * 0.5 + off) * 1.5;
    const f = w - Math.floor(w);
    const crest = f < 0.7 ? (f / 0.7) ** 1.6 : 1 - ((f - 0.7) / 0.3) ** 0.8;
    return baseY - amplitude * (0.35 + 0.65 * crest) * (0.6 + 0.4 * noise.at(Math.floor(w) * 3.3 + off));
  });
}

/** Sheer-sided plateaus and stacks (cliffs, mesas). */
export function cliffLine(view: View, random: Random, baseY: number, amplitude: number, frequency: number): Float32Array {
  const noise = new Noise1D(random, 512);
  const off = random.range(0, 400);
  return fill(view, (u) => {
    const n = noise.fbm(u * frequency + off, 2, 0.3);
    const plateau = n > 0.5 ? 1 : n > 0.42 ? (n - 0.42) / 0.08 : 0;
    return baseY - amplitude * (0.15 + 0.85 * plateau * (0.9 + 0.1 * noise.at(u * frequency * 6 + off)));
  });
}

/** Trees standing on `ground`: conifers (triangles) or round crowns, updated in place. */
export function addTrees(view: View, random: Random, ground: Float32Array, treeHeight: number, spacing: number, kind: 'conifer' | 'round' | 'palm', density = 1): void {
  const { width } = view;
  const pxPerUnit = view.height / view.zoom;
  const stepPx = Math.max(2, spacing * pxPerUnit);
  const startU = Math.floor(worldX(view, 0) / spacing) - 1;
  const endU = Math.ceil(worldX(view, width) / spacing) + 1;
  for (let i = startU; i <= endU; i++) {
    // Trees are placed per world cell from a cell-seeded stream, so panning keeps the same trees.
    const cell = random.fork(i + 100_000);
    if (!cell.chance(density)) continue;
    const cx = columnOf(view, (i + cell.range(0, 1)) * spacing);
    const h = treeHeight * cell.range(0.6, 1.25);
    const half = kind === 'conifer' ? h * cell.range(0.22, 0.32) : kind === 'palm' ? h * 0.45 : h * cell.range(0.35, 0.55);
    const x0 = Math.max(0, Math.floor(cx - half));
    const x1 = Math.min(width - 1, Math.ceil(cx + half));
    const baseIndex = Math.min(width - 1, Math.max(0, Math.round(cx)));
    const base = ground[baseIndex]! + h * 0.08;
    for (let x = x0; x <= x1; x++) {
      const t = Math.abs(x + 0.5 - cx) / half;
      if (t >= 1) continue;
      let y: number;
      if (kind === 'conifer') y = base - h * (1 - t) - h * 0.04 * Math.sin(t * 18);
      else if (kind === 'palm') y = base - h * (0.92 + 0.08 * (1 - t)) + h * 0.35 * t * t;
      else y = base - h * 0.45 - h * 0.55 * Math.sqrt(1 - t * t);
      if (y < ground[x]!) ground[x] = y;
    }
    void stepPx;
  }
}

/** Buildings: flat roofs, setbacks and the odd spire. */
export function cityLine(view: View, random: Random, baseY: number, maxHeight: number, meanWidth: number): Float32Array {
  const top = new Float32Array(view.width).fill(baseY);
  const startU = Math.floor(worldX(view, 0) / meanWidth) - 2;
  const endU = Math.ceil(worldX(view, view.width) / meanWidth) + 2;
  for (let i = startU; i <= endU; i++) {
    const cell = random.fork(i + 200_000);
    const x0 = columnOf(view, (i + cell.range(-0.2, 0.2)) * meanWidth);
    const x1 = columnOf(view, (i + 1 + cell.range(0.0, 0.5)) * meanWidth);
    const h = maxHeight * cell.range(0.25, 1) ** 1.4;
    const setback = cell.chance(0.4);
    const spire = cell.chance(0.18);
    const mid = (x0 + x1) / 2;
    for (let x = Math.max(0, Math.floor(x0)); x < Math.min(view.width, Math.ceil(x1)); x++) {
      let y = baseY - h;
      if (setback && Math.abs(x - mid) < (x1 - x0) * 0.28) y -= h * 0.18;
      if (spire && Math.abs(x - mid) < Math.max(1, (x1 - x0) * 0.04)) y -= h * 0.45;
      if (y < top[x]!) top[x] = y;
    }
  }
  return top;
}

/** Houses with gabled roofs and chimneys. */
export function rooftopLine(view: View, random: Random, baseY: number, houseHeight: number, meanWidth: number): Float32Array {
  const top = new Float32Array(view.width).fill(baseY);
  const startU = Math.floor(worldX(view, 0) / meanWidth) - 2;
  const endU = Math.ceil(worldX(view, view.width) / meanWidth) + 2;
  for (let i = startU; i <= endU; i++) {
    const cell = random.fork(i + 300_000);
    const x0 = columnOf(view, (i + cell.range(-0.15, 0.1)) * meanWidth);
    const x1 = columnOf(view, (i + 1 + cell.range(0, 0.35)) * meanWidth);
    const wall = houseHeight * cell.range(0.5, 1.1);
    const roof = (x1 - x0) * cell.range(0.25, 0.5);
    const curved = cell.chance(0.35);
    const mid = (x0 + x1) / 2;
    const chimney = cell.chance(0.4) ? x0 + (x1 - x0) * cell.range(0.2, 0.8) : -1e9;
    const lift = baseY - cell.range(0, houseHeight * 0.6);
    for (let x = Math.max(0, Math.floor(x0)); x < Math.min(view.width, Math.ceil(x1)); x++) {
      const t = 1 - Math.abs(x - mid) / ((x1 - x0) / 2);
      const shape = curved ? 1 - (1 - t) ** 0.55 : t;
      let y = lift - wall - roof * shape;
      if (Math.abs(x - chimney) < (x1 - x0) * 0.05) y = Math.min(y, lift - wall - roof * 0.9);
      if (y < top[x]!) top[x] = y;
    }
  }
  return top;
}

/** Slender towers (spires, lighthouses, mooring masts) standing on an existing line. */
export function addTowers(view: View, random: Random, top: Float32Array, count: number, towerHeight: number): void {
  for (let i = 0; i < count; i++) {
    const cx = random.range(0.06, 0.94) * view.width;
    const h = towerHeight * random.range(0.6, 1.2);
    const w = Math.max(2, h * random.range(0.05, 0.09));
    const base = top[Math.round(cx)] ?? top[0]!;
    for (let x = Math.max(0, Math.floor(cx - w)); x < Math.min(view.width, Math.ceil(cx + w)); x++) {
      const t = Math.abs(x + 0.5 - cx) / w;
      const y = base - h * (t < 0.35 ? 1 : 1 - (t - 0.35) * 0.25) - (t < 0.12 ? h * 0.18 : 0);
      if (y < top[x]!) top[x] = y;
    }
  }
}

export interface Arcade {
  readonly top: Float32Array;
  readonly holeTop: Float32Array;
  readonly holeBottom: Float32Array;
}

/** A deck on piers with round arches between them (viaducts, colonnades, aqueducts). */
export function arcade(view: View, deckY: number, deckThickness: number, spanPx: number, pierPx: number, groundY: number, offset: number): Arcade {
  const top = new Float32Array(view.width).fill(deckY);
  const holeTop = new Float32Array(view.width).fill(1e9);
  const holeBottom = new Float32Array(view.width).fill(groundY + 2);
  const radius = (spanPx - pierPx) / 2;
  const spring = deckY + deckThickness + radius;
  for (let x = 0; x < view.width; x++) {
    const local = (((x + offset) % spanPx) + spanPx) % spanPx;
    const dx = local - spanPx / 2;
    if (Math.abs(dx) < radius) holeTop[x] = spring - Math.sqrt(radius * radius - dx * dx);
  }
  return { top, holeTop, holeBottom };
}
