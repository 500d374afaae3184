/**
 * Places the prompt's subjects in the composed scene and turns their silhouettes into sprites:
 * the first subject on a third of the frame, standing on the ground (or on the layer it is "on"),
 * floating on the water or in the sky; counts spread side by side; relations ("above", "beside",
 * "in front of", "behind") move a subject against the one it names. Shading follows the sun: the
 * half of each part away from the light is drawn darker.
 */
import { adjustLab, hexToRgb, mixRgb, scaleRgb, type Rgb } from '../colour.ts';
import type { SceneContext } from '../scene-plan.ts';
import type { LayerPlan, SkyBody, Sprite, SubjectPlacement } from '../scene-types.ts';
import { SILHOUETTES, type Silhouette } from './catalog.ts';
import type { Part, Tone } from './shapes.ts';
import type { SubjectIntent } from './subject-reader.ts';

export interface PlacedSubjects {
  readonly sprites: Sprite[];
  /** Far subjects, drawn behind the layers. */
  readonly backdrop: Sprite[];
  readonly placements: SubjectPlacement[];
  readonly bodies: SkyBody[];
}

interface Spot {
  /** Centre x and base y of the group (image pixels), one subject's height and width. */
  x: number;
  base: number;
  h: number;
  w: number;
  depth: number;
  fog: number;
  /** Where a copy of the subject at column x stands (a group spreads along it). */
  ground: (x: number) => number;
}

function layerTop(layer: LayerPlan | undefined, x: number): number | undefined {
  if (!layer) return undefined;
  return layer.top[Math.max(0, Math.min(layer.top.length - 1, Math.round(x)))]!;
}

/** The top of the front-most solid ground at column x. */
function groundAt(layers: readonly LayerPlan[], x: number, height: number): number {
  for (let l = layers.length - 1; l >= 0; l--) {
    const layer = layers[l]!;
    if (layer.kind === 'solid' && !layer.holeTop && !layer.windows) return layerTop(layer, x)!;
  }
  return height;
}

/** The subject's colour under the scene's light (lit side), before the grade. */
function lightColour(c: SceneContext, colour: Rgb): Rgb {
  switch (c.time) {
    case 'night':
      return mixRgb(scaleRgb(colour, 0.55), c.palette.skyTop, 0.15);
    case 'dusk':
      return mixRgb(scaleRgb(colour, 0.75), c.palette.skyTop, 0.1);
    case 'golden':
    case 'sunset':
    case 'sunrise':
      return mixRgb(colour, mixRgb(colour, c.palette.sun, 0.5), 0.25);
    case 'overcast':
      return scaleRgb(colour, 0.94);
    default:
      return colour;
  }
}

/** Clips a polygon to the half-plane x ≥ cx (side 1) or x ≤ cx (side −1). */
function clipHalf(points: readonly number[], cx: number, side: number): number[] {
  const out: number[] = [];
  const n = points.length >> 1;
  for (let i = 0; i < n; i++) {
    const ax = points[i * 2]!;
    const ay = points[i * 2 + 1]!;
    const bx = points[((i + 1) % n) * 2]!;
    const by = points[((i + 1) % n) * 2 + 1]!;
    const ain = (ax - cx) * side >= 0;
    const bin = (bx - cx) * side >= 0;
    if (ain) out.push(ax, ay);
    if (ain !== bin) {
      const t = (cx - ax) / (bx - ax);
      out.push(cx, ay + (by - ay) * t);
    }
  }
  return out;
}

/** Emits one silhouette at (x, base), `h` pixels high, mirrored when `flip` is −1. */
function emit(out: Sprite[], s: Silhouette, x: number, base: number, h: number, flip: number, tones: Record<Tone, Rgb>, shadeOf: (c: Rgb) => Rgb, lightSide: number, alpha: number): void {
  const X = (u: number): number => x + u * h * flip;
  const Y = (v: number): number => base + v * h;
  for (const part of s.parts) {
    const colour = tones[part.tone];
    emitPart(out, part, X, Y, h, colour, shadeOf, lightSide, alpha);
  }
}

function emitPart(out: Sprite[], part: Part, X: (u: number) => number, Y: (v: number) => number, h: number, colour: Rgb, shadeOf: (c: Rgb) => Rgb, lightSide: number, alpha: number): void {
  switch (part.kind) {
    case 'poly': {
      const points: number[] = [];
      let min = Infinity;
      let max = -Infinity;
      for (let i = 0; i < part.points.length; i += 2) {
        const px = X(part.points[i]!);
        points.push(px, Y(part.points[i + 1]!));
        min = Math.min(min, px);
        max = Math.max(max, px);
      }
      out.push({ type: 'polygon', points, colour, alpha });
      if (part.shade) {
        // The third of the part away from the sun takes the shadow.
        const cut = lightSide > 0 ? min + (max - min) * 0.62 : max - (max - min) * 0.62;
        const shaded = clipHalf(points, cut, lightSide > 0 ? 1 : -1);
        if (shaded.length >= 6) out.push({ type: 'polygon', points: shaded, colour: shadeOf(colour), alpha });
      }
      return;
    }
    case 'disc': {
      const x = X(part.x);
      const y = Y(part.y);
      const r = part.r * h;
      if (part.shade) {
        out.push({ type: 'disc', x, y, r, colour: shadeOf(colour), alpha, soft: 0 });
        out.push({ type: 'disc', x: x - lightSide * r * 0.22, y: y - r * 0.12, r: r * 0.84, colour, alpha, soft: 0.05 });
      } else {
        out.push({ type: 'disc', x, y, r, colour, alpha, soft: 0 });
      }
      return;
    }
    case 'line':
      out.push({ type: 'stroke', x0: X(part.x0), y0: Y(part.y0), x1: X(part.x1), y1: Y(part.y1), r0: Math.max(0.6, part.r0 * h), r1: Math.max(0.6, part.r1 * h), colour, alpha });
      return;
  }
}

/**
 * Raises the cliff layer into a headland from the nearer frame edge to just past column x, so a
 * subject "on the cliffs" stands on a cliff top that reads as one (steep seaward face, rough top).
 */
function raiseHeadland(cliffs: LayerPlan, x: number, reach: number, plateau: number, width: number, height: number): void {
  const top = cliffs.top as Float32Array;
  const toLeft = x < width / 2;
  const end = toLeft ? x + reach : x - reach;
  const face = height * 0.05;
  const at = top[Math.max(0, Math.min(width - 1, Math.round(x)))]!;
  const level = Math.min(plateau, at);
  for (let px = 0; px < width; px++) {
    const beyond = toLeft ? px - end : end - px;
    const rough = Math.sin(px * 0.071) * height * 0.004 + Math.sin(px * 0.23) * height * 0.002;
    // Past the face the cliff falls away to open water.
    top[px] = beyond <= 0 ? level + rough : level + rough + (beyond / face) ** 2 * height;
  }
}

/** Places `subjects` (only those with a silhouette or a sky body; scenery is coloured elsewhere). */
export function placeSubjects(c: SceneContext, layers: readonly LayerPlan[], subjects: readonly SubjectIntent[]): PlacedSubjects {
  const { width, height, horizon, palette } = c;
  const random = c.world.fork(400);
  const sprites: { depth: number; sprites: Sprite[]; far: boolean }[] = [];
  const placements: SubjectPlacement[] = [];
  const bodies: SkyBody[] = [];
  const spots = new Map<number, Spot>();
  const cliffs = layers.find((l) => l.role === 'cliffs');
  const water = layers.find((l) => l.kind === 'water')?.water;
  const near = layers.find((l) => l.role === 'near');
  const drawable = (i: number): boolean => {
    const s = subjects[i];
    return s !== undefined && (SILHOUETTES[s.kind] !== undefined || s.entry.body === true);
  };
  const mainSide = random.chance(0.5) ? 1 : 2;
  let freeSlot = 0;
  const freeX = (): number => {
    // The first subject on a third, the next on the other third, then between.
    const slots = [mainSide / 3, (3 - mainSide) / 3, 0.5, mainSide === 1 ? 0.82 : 0.18];
    const x = slots[freeSlot % slots.length]! + random.range(-0.04, 0.04);
    freeSlot++;
    return x * width;
  };
  // The shaded side: darker in CIELAB lightness, a touch of the sky's colour (a colour stays itself in shade).
  const shadow = (colour: Rgb): Rgb => mixRgb(adjustLab(colour, c.time === 'night' ? -8 : -14, 0.95), palette.skyTop, 0.05);

  const place = (index: number, guard: number): Spot | undefined => {
    const existing = spots.get(index);
    if (existing) return existing;
    const subject = subjects[index]!;
    if (!drawable(index) || guard > 4) return undefined;
    const entry = subject.entry;
    const anchor = entry.anchor ?? 'ground';
    let h = (entry.height ?? 0.3) * height * random.range(0.92, 1.08);
    const unitWidth = SILHOUETTES[subject.kind] ? SILHOUETTES[subject.kind]!(c.world.fork(401 + index)).width : 1;
    const relation = subject.relation;
    const target = relation && drawable(relation.target) ? place(relation.target, guard + 1) : undefined;
    const targetScenery = relation ? subjects[relation.target]?.entry.scenery : undefined;
    let x = target ? target.x : freeX();
    let base: number;
    let depth = 0;
    let fog = entry.far ? 0.18 : 0;
    const onCliffs = relation?.type === 'on' && targetScenery === 'cliffs' && cliffs !== undefined;
    // Open water and no near ground: stand on the far shore.
    const shore = water !== undefined && !near && !onCliffs;
    const groundFor = (px: number): number => (onCliffs ? layerTop(cliffs, px)! : shore ? water.y + height * 0.005 : groundAt(layers, px, height));
    if (relation?.type === 'on' && targetScenery === 'cliffs' && cliffs) {
      // Stand on the cliff where it is highest near the chosen third.
      let best = x;
      let bestTop = Infinity;
      for (let px = x - width * 0.12; px <= x + width * 0.12; px += Math.max(1, width / 200)) {
        if (px < width * 0.1 || px > width * 0.9) continue;
        const t = layerTop(cliffs, px)!;
        if (t < bestTop) (bestTop = t), (best = px);
      }
      x = best;
      raiseHeadland(cliffs, x, Math.max(unitWidth * h * 1.6, width * 0.1), horizon - height * random.range(0.04, 0.1), width, height);
    }
    if (anchor === 'sky') {
      base = horizon * random.range(0.45, 0.7) + h * 0.3;
    } else if (anchor === 'water' && water) {
      const limit = near ? Math.min(layerTop(near, x)!, height) - height * 0.02 : height * 0.96;
      base = Math.min(limit, water.y + (height - water.y) * random.range(0.25, 0.5));
      h *= 0.75 + ((base - water.y) / Math.max(1, height - water.y)) * 0.6;
      depth = base;
    } else if (entry.far) {
      // Behind the layers: its foot sinks below the horizon, where the land in front hides it.
      base = horizon + height * 0.1;
      h *= 1.15;
      depth = -1;
    } else if (shore) {
      base = groundFor(x);
      h *= 0.7;
      depth = base;
    } else {
      base = groundFor(x) + h * 0.015;
      depth = base;
    }
    if (target && relation) {
      const tw = target.w;
      switch (relation.type) {
        case 'on':
          if (anchor !== 'sky') base = target.base - target.h * (subjects[relation.target]?.kind === 'bridge' ? 1 : 0.92);
          else base = target.base - target.h - h * 0.1;
          depth = target.depth + 0.1;
          break;
        case 'above':
          x = target.x + random.range(-0.15, 0.15) * tw;
          base = target.base - target.h - height * 0.06;
          if (anchor !== 'sky') h *= 0.8;
          depth = target.depth - 0.2;
          break;
        case 'below':
          // Under something in the sky (a moon, a balloon): stand where it stands, beneath it.
          if (subjects[relation.target]?.entry.anchor !== 'sky' || anchor === 'sky') base = Math.min(height * 0.97, target.base + height * 0.12);
          x = target.x + random.range(-0.2, 0.2) * tw;
          if (anchor === 'ground' && subjects[relation.target]?.entry.anchor === 'sky') base = groundFor(x) + h * 0.015;
          depth = target.depth + 0.2;
          break;
        case 'beside': {
          const side = x < width / 2 ? 1 : -1;
          const group = subject.count * unitWidth * h * 1.3 * (subject.count > 1 ? 0.85 : 1);
          x = target.x + side * (tw / 2 + group / 2) * 1.1;
          base = anchor === 'sky' ? target.base : groundFor(x) + h * 0.015;
          depth = target.depth;
          break;
        }
        case 'front':
          x = target.x + tw * 0.35 * (target.x < width / 2 ? 1 : -1);
          base = Math.min(height * 0.98, target.base + height * 0.06);
          h *= 1.05;
          depth = target.depth + 0.3;
          break;
        case 'behind':
          x = target.x - tw * 0.4 * (target.x < width / 2 ? -1 : 1);
          base = target.base - height * 0.05;
          h *= 0.75;
          fog += 0.12;
          depth = target.depth - 0.3;
          break;
      }
    }
    // Keep the subject inside the frame.
    h = Math.min(h, Math.max(height * 0.08, base - height * 0.05));
    const spot: Spot = { x, base, h, w: unitWidth * h, depth, fog, ground: groundFor };
    spots.set(index, spot);
    return spot;
  };

  subjects.forEach((subject, index) => {
    if (!drawable(index)) return;
    const spot = place(index, 0)!;
    const entry = subject.entry;
    const colour = subject.colour ?? hexToRgb(entry.colour ?? '#a0a0a0');
    if (entry.body) {
      const planet = subject.kind === 'planet';
      const r = spot.h / 2;
      const cy = Math.max(r * 1.1, Math.min(horizon - r * 0.6, spot.base - r));
      bodies.push({
        x: spot.x, y: cy, r, colour: c.time === 'night' || c.time === 'dusk' ? colour : mixRgb(colour, palette.skyHorizon, 0.15), shadow: mixRgb(adjustLab(colour, -45, 0.6), palette.skyTop, 0.5),
        lightAngle: Math.atan2(c.sunY - cy, c.sunX - spot.x), bands: planet ? 6 : 0, ring: planet ? 0.75 : 0, ringTilt: 0.24, ringColour: mixRgb(colour, [240, 236, 220], 0.5),
      });
      placements.push({ kind: subject.kind, x0: spot.x - r, y0: cy - r, x1: spot.x + r, y1: cy + r, core: [spot.x - r * 0.35, cy - r * 0.35, spot.x + r * 0.35, cy + r * 0.35], colour, bound: subject.colour !== undefined });
      return;
    }
    const silhouette = SILHOUETTES[subject.kind]!(c.world.fork(401 + index));
    const flock = subject.kind === 'birds';
    const count = flock ? (subject.count > 1 ? subject.count : 9) : subject.count;
    let h = spot.h;
    const spacing = flock ? 0 : silhouette.width * 1.3;
    if (!flock && count > 1) h = Math.min(h * (count > 3 ? 0.75 : 0.85), (width * 0.92) / (count * spacing));
    if (flock) h = height * 0.032;
    const tones: Record<Tone, Rgb> = {
      body: colour, roof: adjustLab(colour, -30, 0.8), trim: [236, 232, 222], dark: [34, 32, 38], glow: [255, 220, 150], trunk: [92, 66, 48], sand: [226, 206, 160], foam: [236, 242, 246],
    };
    for (const [tone, rgb] of Object.entries(silhouette.tones ?? {})) tones[tone as Tone] = rgb;
    for (const tone of Object.keys(tones) as Tone[]) {
      if (tone === 'glow') continue;
      tones[tone] = mixRgb(lightColour(c, tones[tone]), c.palette.skyHorizon, spot.fog);
    }
    const lightSide = c.sunX < spot.x ? 1 : -1;
    const own: Sprite[] = [];
    const span = (count - 1) * spacing * h;
    let gx = Math.min(width - silhouette.width * h * 0.5 - span, Math.max(silhouette.width * h * 0.5, spot.x - span / 2));
    if (span + silhouette.width * h > width) gx = (width - span) / 2;
    for (let k = 0; k < count; k++) {
      let x = gx + k * spacing * h;
      let base = spot.base;
      let hk = h;
      if (flock) {
        x = spot.x + random.gauss() * width * 0.22;
        base = spot.base - spot.h + random.gauss() * height * 0.12;
        hk = h * random.range(0.7, 1.3);
      } else if (subject.entry.anchor === 'water' && count > 1) {
        const jitter = random.range(-0.04, 0.04) * height;
        base += jitter;
        hk *= 1 + jitter / height;
      } else if (subject.entry.anchor === 'ground' && count > 1 && !entry.far && subject.relation?.type !== 'on') {
        base = spot.ground(x) + hk * 0.015;
      }
      const flip = random.chance(0.5) ? 1 : -1;
      const s = k === 0 ? silhouette : SILHOUETTES[subject.kind]!(c.world.fork(401 + index + k * 31));
      emit(own, s, x, base, hk, flip, tones, shadow, lightSide, 1);
      const [cx0, cy0, cx1, cy1] = s.core;
      const ax = flip > 0 ? [x + cx0 * hk, x + cx1 * hk] : [x - cx1 * hk, x - cx0 * hk];
      placements.push({
        kind: subject.kind, x0: x - (s.width / 2) * hk, y0: base - hk, x1: x + (s.width / 2) * hk, y1: base,
        core: [ax[0]!, base + cy0 * hk, ax[1]!, base + cy1 * hk], colour, bound: subject.colour !== undefined,
      });
    }
    sprites.push({ depth: spot.depth, sprites: own, far: entry.far === true });
  });
  sprites.sort((a, b) => a.depth - b.depth);
  return { sprites: sprites.filter((s) => !s.far).flatMap((s) => s.sprites), backdrop: sprites.filter((s) => s.far).flatMap((s) => s.sprites), placements, bodies };
}
