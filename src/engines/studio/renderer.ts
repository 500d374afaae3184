/**
 * The rasteriser: turns a `ScenePlan` into RGB bytes. The image is drawn in bands of rows, each
 * band going through every stage (sky, stars and sky bodies, backdrop sprites, layers, sprites, grade) while it is
 * still in the cache; smooth fields (sky, grade) are computed at low resolution or per row and
 * column. Typed arrays only, nothing allocated per pixel.
 *
 * It can also draw a vertical strip of the image (columns x0 ≤ x < x1) into the whole image's
 * buffer, byte for byte what the whole render puts there, so that several threads can share one
 * image: every stage computes a pixel from its absolute (x, y) and whole-image tables, and the one
 * stage that reads other columns (water reflecting the rows above, shifted sideways by the ripple)
 * gets its source columns from margins drawn beside the strip but not written out.
 */
import { blend, drawSprite, spriteColumns, spriteRows, type Canvas } from './raster.ts';
import { Random } from './random.ts';
import type { ElementPlan, ScenePlan, SkyBody, Sprite } from './scene-types.ts';
import { renderSkyField, skyScale, type SkyField } from './sky-field.ts';
import { gradeBand, prepareGrade } from './grade.ts';
import { drawLayerRow, horizontalReach, prepareLayers } from './layer-raster.ts';

/** Rows per band: a band of a 4K-wide image (~400 KB) stays in the L2 cache between stages. */
const BAND = 32;

interface Star {
  readonly x: number;
  readonly y: number;
  readonly r: number;
  readonly alpha: number;
}

/** Where a strip render goes: columns x0 ≤ x < x1 of `out`, the whole image's RGB bytes (nothing else is written). */
export interface RenderTarget {
  readonly out: Uint8Array;
  readonly x0: number;
  readonly x1: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Splits `width` columns into at most `parts` strips for `renderScene` targets: boundaries on
 * multiples of four columns (the grade's pixel groups), widths as even as that allows.
 */
export function stripBounds(width: number, parts: number): [number, number][] {
  const groups = Math.ceil(width / 4);
  const n = Math.max(1, Math.min(Math.floor(parts), groups));
  const bounds: [number, number][] = [];
  for (let i = 0; i < n; i++) bounds.push([Math.min(width, Math.round((groups * i) / n) * 4), Math.min(width, Math.round((groups * (i + 1)) / n) * 4)]);
  return bounds;
}

/**
 * Renders the plan: the whole image into a new buffer, or with `target`, columns x0 ≤ x < x1 into
 * `target.out` (x0 and x1 multiples of four, or x1 the width), the same bytes as the whole render
 * has there. Returns the buffer written.
 */
export function renderScene(plan: ScenePlan, target?: RenderTarget): Uint8Array {
  const { width, height } = plan;
  const size = width * height * 3;
  // Every byte is written below, so the output skips the zero-fill (`allocUnsafeSlow` owns its whole ArrayBuffer, which the worker transfers).
  const out = target ? target.out : new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size);
  const x0 = target ? target.x0 : 0;
  const x1 = target ? target.x1 : width;
  if (out.length !== size) throw new Error(`the output holds ${out.length} bytes, not ${width}×${height}×3`);
  if (!(Number.isInteger(x0) && Number.isInteger(x1) && 0 <= x0 && x0 < x1 && x1 <= width) || (x0 & 3) !== 0 || ((x1 & 3) !== 0 && x1 !== width)) {
    throw new Error(`bad strip ${x0}…${x1} of ${width} columns`);
  }
  // Four pixels go out as three words when the width allows it (the grade then groups pixels by four).
  if (LITTLE_ENDIAN && (width & 3) === 0 && (out.byteOffset & 3) !== 0) throw new Error('the output must start on a 4-byte boundary');
  const out32 = LITTLE_ENDIAN && (out.byteOffset & 3) === 0 ? new Uint32Array(out.buffer, out.byteOffset, Math.floor(size / 4)) : undefined;
  // The columns drawn: the strip and, beside it, the columns its water reflects.
  const reach = x0 === 0 && x1 === width ? 0 : horizontalReach(plan);
  const left = Math.max(0, x0 - reach);
  const right = Math.min(width, x1 + reach);
  const stride = right - left;
  const layers = prepareLayers(plan, left, right);
  const skyLimit = layers.skyLimit;
  let maxSky = 0;
  for (let x = 0; x < width; x++) maxSky = Math.max(maxSky, skyLimit[x]!);
  const inv = 1 / skyScale(width, height);
  const field = renderSkyField(plan.sky, width, height, maxSky, Math.floor(left * inv), Math.floor((right - 1) * inv) + 1);
  const sky = new SkyRows(field, left, right);
  const grade = prepareGrade(plan.grade, width, height);
  const bands = Math.ceil(height / BAND);
  const stars = bucket(placeStars(plan, skyLimit), bands, (s) => [Math.floor(s.y - s.r - 2), Math.ceil(s.y + s.r + 2)]);
  const bodies = bucket(plan.bodies, bands, (b) => bodyRows(b));
  const visible = (list: readonly Sprite[]): readonly Sprite[] => stride === width ? list : list.filter((sprite) => {
    const [a, b] = spriteColumns(sprite);
    return !(b < left || a >= right);
  });
  const sprites = bucket(visible(plan.sprites), bands, spriteRows);
  const backdrop = bucket(visible(plan.backdrop ?? []), bands, spriteRows);
  const data = scratch(stride * BAND);
  for (let band = 0; band < bands; band++) {
    const top = band * BAND;
    const bottom = Math.min(height, top + BAND);
    const canvas: Canvas = { data, width, height, top, bottom, left, right };
    for (let y = top; y < Math.min(bottom, maxSky); y++) sky.draw(data, (y - top) * stride, y, skyLimit);
    for (const star of stars[band]!) drawStar(canvas, star);
    for (const body of bodies[band]!) drawBody(canvas, body);
    for (const sprite of backdrop[band]!) drawSprite(canvas, sprite);
    for (let y = top; y < bottom; y++) drawLayerRow(data, (y - top) * stride, layers, y);
    for (const sprite of sprites[band]!) drawSprite(canvas, sprite);
    gradeBand(data, stride, left, out, out32, grade, top, bottom, x0, x1);
  }
  for (const element of plan.elements) pasteElement(out, width, height, element, x0, x1);
  return out;
}

let scratchBuffer = new Uint32Array(0);

/** The band buffer, kept between renders of one thread (renders never overlap within a thread). */
function scratch(length: number): Uint32Array {
  if (scratchBuffer.length < length) scratchBuffer = new Uint32Array(length);
  return scratchBuffer.subarray(0, length);
}

/** Sorts items into the bands their rows touch, keeping their order within a band. */
function bucket<T>(items: readonly T[], bands: number, rows: (item: T) => [number, number]): T[][] {
  const out: T[][] = Array.from({ length: bands }, () => []);
  for (const item of items) {
    const [y0, y1] = rows(item);
    const b0 = Math.max(0, Math.floor(y0 / BAND));
    const b1 = Math.min(bands - 1, Math.floor(y1 / BAND));
    for (let b = b0; b <= b1; b++) out[b]!.push(item);
  }
  return out;
}

/** log₂ of the columns per block of the sky's skyline tests. */
const SKY_BLOCK_BITS = 5;

/** The sky field upsampled: field rows are widened to packed image rows once, then blended per row (two channels per multiply). */
class SkyRows {
  private readonly wide: Uint32Array[];
  private readonly wideRow: number[] = [-1, -1];
  private readonly xi: Int32Array;
  private readonly xf: Float32Array;

  private readonly stride: number;

  /** Rows hold columns `left` ≤ x < `right`. */
  constructor(private readonly field: SkyField, private readonly left: number, right: number) {
    const inv = 1 / field.scale;
    const stride = right - left;
    this.stride = stride;
    this.xi = new Int32Array(stride);
    this.xf = new Float32Array(stride);
    for (let i = 0; i < stride; i++) {
      const fx = (left + i) * inv;
      this.xi[i] = Math.floor(fx) * 3;
      this.xf[i] = fx - Math.floor(fx);
    }
    this.wide = [new Uint32Array(stride), new Uint32Array(stride)];
    this.runEnd = new Int32Array(stride);
    this.runP = new Int32Array(stride);
    this.runQ = new Int32Array(stride);
  }

  private row(j: number): Uint32Array {
    const slot = j & 1;
    const wide = this.wide[slot]!;
    if (this.wideRow[slot] === j) return wide;
    this.wideRow[slot] = j;
    const { data, width: fw } = this.field;
    const base = j * fw * 3;
    const { xi, xf } = this;
    for (let x = 0; x < this.stride; x++) {
      const p = base + xi[x]!;
      const w = xf[x]!;
      wide[x] = pack(data[p]! + (data[p + 3]! - data[p]!) * w, data[p + 1]! + (data[p + 4]! - data[p + 1]!) * w, data[p + 2]! + (data[p + 5]! - data[p + 2]!) * w);
    }
    return wide;
  }

  /** Runs of columns over which both field rows of the pair `runJ` hold one colour each: run i is `runEnd[i − 1]` ≤ x < `runEnd[i]`. */
  private runJ = -1;
  private runCount = 0;
  private readonly runEnd: Int32Array;
  private readonly runP: Int32Array;
  private readonly runQ: Int32Array;
  private limitOf: Int32Array | undefined;
  /** The fewest rows the sky shows in any column drawn: rows above it need no per-column test. */
  private openRows = 0;

  /** Per block of 2^SKY_BLOCK_BITS columns: the least and the most sky limit. */
  private blockMin = new Int32Array(0);
  private blockMax = new Int32Array(0);

  private limits(limit: Int32Array): void {
    this.limitOf = limit;
    const { left, stride } = this;
    const blocks = ((stride - 1) >> SKY_BLOCK_BITS) + 1;
    const blockMin = new Int32Array(blocks).fill(0x7fffffff);
    const blockMax = new Int32Array(blocks).fill(-0x80000000);
    let open = Infinity;
    for (let x = 0; x < stride; x++) {
      const v = limit[left + x]!;
      const block = x >> SKY_BLOCK_BITS;
      if (v < blockMin[block]!) blockMin[block] = v;
      if (v > blockMax[block]!) blockMax[block] = v;
      open = Math.min(open, v);
    }
    this.openRows = open;
    this.blockMin = blockMin;
    this.blockMax = blockMax;
  }

  private runs(j: number, a: Uint32Array, b: Uint32Array): void {
    if (this.runJ === j) return;
    this.runJ = j;
    const { runEnd, runP, runQ, stride } = this;
    let n = 0;
    let p = a[0]!;
    let q = b[0]!;
    for (let x = 1; x < stride; x++) {
      const pp = a[x]!;
      const qq = b[x]!;
      if (pp !== p || qq !== q) {
        runP[n] = p;
        runQ[n] = q;
        runEnd[n++] = x;
        p = pp;
        q = qq;
      }
    }
    runP[n] = p;
    runQ[n] = q;
    runEnd[n++] = stride;
    this.runCount = n;
  }

  draw(out: Uint32Array, row: number, y: number, limit: Int32Array): void {
    const fy = y / this.field.scale;
    const j = Math.floor(fy);
    const w = Math.round((fy - j) * 256);
    const iw = 256 - w;
    const a = this.row(j);
    const b = this.row(Math.min(this.field.height - 1, j + 1));
    const left = this.left;
    const stride = this.stride;
    if (this.limitOf !== limit) this.limits(limit);
    // Neighbouring columns mostly interpolate the same pair of colours (the field is coarse): blend each run once.
    this.runs(j, a, b);
    const { runEnd, runP, runQ, runCount } = this;
    const open = y < this.openRows;
    let x = 0;
    if (!open) {
      // Near the skyline: blocks of columns all below it are skipped, blocks all above it drawn without tests.
      const { blockMin, blockMax } = this;
      let i = 0;
      while (x < stride) {
        const block = x >> SKY_BLOCK_BITS;
        const blockEnd = Math.min(stride, (block + 1) << SKY_BLOCK_BITS);
        if (y >= blockMax[block]!) {
          x = blockEnd;
          continue;
        }
        const all = y < blockMin[block]!;
        while (runEnd[i]! <= x) i++;
        while (x < blockEnd) {
          const p = runP[i]!;
          const q = runQ[i]!;
          const runTo = runEnd[i]!;
          const end = runTo < blockEnd ? runTo : blockEnd;
          const v = (((Math.imul(p & 0xff00ff, iw) + Math.imul(q & 0xff00ff, w)) >>> 8) & 0xff00ff) | (((Math.imul(p & 0xff00, iw) + Math.imul(q & 0xff00, w)) >>> 8) & 0xff00);
          if (all) for (; x < end; x++) out[row + x] = v;
          else for (; x < end; x++) if (y < limit[left + x]!) out[row + x] = v;
          if (x === runTo) i++;
        }
      }
      return;
    }
    for (let i = 0; i < runCount; i++) {
      const p = runP[i]!;
      const q = runQ[i]!;
      const end = runEnd[i]!;
      // Math.imul keeps the products in 32 bits (wrapping): the true sums stay below 2³², so `>>> 8` sees them exactly.
      const v = (((Math.imul(p & 0xff00ff, iw) + Math.imul(q & 0xff00ff, w)) >>> 8) & 0xff00ff) | (((Math.imul(p & 0xff00, iw) + Math.imul(q & 0xff00, w)) >>> 8) & 0xff00);
      if (open) {
        if (end - x >= 24) out.fill(v, row + x, row + end);
        else for (; x < end; x++) out[row + x] = v;
        x = end;
      } else {
        for (; x < end; x++) if (y < limit[left + x]!) out[row + x] = v;
      }
    }
  }
}

function placeStars(plan: ScenePlan, limit: Int32Array): Star[] {
  const stars: Star[] = [];
  if (plan.stars <= 0) return stars;
  const random = new Random(plan.starSeed);
  const { width, height } = plan;
  const size = Math.max(1, height / 900);
  for (let i = 0; i < plan.stars; i++) {
    const x = random.next() * width;
    const y = random.next() ** 1.3 * plan.sky.horizonY;
    const bright = random.next() ** 3;
    const xi = Math.floor(x);
    const yi = Math.floor(y);
    if (xi < 0 || xi >= width || yi >= limit[xi]! - 2) continue;
    stars.push({ x, y, r: size * (0.5 + bright * 1.3), alpha: 0.35 + 0.65 * bright });
  }
  return stars;
}

function drawStar(canvas: Canvas, star: Star): void {
  const { left, right } = canvas;
  const stride = right - left;
  const out = canvas.data;
  const { x, y, r, alpha } = star;
  const xi = Math.floor(x);
  const yi = Math.floor(y);
  const reach = Math.ceil(r + 1);
  for (let yy = Math.max(canvas.top, yi - reach); yy <= Math.min(canvas.bottom - 1, yi + reach); yy++) {
    for (let xx = Math.max(left, xi - reach); xx <= Math.min(right - 1, xi + reach); xx++) {
      const dx = xx + 0.5 - x;
      const dy = yy + 0.5 - y;
      const d = Math.sqrt(dx * dx + dy * dy);
      const a = Math.min(1, Math.max(0, r + 0.5 - d)) * alpha;
      if (a <= 0) continue;
      blend(out, (yy - canvas.top) * stride + xx - left, 245, 242, 255, a);
    }
  }
}

function bodyRows(body: SkyBody): [number, number] {
  const ringOuter = body.r * 2.1;
  const reachY = body.ring > 0 ? Math.max(body.r + 2, ringOuter * body.ringTilt + 2) : body.r + 2;
  return [Math.floor(body.y - reachY), Math.ceil(body.y + reachY)];
}

function drawBody(canvas: Canvas, body: SkyBody): void {
  const { left, right } = canvas;
  const out = canvas.data;
  const lx = Math.cos(body.lightAngle) * 0.8;
  const ly = Math.sin(body.lightAngle) * 0.8;
  const lz = 0.6;
  const ringOuter = body.r * 2.1;
  const ringInner = body.r * 1.35;
  const reachX = body.ring > 0 ? ringOuter + 2 : body.r + 2;
  const reachY = body.ring > 0 ? Math.max(body.r + 2, ringOuter * body.ringTilt + 2) : body.r + 2;
  const y0 = Math.max(canvas.top, Math.floor(body.y - reachY));
  const y1 = Math.min(canvas.bottom - 1, Math.ceil(body.y + reachY));
  const x0 = Math.max(left, Math.floor(body.x - reachX));
  const x1 = Math.min(right - 1, Math.ceil(body.x + reachX));
  const invR = 1 / body.r;
  for (let y = y0; y <= y1; y++) {
    const dy = y + 0.5 - body.y;
    let index = (y - canvas.top) * (right - left) + x0 - left;
    for (let x = x0; x <= x1; x++, index++) {
      const dx = x + 0.5 - body.x;
      const dist = Math.sqrt(dx * dx + dy * dy);
      const inside = body.r + 0.5 - dist;
      if (inside > 0) {
        const nx = dx * invR;
        const ny = dy * invR;
        const nz = Math.sqrt(Math.max(0, 1 - nx * nx - ny * ny));
        let light = nx * lx + ny * ly + nz * lz;
        light = light < 0 ? 0 : light > 1 ? 1 : light;
        const band = body.bands > 0 ? 0.92 + 0.08 * Math.sin(ny * body.bands * 3.1 + Math.sin(nx * 3) * 0.6) : 1;
        const k = light * band;
        const a = inside > 1 ? 1 : inside;
        const r = body.shadow[0] + (body.colour[0] - body.shadow[0]) * k;
        const g = body.shadow[1] + (body.colour[1] - body.shadow[1]) * k;
        const b = body.shadow[2] + (body.colour[2] - body.shadow[2]) * k;
        blend(out, index, r, g, b, a);
      }
      if (body.ring > 0) {
        const ey = dy / body.ringTilt;
        const e = Math.sqrt(dx * dx + ey * ey);
        if (e > ringInner && e < ringOuter && !(inside > 0 && dy < 0)) {
          const edge = Math.min(e - ringInner, ringOuter - e, 1.5) / 1.5;
          const stripes = 0.75 + 0.25 * Math.sin(e * invR * 18);
          const a = body.ring * edge * stripes;
          blend(out, index, body.ringColour[0], body.ringColour[1], body.ringColour[2], a);
        }
      }
    }
  }
}

/**
 * Pastes an element unaltered (bilinear-resized once) inside a plain frame; nothing here depends
 * on the seed. Only columns `from` ≤ x < `to` are touched.
 */
function pasteElement(out: Uint8Array, width: number, height: number, element: ElementPlan, from: number, to: number): void {
  const border = element.border;
  const shadow = Math.max(2, Math.round(border * 1.6));
  for (let y = element.y - border; y < element.y + element.height + border + shadow; y++) {
    if (y < 0 || y >= height) continue;
    for (let x = element.x - border; x < element.x + element.width + border + shadow; x++) {
      if (x < from || x >= to) continue;
      const index = (y * width + x) * 3;
      const inFrame = y < element.y + element.height + border && x < element.x + element.width + border;
      if (!inFrame) {
        if (y >= element.y - border + shadow && x >= element.x - border + shadow) {
          out[index] = Math.round(out[index]! * 0.55);
          out[index + 1] = Math.round(out[index + 1]! * 0.55);
          out[index + 2] = Math.round(out[index + 2]! * 0.58);
        }
        continue;
      }
      out[index] = 244;
      out[index + 1] = 239;
      out[index + 2] = 228;
    }
  }
  const src = element.pixels;
  const sx = src.width / element.width;
  const sy = src.height / element.height;
  const ch = src.channels;
  for (let y = 0; y < element.height; y++) {
    const oy = element.y + y;
    if (oy < 0 || oy >= height) continue;
    const fy = Math.min(src.height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(src.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < element.width; x++) {
      const ox = element.x + x;
      if (ox < from || ox >= to) continue;
      const fx = Math.min(src.width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(src.width - 1, x0 + 1);
      const wx = fx - x0;
      const index = (oy * width + ox) * 3;
      for (let c = 0; c < 3; c++) {
        const a = src.data[(y0 * src.width + x0) * ch + c]!;
        const b = src.data[(y0 * src.width + x1) * ch + c]!;
        const cc = src.data[(y1 * src.width + x0) * ch + c]!;
        const dd = src.data[(y1 * src.width + x1) * ch + c]!;
        const top = a + (b - a) * wx;
        out[index + c] = Math.round(top + (cc + (dd - cc) * wx - top) * wy);
      }
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
