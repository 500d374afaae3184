/**
 * Anti-aliased primitives (sprites, sky bodies) drawn into a band of packed pixels: one Uint32
 * per pixel, 0x00BBGGRR, so that the full-resolution passes move one word per pixel, not three bytes.
 */
import type { Rgb } from './colour.ts';
import type { Sprite } from './scene-types.ts';

/**
 * The rows `top` ≤ y < `bottom` and columns `left` ≤ x < `right` of a `width`×`height` image as
 * packed pixels; pixel (x, y) is `data[(y − top)·(right − left) + x − left]`. Drawing is clipped
 * to that window; every pixel depends only on its absolute (x, y), so a window of columns gets
 * exactly the bytes of the same columns of the whole image.
 */
export interface Canvas {
  readonly data: Uint32Array;
  readonly width: number;
  readonly height: number;
  readonly top: number;
  readonly bottom: number;
  readonly left: number;
  readonly right: number;
}

/** Packs three channel values (any range: clamped, rounded) into 0x00BBGGRR. */
export function pack(r: number, g: number, b: number): number {
  const ri = r <= 0 ? 0 : r >= 255 ? 255 : (r + 0.5) | 0;
  const gi = g <= 0 ? 0 : g >= 255 ? 255 : (g + 0.5) | 0;
  const bi = b <= 0 ? 0 : b >= 255 ? 255 : (b + 0.5) | 0;
  return ri | (gi << 8) | (bi << 16);
}

/** Blends `colour` over the packed pixel at `index` with opacity `a` (0…1). */
export function blend(data: Uint32Array, index: number, c0: number, c1: number, c2: number, a: number): void {
  const p = data[index]!;
  const r = p & 255;
  const g = (p >>> 8) & 255;
  const b = (p >>> 16) & 255;
  data[index] = pack(r + (c0 - r) * a, g + (c1 - g) * a, b + (c2 - b) * a);
}

export function drawDisc(canvas: Canvas, cx: number, cy: number, r: number, colour: Rgb, alpha: number, soft: number): void {
  const feather = Math.max(0.75, soft * r);
  const reach = r + feather;
  const x0 = Math.max(canvas.left, Math.floor(cx - reach));
  const x1 = Math.min(canvas.right - 1, Math.ceil(cx + reach));
  const y0 = Math.max(canvas.top, Math.floor(cy - reach));
  const y1 = Math.min(canvas.bottom - 1, Math.ceil(cy + reach));
  const inner = r - feather;
  for (let y = y0; y <= y1; y++) {
    const dy = y + 0.5 - cy;
    let index = (y - canvas.top) * (canvas.right - canvas.left) + x0 - canvas.left;
    for (let x = x0; x <= x1; x++, index++) {
      const dx = x + 0.5 - cx;
      const dist = Math.sqrt(dx * dx + dy * dy);
      if (dist >= reach) continue;
      const cover = dist <= inner ? 1 : (reach - dist) / (reach - inner);
      blend(canvas.data, index, colour[0], colour[1], colour[2], cover * alpha);
    }
  }
}

/** Additive soft light: (1 − d²/r²)² falloff. */
export function drawGlow(canvas: Canvas, cx: number, cy: number, r: number, colour: Rgb, alpha: number): void {
  const x0 = Math.max(canvas.left, Math.floor(cx - r));
  const x1 = Math.min(canvas.right - 1, Math.ceil(cx + r));
  const y0 = Math.max(canvas.top, Math.floor(cy - r));
  const y1 = Math.min(canvas.bottom - 1, Math.ceil(cy + r));
  const inv = 1 / (r * r);
  const d = canvas.data;
  for (let y = y0; y <= y1; y++) {
    const dy = y + 0.5 - cy;
    let index = (y - canvas.top) * (canvas.right - canvas.left) + x0 - canvas.left;
    for (let x = x0; x <= x1; x++, index++) {
      const dx = x + 0.5 - cx;
      const q = 1 - (dx * dx + dy * dy) * inv;
      if (q <= 0) continue;
      const a = q * q * alpha;
      const p = d[index]!;
      d[index] = pack((p & 255) + colour[0] * a, ((p >>> 8) & 255) + colour[1] * a, ((p >>> 16) & 255) + colour[2] * a);
    }
  }
}

/** A capsule from (x0, y0) to (x1, y1) whose radius goes from r0 to r1. */
export function drawStroke(canvas: Canvas, x0: number, y0: number, x1: number, y1: number, r0: number, r1: number, colour: Rgb, alpha: number): void {
  const reach = Math.max(r0, r1) + 1;
  const bx0 = Math.max(canvas.left, Math.floor(Math.min(x0, x1) - reach));
  const bx1 = Math.min(canvas.right - 1, Math.ceil(Math.max(x0, x1) + reach));
  const by0 = Math.max(canvas.top, Math.floor(Math.min(y0, y1) - reach));
  const by1 = Math.min(canvas.bottom - 1, Math.ceil(Math.max(y0, y1) + reach));
  const ex = x1 - x0;
  const ey = y1 - y0;
  const len2 = ex * ex + ey * ey || 1e-6;
  for (let y = by0; y <= by1; y++) {
    const py = y + 0.5 - y0;
    let index = (y - canvas.top) * (canvas.right - canvas.left) + bx0 - canvas.left;
    for (let x = bx0; x <= bx1; x++, index++) {
      const px = x + 0.5 - x0;
      let t = (px * ex + py * ey) / len2;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const dx = px - ex * t;
      const dy = py - ey * t;
      const radius = r0 + (r1 - r0) * t;
      const cover = radius + 0.5 - Math.sqrt(dx * dx + dy * dy);
      if (cover <= 0) continue;
      blend(canvas.data, index, colour[0], colour[1], colour[2], (cover > 1 ? 1 : cover) * alpha);
    }
  }
}

/** Even-odd filled polygon (flat list x0, y0, x1, y1, …), anti-aliased along x. */
export function drawPolygon(canvas: Canvas, points: readonly number[], colour: Rgb, alpha: number): void {
  const n = points.length >> 1;
  if (n < 3) return;
  let minY = Infinity;
  let maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minY = Math.min(minY, points[i * 2 + 1]!);
    maxY = Math.max(maxY, points[i * 2 + 1]!);
  }
  const y0 = Math.max(canvas.top, Math.floor(minY));
  const y1 = Math.min(canvas.bottom - 1, Math.ceil(maxY));
  const xs: number[] = [];
  for (let y = y0; y <= y1; y++) {
    const sy = y + 0.5;
    xs.length = 0;
    for (let i = 0; i < n; i++) {
      const ax = points[i * 2]!;
      const ay = points[i * 2 + 1]!;
      const bx = points[((i + 1) % n) * 2]!;
      const by = points[((i + 1) % n) * 2 + 1]!;
      if ((ay <= sy && by > sy) || (by <= sy && ay > sy)) xs.push(ax + ((sy - ay) / (by - ay)) * (bx - ax));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const left = xs[k]!;
      const right = xs[k + 1]!;
      const xa = Math.max(canvas.left, Math.floor(left));
      const xb = Math.min(canvas.right - 1, Math.floor(right));
      for (let x = xa; x <= xb; x++) {
        const cover = Math.min(x + 1, right) - Math.max(x, left);
        if (cover <= 0) continue;
        blend(canvas.data, (y - canvas.top) * (canvas.right - canvas.left) + x - canvas.left, colour[0], colour[1], colour[2], Math.min(1, cover) * alpha);
      }
    }
  }
}

export function drawSprite(canvas: Canvas, sprite: Sprite): void {
  switch (sprite.type) {
    case 'disc':
      drawDisc(canvas, sprite.x, sprite.y, sprite.r, sprite.colour, sprite.alpha, sprite.soft);
      return;
    case 'glow':
      drawGlow(canvas, sprite.x, sprite.y, sprite.r, sprite.colour, sprite.alpha);
      return;
    case 'stroke':
      drawStroke(canvas, sprite.x0, sprite.y0, sprite.x1, sprite.y1, sprite.r0, sprite.r1, sprite.colour, sprite.alpha);
      return;
    case 'polygon':
      drawPolygon(canvas, sprite.points, sprite.colour, sprite.alpha);
      return;
  }
}

/** The rows a sprite can touch (inclusive), for sorting sprites into bands. */
export function spriteRows(sprite: Sprite): [number, number] {
  switch (sprite.type) {
    case 'disc': {
      const reach = sprite.r + Math.max(0.75, sprite.soft * sprite.r) + 1;
      return [Math.floor(sprite.y - reach), Math.ceil(sprite.y + reach)];
    }
    case 'glow':
      return [Math.floor(sprite.y - sprite.r - 1), Math.ceil(sprite.y + sprite.r + 1)];
    case 'stroke': {
      const reach = Math.max(sprite.r0, sprite.r1) + 2;
      return [Math.floor(Math.min(sprite.y0, sprite.y1) - reach), Math.ceil(Math.max(sprite.y0, sprite.y1) + reach)];
    }
    case 'polygon': {
      let min = Infinity;
      let max = -Infinity;
      for (let i = 1; i < sprite.points.length; i += 2) {
        min = Math.min(min, sprite.points[i]!);
        max = Math.max(max, sprite.points[i]!);
      }
      return [Math.floor(min) - 1, Math.ceil(max) + 1];
    }
  }
}

/** The columns a sprite can touch (inclusive, with a pixel to spare), for skipping sprites outside a strip. */
export function spriteColumns(sprite: Sprite): [number, number] {
  switch (sprite.type) {
    case 'disc': {
      const reach = sprite.r + Math.max(0.75, sprite.soft * sprite.r) + 1;
      return [Math.floor(sprite.x - reach), Math.ceil(sprite.x + reach)];
    }
    case 'glow':
      return [Math.floor(sprite.x - sprite.r - 1), Math.ceil(sprite.x + sprite.r + 1)];
    case 'stroke': {
      const reach = Math.max(sprite.r0, sprite.r1) + 2;
      return [Math.floor(Math.min(sprite.x0, sprite.x1) - reach), Math.ceil(Math.max(sprite.x0, sprite.x1) + reach)];
    }
    case 'polygon': {
      let min = Infinity;
      let max = -Infinity;
      for (let i = 0; i < sprite.points.length; i += 2) {
        min = Math.min(min, sprite.points[i]!);
        max = Math.max(max, sprite.points[i]!);
      }
      return [Math.floor(min) - 1, Math.ceil(max) + 1];
    }
  }
}
