/**
 * The shape vocabulary of subjects: polygons, tapered towers, domes, ellipses, arches, hulls, sails
 * and crowns of leaves, in a unit frame (the subject is 1 high, its base centre at (0, 0), y up
 * negative). A subject is a list of parts, each with a tone (its own colour, a roof, trim, an
 * opening…) and whether it takes the scene's light (lit and shaded halves).
 */

export type Tone = 'body' | 'roof' | 'trim' | 'dark' | 'glow' | 'trunk' | 'sand' | 'foam';

export type Part =
  | { readonly kind: 'poly'; readonly tone: Tone; readonly points: readonly number[]; readonly shade: boolean }
  | { readonly kind: 'disc'; readonly tone: Tone; readonly x: number; readonly y: number; readonly r: number; readonly shade: boolean }
  | { readonly kind: 'line'; readonly tone: Tone; readonly x0: number; readonly y0: number; readonly x1: number; readonly y1: number; readonly r0: number; readonly r1: number };

export const poly = (tone: Tone, points: readonly number[], shade = true): Part => ({ kind: 'poly', tone, points, shade });
export const disc = (tone: Tone, x: number, y: number, r: number, shade = true): Part => ({ kind: 'disc', tone, x, y, r, shade });
export const line = (tone: Tone, x0: number, y0: number, x1: number, y1: number, r0: number, r1 = r0): Part => ({ kind: 'line', tone, x0, y0, x1, y1, r0, r1 });

/** A rectangle standing on y0 (its bottom), centred on cx. */
export function rect(tone: Tone, cx: number, y0: number, w: number, h: number, shade = true): Part {
  return poly(tone, [cx - w / 2, y0, cx + w / 2, y0, cx + w / 2, y0 - h, cx - w / 2, y0 - h], shade);
}

/** A tower tapering from w0 at its foot (y0) to w1 at its top. */
export function taper(tone: Tone, cx: number, y0: number, h: number, w0: number, w1: number, shade = true): Part {
  return poly(tone, [cx - w0 / 2, y0, cx + w0 / 2, y0, cx + w1 / 2, y0 - h, cx - w1 / 2, y0 - h], shade);
}

/** A gable or cone roof: a triangle on y0. */
export function tri(tone: Tone, cx: number, y0: number, w: number, h: number, shade = true): Part {
  return poly(tone, [cx - w / 2, y0, cx + w / 2, y0, cx, y0 - h], shade);
}

/** Points of an ellipse arc from angle a0 to a1 (radians, 0 = right, π/2 = up). */
function arc(cx: number, cy: number, rx: number, ry: number, a0: number, a1: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i <= n; i++) {
    const a = a0 + ((a1 - a0) * i) / n;
    out.push(cx + Math.cos(a) * rx, cy - Math.sin(a) * ry);
  }
  return out;
}

/** A dome on y0: half an ellipse. */
export function dome(tone: Tone, cx: number, y0: number, w: number, h: number, shade = true): Part {
  return poly(tone, arc(cx, y0, w / 2, h, 0, Math.PI, 18), shade);
}

export function ellipse(tone: Tone, cx: number, cy: number, rx: number, ry: number, shade = true): Part {
  return poly(tone, arc(cx, cy, rx, ry, 0, Math.PI * 2, 28).slice(0, -2), shade);
}

/** Battlements along the top (y) of a wall from x0 to x1. */
export function crenels(tone: Tone, x0: number, x1: number, y: number, size: number): Part[] {
  const n = Math.max(2, Math.round((x1 - x0) / (size * 2)));
  const step = (x1 - x0) / n;
  const out: Part[] = [];
  for (let i = 0; i < n; i++) out.push(rect(tone, x0 + step * (i + 0.5), y, step * 0.55, size));
  return out;
}

/** A wall from x0 to x1 between y0 (foot) and y1 (top) with `n` round arches cut through it (even-odd fill). */
export function arcadeWall(tone: Tone, x0: number, x1: number, y0: number, y1: number, n: number, spring: number): Part {
  const points: number[] = [x0, y1, x1, y1, x1, y0];
  const span = (x1 - x0) / n;
  const pier = span * 0.22;
  for (let i = n - 1; i >= 0; i--) {
    const a = x0 + span * i + pier / 2;
    const b = x0 + span * (i + 1) - pier / 2;
    const r = (b - a) / 2;
    points.push(b, y0, ...arc((a + b) / 2, spring, r, Math.min(r, spring - y1 - 0.01), 0, Math.PI, 10), a, y0);
  }
  points.push(x0, y0);
  return poly(tone, points);
}
