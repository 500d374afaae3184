/**
 * Draws the depth layers row by row. Each layer knows, per column, the first row hidden by an
 * opaque layer in front, and the range of rows where it can show at all, so a pixel is touched by
 * the layer that shows there (plus anti-aliased edges), never by every layer behind it.
 */
import type { Rgb } from './colour.ts';
import { Noise1D, Random } from './random.ts';
import type { LayerPlan, ScenePlan } from './scene-types.ts';

interface PreparedLayer {
  readonly layer: LayerPlan;
  /** Per row: the layer's colour (gradient and fog), RGB. */
  readonly rows: Float32Array;
  readonly rim: Float32Array;
  readonly fade: Float32Array;
  readonly fadeScale: number;
  /** Per column, the first row hidden by an opaque layer in front. */
  readonly hidden: Int32Array;
  /** Rows outside firstRow ≤ y < lastRow show nothing of this layer. */
  readonly firstRow: number;
  readonly lastRow: number;
}

export interface PreparedLayers {
  readonly width: number;
  readonly height: number;
  readonly layers: readonly PreparedLayer[];
  /** Per column, the first row hidden by an opaque layer: the sky shows above it. */
  readonly skyLimit: Int32Array;
  /** The rows above the water line that the water reflects, kept before sprites and grade touch them. */
  readonly reflection: Uint8ClampedArray | undefined;
  readonly reflectionTop: number;
  readonly reflectionBottom: number;
  readonly ripple: Noise1D;
}

function rowColours(layer: LayerPlan, fog: Rgb, height: number): Float32Array {
  const rows = new Float32Array(height * 3);
  const span = Math.max(1, layer.gradientTo - layer.gradientFrom);
  for (let y = 0; y < height; y++) {
    const t = Math.min(1, Math.max(0, (y - layer.gradientFrom) / span));
    const f = Math.min(1, layer.fog + layer.mist * t * t);
    for (let c = 0; c < 3; c++) {
      const base = layer.colourTop[c]! + (layer.colourBottom[c]! - layer.colourTop[c]!) * t;
      rows[y * 3 + c] = base + (fog[c]! - base) * f;
    }
  }
  return rows;
}

export function prepareLayers(plan: ScenePlan): PreparedLayers {
  const { width, height } = plan;
  const prepared: PreparedLayer[] = [];
  const hidden = new Int32Array(width).fill(height);
  const fade = new Float32Array(256);
  for (let d = 0; d < 256; d++) fade[d] = Math.exp(-((d / 255) * 4));
  for (let l = plan.layers.length - 1; l >= 0; l--) {
    const layer = plan.layers[l]!;
    const rim = new Float32Array(256);
    for (let d = 0; d < 256; d++) rim[d] = layer.rimStrength * Math.exp(-d / Math.max(0.5, layer.rimWidth));
    let firstRow = height;
    if (layer.kind === 'frame') firstRow = 0;
    else if (layer.kind === 'water') firstRow = Math.floor(layer.water!.y);
    else for (let x = 0; x < width; x++) firstRow = Math.min(firstRow, Math.floor(layer.top[x]!));
    let lastRow = 0;
    for (let x = 0; x < width; x++) lastRow = Math.max(lastRow, hidden[x]!);
    if (layer.kind === 'frame') {
      let maxBottom = 0;
      for (let x = 0; x < width; x++) maxBottom = Math.max(maxBottom, Math.ceil(layer.bottom![x]!));
      lastRow = Math.min(lastRow, maxBottom);
    }
    prepared.push({ layer, rows: rowColours(layer, plan.fogColour, height), rim, fade, fadeScale: 255 / (height * 0.05), hidden: hidden.slice(), firstRow: Math.max(0, firstRow), lastRow: Math.min(height, lastRow) });
    if (layer.kind === 'frame' || layer.holeTop) continue;
    for (let x = 0; x < width; x++) {
      const t = layer.kind === 'water' ? layer.water!.y : layer.top[x]!;
      const row = Math.max(0, Math.ceil(t) + 1);
      if (row < hidden[x]!) hidden[x] = row;
    }
  }
  prepared.reverse();
  const water = plan.layers.find((l) => l.kind === 'water')?.water;
  const reflectionBottom = water ? Math.max(0, Math.min(height, Math.floor(water.y))) : 0;
  const reflectionTop = water ? Math.max(0, Math.floor(2 * water.y - height - 1)) : 0;
  const reflection = water && reflectionBottom > reflectionTop ? new Uint8ClampedArray((reflectionBottom - reflectionTop) * width * 3) : undefined;
  const ripple = new Noise1D(new Random(plan.grade.seed ^ 0x5bd1e995), 512);
  return { width, height, layers: prepared, skyLimit: hidden, reflection, reflectionTop, reflectionBottom, ripple };
}

/** Draws every layer's share of row `y`, then keeps the row if the water will reflect it. */
export function drawLayerRow(data: Uint8ClampedArray, prepared: PreparedLayers, y: number): void {
  for (const p of prepared.layers) {
    if (y < p.firstRow || y >= p.lastRow) continue;
    if (p.layer.kind === 'water') drawWaterRow(data, prepared, p, y);
    else drawSolidRow(data, prepared.width, p, y);
  }
  const reflection = prepared.reflection;
  if (reflection && y >= prepared.reflectionTop && y < prepared.reflectionBottom) {
    const stride = prepared.width * 3;
    reflection.set(data.subarray(y * stride, (y + 1) * stride), (y - prepared.reflectionTop) * stride);
  }
}

function drawWaterRow(data: Uint8ClampedArray, prepared: PreparedLayers, p: PreparedLayer, y: number): void {
  const { width, height, ripple, reflection } = prepared;
  const water = p.layer.water!;
  const hidden = p.hidden;
  const rr = p.rows[y * 3]!;
  const rg = p.rows[y * 3 + 1]!;
  const rb = p.rows[y * 3 + 2]!;
  const depth = (y - water.y) / Math.max(1, height - water.y);
  const src = Math.floor(2 * water.y - y - 1);
  const shift = Math.round((ripple.at(y * 0.35 + water.phase) - 0.5) * water.ripple * height * (0.004 + depth * 0.02));
  const streak = 0.96 + 0.08 * ripple.at(y * 0.4 + 91);
  const visible = reflection !== undefined && src >= prepared.reflectionTop && src < prepared.reflectionBottom;
  const reflect = visible ? water.reflectivity * (1 - 0.55 * depth) : 0;
  const srcRow = visible ? (src - prepared.reflectionTop) * width * 3 : 0;
  const source = reflection ?? data;
  // out = colour·(1 − reflect) + source·streak·reflect
  const keep = 1 - reflect;
  const take = streak * reflect;
  const br = rr * keep;
  const bg = rg * keep;
  const bb = rb * keep;
  let index = y * width * 3;
  for (let x = 0; x < width; x++, index += 3) {
    if (y >= hidden[x]!) continue;
    let sx = x + shift;
    sx = sx < 0 ? 0 : sx >= width ? width - 1 : sx;
    const s = srcRow + sx * 3;
    data[index] = br + source[s]! * take;
    data[index + 1] = bg + source[s + 1]! * take;
    data[index + 2] = bb + source[s + 2]! * take;
  }
}

function drawSolidRow(data: Uint8ClampedArray, width: number, p: PreparedLayer, y: number): void {
  const layer = p.layer;
  const hidden = p.hidden;
  const rr = p.rows[y * 3]!;
  const rg = p.rows[y * 3 + 1]!;
  const rb = p.rows[y * 3 + 2]!;
  const top = layer.top;
  const bottom = layer.bottom;
  const holeTop = layer.holeTop;
  const holeBottom = layer.holeBottom;
  const shade = layer.shade;
  const snow = layer.snow;
  const rim = p.rim;
  const fade = p.fade;
  const fadeScale = p.fadeScale;
  const rimR = layer.rim[0];
  const rimG = layer.rim[1];
  const rimB = layer.rim[2];
  const windows = layer.windows;
  const frame = layer.kind === 'frame';
  const windowRow = windows !== undefined && y - Math.floor(y / windows.cellHeight) * windows.cellHeight < windows.cellHeight * 0.45;
  let index = y * width * 3;
  for (let x = 0; x < width; x++, index += 3) {
    if (y >= hidden[x]!) continue;
    let cover: number;
    let d: number;
    if (frame) {
      const bt = bottom![x]!;
      if (y >= bt) continue;
      cover = bt - y >= 1 ? 1 : bt - y;
      d = bt - y;
    } else {
      d = y + 1 - top[x]!;
      if (d <= 0) continue;
      cover = d >= 1 ? 1 : d;
      if (holeTop !== undefined && y >= holeTop[x]! - 1 && y < holeBottom![x]!) {
        const inHole = Math.min(y + 1 - holeTop[x]!, 1);
        cover *= 1 - Math.max(0, inHole);
        if (cover <= 0) continue;
      }
    }
    const di = d < 255 ? d | 0 : 255;
    let k = 1;
    if (shade !== undefined) {
      const fi = d * fadeScale;
      k += shade[x]! * fade[fi < 255 ? fi | 0 : 255]!;
    }
    const lit = rim[di]!;
    let r = rr * k + rimR * lit;
    let g = rg * k + rimG * lit;
    let b = rb * k + rimB * lit;
    if (snow !== undefined && y < snow[x]!) {
      r = r * 0.15 + 232 * 0.85 * k;
      g = g * 0.15 + 238 * 0.85 * k;
      b = b * 0.15 + 246 * 0.85 * k;
    }
    if (windowRow && d > windows.cellHeight) {
      const cx = (x / windows.cellWidth) | 0;
      const cy = (y / windows.cellHeight) | 0;
      if (x - cx * windows.cellWidth < windows.cellWidth * 0.5) {
        let h = Math.imul(cx ^ Math.imul(cy, 0x27d4eb2d) ^ windows.seed, 0x9e3779b1);
        h ^= h >>> 15;
        if ((h & 1023) < windows.density * 1024) {
          r = windows.colour[0];
          g = windows.colour[1];
          b = windows.colour[2];
        }
      }
    }
    if (cover < 1) {
      data[index] = data[index]! + (r - data[index]!) * cover;
      data[index + 1] = data[index + 1]! + (g - data[index + 1]!) * cover;
      data[index + 2] = data[index + 2]! + (b - data[index + 2]!) * cover;
    } else {
      data[index] = r;
      data[index + 1] = g;
      data[index + 2] = b;
    }
  }
}
