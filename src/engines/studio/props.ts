/** Things placed in the scene as sprites: people, birds, kites, lanterns, boats, weather. */
import { mixRgb, type Rgb } from './colour.ts';
import type { Random } from './random.ts';
import type { Sprite } from './scene-types.ts';

export function figure(out: Sprite[], x: number, groundY: number, h: number, body: Rgb, coat: Rgb, random: Random): void {
  const head = h * 0.09;
  const shoulder = groundY - h * 0.78;
  const hip = groundY - h * 0.42;
  const lean = random.range(-0.04, 0.04) * h;
  const legGap = h * random.range(0.03, 0.08);
  out.push({ type: 'stroke', x0: x - legGap, y0: groundY - h * 0.02, x1: x + lean * 0.3, y1: hip, r0: h * 0.035, r1: h * 0.05, colour: body, alpha: 1 });
  out.push({ type: 'stroke', x0: x + legGap, y0: groundY - h * 0.02, x1: x + lean * 0.3, y1: hip, r0: h * 0.035, r1: h * 0.05, colour: body, alpha: 1 });
  // A coat: narrow at the shoulders, wider at the hem.
  out.push({ type: 'stroke', x0: x + lean, y0: shoulder, x1: x + lean * 0.4, y1: groundY - h * 0.3, r0: h * 0.085, r1: h * 0.13, colour: coat, alpha: 1 });
  out.push({ type: 'stroke', x0: x + lean, y0: shoulder, x1: x + lean + h * random.range(-0.2, 0.2), y1: groundY - h * 0.45, r0: h * 0.03, r1: h * 0.025, colour: coat, alpha: 1 });
  out.push({ type: 'disc', x: x + lean * 1.1, y: shoulder - head * 1.15, r: head, colour: body, alpha: 1, soft: 0 });
}

export function bird(out: Sprite[], x: number, y: number, span: number, colour: Rgb, random: Random): void {
  const flap = random.range(-0.35, 0.3) * span;
  const w = Math.max(0.6, span * 0.06);
  out.push({ type: 'stroke', x0: x - span, y0: y + flap, x1: x, y1: y, r0: w * 0.5, r1: w, colour, alpha: 0.95 });
  out.push({ type: 'stroke', x0: x, y0: y, x1: x + span, y1: y + flap, r0: w, r1: w * 0.5, colour, alpha: 0.95 });
}

export function kite(out: Sprite[], x: number, y: number, size: number, colour: Rgb, tail: Rgb, random: Random): void {
  const tilt = random.range(-0.4, 0.4);
  const c = Math.cos(tilt);
  const s = Math.sin(tilt);
  const pts = [0, -size, size * 0.62, 0, 0, size * 1.4, -size * 0.62, 0];
  const points: number[] = [];
  for (let i = 0; i < pts.length; i += 2) points.push(x + pts[i]! * c - pts[i + 1]! * s, y + pts[i]! * s + pts[i + 1]! * c);
  out.push({ type: 'polygon', points, colour, alpha: 1 });
  let px = x - size * 1.4 * s;
  let py = y + size * 1.4 * c;
  for (let k = 0; k < 6; k++) {
    const nx = px + size * 0.5 * Math.sin(k * 1.3 + tilt * 3);
    const ny = py + size * 0.55;
    out.push({ type: 'stroke', x0: px, y0: py, x1: nx, y1: ny, r0: size * 0.05, r1: size * 0.04, colour: tail, alpha: 0.9 });
    px = nx;
    py = ny;
  }
}

/** A long dragon kite: a chain of segments along a wave, head first. */
export function dragon(out: Sprite[], x: number, y: number, length: number, body: Rgb, belly: Rgb, random: Random): void {
  const segments = 26;
  const phase = random.range(0, 6);
  const dir = random.chance(0.5) ? 1 : -1;
  for (let i = segments; i >= 0; i--) {
    const t = i / segments;
    const sx = x - dir * t * length;
    const sy = y + Math.sin(t * 9 + phase) * length * 0.07 + t * length * 0.12;
    const r = length * 0.035 * (1 - t * 0.75);
    out.push({ type: 'disc', x: sx, y: sy, r: r * 1.15, colour: belly, alpha: 1, soft: 0 });
    out.push({ type: 'disc', x: sx, y: sy - r * 0.25, r, colour: i % 2 ? body : mixRgb(body, belly, 0.3), alpha: 1, soft: 0 });
    if (i % 4 === 0 && i > 0) out.push({ type: 'stroke', x0: sx, y0: sy, x1: sx - dir * r * 0.6, y1: sy + length * 0.2, r0: 0.8, r1: 0.5, colour: belly, alpha: 0.5 });
  }
  const hr = length * 0.05;
  out.push({ type: 'polygon', points: [x - dir * hr, y - hr, x + dir * hr * 1.8, y - hr * 0.3, x + dir * hr * 1.5, y + hr * 0.6, x - dir * hr * 0.6, y + hr], colour: body, alpha: 1 });
  out.push({ type: 'stroke', x0: x, y0: y - hr, x1: x - dir * hr * 1.6, y1: y - hr * 2.4, r0: hr * 0.12, r1: hr * 0.04, colour: belly, alpha: 1 });
  out.push({ type: 'disc', x: x + dir * hr * 0.6, y: y - hr * 0.4, r: hr * 0.16, colour: [255, 240, 200], alpha: 1, soft: 0 });
}

/** A strand of lanterns hanging between two points. */
export function lanternStrand(out: Sprite[], x0: number, y0: number, x1: number, y1: number, sag: number, count: number, colour: Rgb, line: Rgb, size: number): void {
  const steps = 24;
  let px = x0;
  let py = y0;
  for (let i = 1; i <= steps; i++) {
    const t = i / steps;
    const x = x0 + (x1 - x0) * t;
    const y = y0 + (y1 - y0) * t + sag * 4 * t * (1 - t);
    out.push({ type: 'stroke', x0: px, y0: py, x1: x, y1: y, r0: Math.max(0.5, size * 0.06), r1: Math.max(0.5, size * 0.06), colour: line, alpha: 0.7 });
    px = x;
    py = y;
  }
  for (let i = 1; i <= count; i++) {
    const t = i / (count + 1);
    const x = x0 + (x1 - x0) * t;
    const y = y0 + (y1 - y0) * t + sag * 4 * t * (1 - t) + size * 0.9;
    out.push({ type: 'glow', x, y, r: size * 4, colour: scaleColour(colour, 0.55), alpha: 0.5 });
    out.push({ type: 'stroke', x0: x, y0: y - size * 0.3, x1: x, y1: y + size * 0.3, r0: size * 0.75, r1: size * 0.75, colour, alpha: 1 });
    out.push({ type: 'disc', x, y, r: size * 0.45, colour: mixRgb(colour, [255, 250, 225], 0.6), alpha: 0.9, soft: 0.5 });
  }
}

function scaleColour(c: Rgb, k: number): Rgb {
  return [c[0] * k, c[1] * k, c[2] * k];
}

export function boat(out: Sprite[], x: number, y: number, size: number, hull: Rgb, sail: Rgb, random: Random): void {
  const dir = random.chance(0.5) ? 1 : -1;
  out.push({ type: 'polygon', points: [x - size, y - size * 0.18, x + size, y - size * 0.18, x + size * 0.7 * dir, y + size * 0.12, x - size * 0.7 * dir, y + size * 0.12], colour: hull, alpha: 1 });
  out.push({ type: 'stroke', x0: x, y0: y - size * 0.18, x1: x, y1: y - size * 1.6, r0: size * 0.03, r1: size * 0.02, colour: hull, alpha: 1 });
  out.push({ type: 'polygon', points: [x + dir * size * 0.06, y - size * 1.55, x + dir * size * 0.9, y - size * 0.3, x + dir * size * 0.06, y - size * 0.3], colour: sail, alpha: 0.95 });
}

export function airship(out: Sprite[], x: number, y: number, size: number, body: Rgb, shade: Rgb): void {
  const points: number[] = [];
  for (let i = 0; i < 24; i++) {
    const a = (i / 24) * Math.PI * 2;
    points.push(x + Math.cos(a) * size, y + Math.sin(a) * size * 0.32);
  }
  out.push({ type: 'polygon', points, colour: shade, alpha: 1 });
  const upper: number[] = [];
  for (let i = 0; i < 24; i++) {
    const a = (i / 24) * Math.PI * 2;
    upper.push(x + Math.cos(a) * size * 0.96, y - size * 0.06 + Math.sin(a) * size * 0.22);
  }
  out.push({ type: 'polygon', points: upper, colour: body, alpha: 1 });
  out.push({ type: 'stroke', x0: x - size * 0.2, y0: y + size * 0.4, x1: x + size * 0.25, y1: y + size * 0.4, r0: size * 0.07, r1: size * 0.07, colour: shade, alpha: 1 });
  out.push({ type: 'polygon', points: [x - size * 0.95, y, x - size * 1.25, y - size * 0.3, x - size * 1.2, y + size * 0.05], colour: shade, alpha: 1 });
}

export function banner(out: Sprite[], x: number, groundY: number, h: number, pole: Rgb, cloth: Rgb, random: Random): void {
  out.push({ type: 'stroke', x0: x, y0: groundY, x1: x, y1: groundY - h, r0: h * 0.012 + 0.5, r1: h * 0.01 + 0.5, colour: pole, alpha: 1 });
  const wave = random.range(-0.1, 0.1) * h;
  out.push({ type: 'polygon', points: [x, groundY - h, x + h * 0.45, groundY - h * 0.9 + wave, x + h * 0.4, groundY - h * 0.72 + wave, x, groundY - h * 0.62], colour: cloth, alpha: 1 });
}

export type Weather = 'snow' | 'rain' | 'petals' | 'embers' | 'fireflies' | 'dust' | 'vapor';

export function weather(out: Sprite[], kind: Weather, count: number, width: number, height: number, colour: Rgb, random: Random, topLimit = 0): void {
  const unit = height / 1000;
  for (let i = 0; i < count; i++) {
    const x = random.next() * width;
    const y = topLimit + random.next() * (height - topLimit);
    const near = random.next() ** 2;
    switch (kind) {
      case 'snow':
        out.push({ type: 'disc', x, y, r: unit * (1 + near * 3.5), colour, alpha: 0.55 + near * 0.4, soft: 0.5 });
        break;
      case 'rain': {
        const len = unit * (14 + near * 30);
        out.push({ type: 'stroke', x0: x, y0: y, x1: x - len * 0.22, y1: y + len, r0: unit * 0.5, r1: unit * (0.5 + near), colour, alpha: 0.22 + near * 0.25 });
        break;
      }
      case 'petals': {
        const len = unit * (3 + near * 7);
        const a = random.range(0, Math.PI);
        out.push({ type: 'stroke', x0: x - Math.cos(a) * len, y0: y - Math.sin(a) * len, x1: x + Math.cos(a) * len, y1: y + Math.sin(a) * len, r0: len * 0.2, r1: len * 0.5, colour, alpha: 0.9 });
        break;
      }
      case 'embers':
      case 'fireflies':
        out.push({ type: 'glow', x, y, r: unit * (5 + near * 9), colour, alpha: 0.55 });
        out.push({ type: 'disc', x, y, r: unit * (0.8 + near * 1.4), colour: mixRgb(colour, [255, 255, 235], 0.6), alpha: 0.95, soft: 0.4 });
        break;
      case 'dust':
        out.push({ type: 'disc', x, y, r: unit * (0.8 + near * 1.5), colour, alpha: 0.35, soft: 0.6 });
        break;
      case 'vapor':
        out.push({ type: 'disc', x, y, r: unit * (40 + near * 110), colour, alpha: 0.06 + near * 0.05, soft: 1 });
        break;
    }
  }
}
