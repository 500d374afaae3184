/**
 * Draws the depth layers row by row. Each layer knows, per column, the first row hidden by an
 * opaque layer in front, and the range of rows where it can show at all, so a pixel is touched by
 * the layer that shows there (plus anti-aliased edges), never by every layer behind it.
 */
import type { Rgb } from './colour.ts';
import { Noise1D, Random } from './random.ts';
import type { LayerPlan, ScenePlan } from './scene-types.ts';

type WaterPlan = NonNullable<LayerPlan['water']>;

interface PreparedLayer {
  readonly layer: LayerPlan;
  /** Per row: the layer's colour (gradient and fog), RGB. */
  readonly rows: Float32Array;
  readonly rim: Float32Array;
  readonly fade: Float32Array;
  readonly fadeScale: number;
  /** Per column, the first row hidden by an opaque layer in front. */
  readonly hidden: Int32Array;
  /** Below this depth under its edge the layer is its flat row colour (rim light and face shading have faded out). */
  readonly deep: number;
  /** Rows outside firstRow ≤ y < lastRow show nothing of this layer. */
  readonly firstRow: number;
  readonly lastRow: number;
  /**
   * For a plain solid layer (no holes), per column: the first row it covers at all (`⌊top⌋`) and
   * the first row where it is its flat row colour (below the rim, the face shading and any snow),
   * at most `hidden`. Undefined for frames and layers with holes, which take the general path.
   */
  readonly from: Int32Array | undefined;
  readonly flatFrom: Int32Array | undefined;
  /**
   * With `from`, per block of `BLOCK` drawn columns (from `left`): the least `from`, the most
   * `flatFrom`, the least and the most `hidden`, so that a row can skip or fill a whole block.
   */
  readonly blocks: Int32Array | undefined;
}

/** Columns per block of `PreparedLayer.blocks`. */
const BLOCK = 32;

function columnBlocks(from: Int32Array, flatFrom: Int32Array, hidden: Int32Array, left: number, right: number): Int32Array {
  const n = Math.ceil((right - left) / BLOCK);
  const blocks = new Int32Array(n * 4);
  for (let b = 0; b < n; b++) {
    let minFrom = Infinity;
    let maxFlat = -Infinity;
    let minHidden = Infinity;
    let maxHidden = -Infinity;
    for (let x = left + b * BLOCK; x < Math.min(right, left + (b + 1) * BLOCK); x++) {
      minFrom = Math.min(minFrom, from[x]!);
      maxFlat = Math.max(maxFlat, flatFrom[x]!);
      minHidden = Math.min(minHidden, hidden[x]!);
      maxHidden = Math.max(maxHidden, hidden[x]!);
    }
    blocks[b * 4] = minFrom;
    blocks[b * 4 + 1] = maxFlat;
    blocks[b * 4 + 2] = minHidden;
    blocks[b * 4 + 3] = maxHidden;
  }
  return blocks;
}

export interface PreparedLayers {
  readonly width: number;
  readonly height: number;
  /** The columns drawn, `left` ≤ x < `right` (the whole width, or a strip and its margins); rows passed in hold exactly those. */
  readonly left: number;
  readonly right: number;
  readonly layers: readonly PreparedLayer[];
  /** Per column, the first row hidden by an opaque layer: the sky shows above it. */
  readonly skyLimit: Int32Array;
  /** The rows above the water line that the water reflects (packed), kept before sprites and grade touch them. */
  readonly reflection: Uint32Array | undefined;
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

/**
 * Prepares the layers for drawing columns `left` ≤ x < `right`. The per-column tables always
 * span the whole width (they are cheap), so a strip sees exactly what the whole image sees.
 */
export function prepareLayers(plan: ScenePlan, left = 0, right = plan.width): PreparedLayers {
  const { width, height } = plan;
  const prepared: PreparedLayer[] = [];
  const hidden = new Int32Array(width).fill(height);
  const fade = new Float32Array(256);
  // Both falloffs reach exactly 0 at the end of their tables, so the flat fill below them joins without a seam.
  const tail = Math.exp(-4);
  for (let d = 0; d < 256; d++) fade[d] = (Math.exp(-((d / 255) * 4)) - tail) / (1 - tail);
  const fadeScale = 255 / (height * 0.05);
  for (let l = plan.layers.length - 1; l >= 0; l--) {
    const layer = plan.layers[l]!;
    const rim = new Float32Array(256);
    const rimWidth = Math.max(0.5, layer.rimWidth);
    let deep = 255;
    for (let d = 0; d < 256; d++) {
      // Rim light below a quarter of a level is dropped, so the flat fill starts where the rim ends.
      const v = layer.rimStrength * Math.exp(-d / rimWidth);
      rim[d] = v * 255 < 0.25 ? 0 : v;
      if (rim[d] === 0 && deep === 255) deep = Math.max(1, d);
    }
    if (layer.shade) deep = Math.max(deep, Math.ceil(255 / fadeScale));
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
    let from: Int32Array | undefined;
    let flatFrom: Int32Array | undefined;
    if (layer.kind === 'solid' && !layer.holeTop) {
      // Integer forms of the general path's tests: y + 1 − top > 0 ⟺ y ≥ ⌊top⌋, and
      // y + 1 − top ≥ deep ⟺ y ≥ ⌈top + deep − 1⌉ (exact: top is a float32, deep an integer).
      from = new Int32Array(width);
      flatFrom = new Int32Array(width);
      const { top, snow } = layer;
      for (let x = 0; x < width; x++) {
        const t = top[x]!;
        from[x] = Math.floor(t);
        let flat = Math.ceil(t + deep - 1);
        if (snow !== undefined) flat = Math.max(flat, Math.ceil(snow[x]!));
        flatFrom[x] = Math.min(flat, hidden[x]!);
      }
    }
    const blocks = from !== undefined && flatFrom !== undefined ? columnBlocks(from, flatFrom, hidden, left, right) : undefined;
    prepared.push({ layer, rows: rowColours(layer, plan.fogColour, height), rim, fade, fadeScale, deep, hidden: hidden.slice(), firstRow: Math.max(0, firstRow), lastRow: Math.min(height, lastRow), from, flatFrom, blocks });
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
  const reflection = water && reflectionBottom > reflectionTop ? reflectionScratch((reflectionBottom - reflectionTop) * (right - left)) : undefined;
  const ripple = rippleNoise(plan);
  return { width, height, left, right, layers: prepared, skyLimit: hidden, reflection, reflectionTop, reflectionBottom, ripple };
}

function rippleNoise(plan: ScenePlan): Noise1D {
  return new Noise1D(new Random(plan.grade.seed ^ 0x5bd1e995), 512);
}

/** How far (columns) the water shifts its reflection sideways in row `y`. */
function waterShift(ripple: Noise1D, water: WaterPlan, y: number, height: number): number {
  const depth = (y - water.y) / Math.max(1, height - water.y);
  return Math.round((ripple.at(y * 0.35 + water.phase) - 0.5) * water.ripple * height * (0.004 + depth * 0.02));
}

/**
 * The most columns any pixel reads away from its own: water reflects the rows above it shifted
 * sideways by a ripple. A strip of columns drawn with this many extra columns on each side (not
 * output) gets exactly the pixels of the whole image. Every other stage reads only its own pixel.
 */
export function horizontalReach(plan: ScenePlan): number {
  const ripple = rippleNoise(plan);
  let reach = 0;
  for (const layer of plan.layers) {
    if (layer.kind !== 'water') continue;
    const water = layer.water!;
    let most = 0;
    for (let y = Math.max(0, Math.floor(water.y)); y < plan.height; y++) most = Math.max(most, Math.abs(waterShift(ripple, water, y, plan.height)));
    reach += most;
  }
  return reach;
}

let reflectionBuffer = new Uint32Array(0);

/** The reflection rows, kept between renders of one thread: every row is written before the water reads it. */
function reflectionScratch(length: number): Uint32Array {
  if (reflectionBuffer.length < length) reflectionBuffer = new Uint32Array(length);
  return reflectionBuffer.subarray(0, length);
}

/**
 * Draws every layer's share of row `y` into `data` (packed pixels, the row starting at `row`),
 * then keeps the row if the water will reflect it.
 */
export function drawLayerRow(data: Uint32Array, row: number, prepared: PreparedLayers, y: number): void {
  const { left, right } = prepared;
  for (const p of prepared.layers) {
    if (y < p.firstRow || y >= p.lastRow) continue;
    if (p.layer.kind === 'water') drawWaterRow(data, row, prepared, p, y);
    else drawSolidRow(data, row, left, right, p, y);
  }
  const reflection = prepared.reflection;
  if (reflection && y >= prepared.reflectionTop && y < prepared.reflectionBottom) {
    reflection.set(data.subarray(row, row + right - left), (y - prepared.reflectionTop) * (right - left));
  }
}

function drawWaterRow(data: Uint32Array, row: number, prepared: PreparedLayers, p: PreparedLayer, y: number): void {
  const { height, left, right, ripple, reflection } = prepared;
  const water = p.layer.water!;
  const hidden = p.hidden;
  const depth = (y - water.y) / Math.max(1, height - water.y);
  const src = Math.floor(2 * water.y - y - 1);
  const shift = waterShift(ripple, water, y, height);
  // Streaks only darken (≤ 1), so colour·keep + source·take never leaves 0…255 and the sum needs no unpacking.
  const streak = 0.92 + 0.08 * ripple.at(y * 0.4 + 91);
  const visible = reflection !== undefined && src >= prepared.reflectionTop && src < prepared.reflectionBottom;
  const reflect = visible ? water.reflectivity * (1 - 0.55 * depth) : 0;
  const take = Math.floor(streak * reflect * 256);
  const keep = 1 - take / 256;
  const base = ((p.rows[y * 3]! * keep) | 0) | (((p.rows[y * 3 + 1]! * keep) | 0) << 8) | (((p.rows[y * 3 + 2]! * keep) | 0) << 16);
  // `data` and the reflection rows start at column `left`.
  const o = row - left;
  if (!visible || take === 0) {
    for (let x = left; x < right; x++) if (y < hidden[x]!) data[o + x] = base;
    return;
  }
  const srcRow = (src - prepared.reflectionTop) * (right - left) - left;
  for (let x = left; x < right; x++) {
    if (y >= hidden[x]!) continue;
    // Clamped to the drawn columns: the image edge when they reach it, otherwise a margin column
    // (a strip's margins are at least `horizontalReach` wide, so its own columns never clamp there).
    let sx = x + shift;
    sx = sx < left ? left : sx >= right ? right - 1 : sx;
    const s = reflection[srcRow + sx]!;
    data[o + x] = base + ((((s & 0xff00ff) * take) >>> 8) & 0xff00ff) + ((((s & 0xff00) * take) >>> 8) & 0xff00);
  }
}

function drawSolidRow(data: Uint32Array, start: number, left: number, right: number, p: PreparedLayer, y: number): void {
  // `data` starts at column `left`: pixel x is `data[row + x]`.
  const row = start - left;
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
  const deep = windowRow ? Infinity : p.deep;
  const flat = pack(rr, rg, rb);
  const from = p.from;
  const flatFrom = p.flatFrom;
  const quick = from !== undefined && flatFrom !== undefined && !windowRow;
  if (quick && p.blocks !== undefined) {
    // Whole blocks of columns above the edge or hidden are skipped, wholly flat ones filled; the rest go pixel by pixel.
    const blocks = p.blocks;
    for (let x = left, b = 0; x < right; b += 4) {
      const end = x + BLOCK < right ? x + BLOCK : right;
      if (y < blocks[b]! || y >= blocks[b + 3]!) {
        x = end;
        continue;
      }
      if (y >= blocks[b + 1]! && y < blocks[b + 2]!) {
        for (; x < end; x++) data[row + x] = flat;
        continue;
      }
      for (; x < end; x++) {
        if (y >= flatFrom[x]!) {
          if (y < hidden[x]!) data[row + x] = flat;
          continue;
        }
        if (y < from[x]!) continue;
        const d = y + 1 - top[x]!;
        if (d <= 0) continue;
        const cover = d >= 1 ? 1 : d;
        if (d >= deep && (snow === undefined || y >= snow[x]!)) {
          data[row + x] = flat;
          continue;
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
        let bb = rb * k + rimB * lit;
        if (snow !== undefined && y < snow[x]!) {
          r = r * 0.15 + 232 * 0.85 * k;
          g = g * 0.15 + 238 * 0.85 * k;
          bb = bb * 0.15 + 246 * 0.85 * k;
        }
        if (cover < 1) {
          const q = data[row + x]!;
          const qr = q & 255;
          const qg = (q >>> 8) & 255;
          const qb = (q >>> 16) & 255;
          data[row + x] = pack(qr + (r - qr) * cover, qg + (g - qg) * cover, qb + (bb - qb) * cover);
        } else {
          data[row + x] = pack(r, g, bb);
        }
      }
    }
    return;
  }
  for (let x = left; x < right; x++) {
    if (quick) {
      // Most pixels: the flat colour, hidden, or above the layer's edge, told apart with integers.
      if (y >= flatFrom[x]!) {
        if (y < hidden[x]!) data[row + x] = flat;
        continue;
      }
      if (y < from[x]!) continue;
    } else if (y >= hidden[x]!) continue;
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
    if (d >= deep && (snow === undefined || y >= snow[x]!)) {
      data[row + x] = flat;
      continue;
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
      const q = data[row + x]!;
      const qr = q & 255;
      const qg = (q >>> 8) & 255;
      const qb = (q >>> 16) & 255;
      data[row + x] = pack(qr + (r - qr) * cover, qg + (g - qg) * cover, qb + (b - qb) * cover);
    } else {
      data[row + x] = pack(r, g, b);
    }
  }
}

/**
 * Packs three channel values (clamped, rounded) into 0x00BBGGRR. A module-local copy of
 * raster.ts's `pack`: under tsx an imported function is reached through a getter and is not
 * inlined into the per-pixel loops.
 */
function pack(r: number, g: number, b: number): number {
  const ri = r <= 0 ? 0 : r >= 255 ? 255 : (r + 0.5) | 0;
  const gi = g <= 0 ? 0 : g >= 255 ? 255 : (g + 0.5) | 0;
  const bi = b <= 0 ? 0 : b >= 255 ? 255 : (b + 0.5) | 0;
  return ri | (gi << 8) | (bi << 16);
}
