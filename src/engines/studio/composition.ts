/** Builds the depth layers (far ranges, middle ground, water, near ground, framing architecture) from the scene words. */
import { mixRgb, type Rgb } from './colour.ts';
import type { SceneContext } from './scene-plan.ts';
import type { LayerPlan } from './scene-types.ts';
import { addTowers, addTrees, arcade, cityLine, cliffLine, duneLine, hillLine, ridgeLine, rooftopLine, terraceLine } from './terrain.ts';

const LAND = ['mountains', 'hills', 'terraces', 'dunes', 'forest', 'trees', 'garden', 'sea', 'lake', 'river', 'ice', 'glacier', 'city', 'rooftops', 'cliffs', 'islands', 'space', 'planet', 'railway', 'canopy', 'arches', 'towers'] as const;

/** Landscapes for prompts that name no place: picked from the prompt's hash and the seed. */
const ARCHETYPES: readonly (readonly string[])[] = [
  ['mountains', 'lake', 'forest'],
  ['hills', 'trees'],
  ['dunes', 'cliffs'],
  ['sea', 'cliffs', 'islands'],
  ['terraces', 'hills', 'mountains'],
  ['mountains', 'forest', 'river'],
  ['sea', 'islands'],
  ['hills', 'lake', 'towers'],
];

function slopeShade(top: Float32Array, sunX: number, strength: number): Float32Array {
  const shade = new Float32Array(top.length);
  const n = top.length;
  // Shade from the large-scale slope only: per-column noise would read as vertical stripes.
  const span = Math.max(2, Math.round(n / 60));
  for (let x = 0; x < n; x++) {
    const a = top[Math.max(0, x - span)]!;
    const b = top[Math.min(n - 1, x + span)]!;
    const slope = (b - a) / (2 * span);
    const side = x < sunX ? 1 : -1;
    shade[x] = Math.max(-0.3, Math.min(0.3, -slope * side * strength));
  }
  return shade;
}

interface LayerStyle {
  readonly colour: Rgb;
  readonly bottom: Rgb;
  readonly fog: number;
  readonly mist?: number;
  readonly rim: number;
  readonly shade?: number;
}

export function composeLayers(c: SceneContext): LayerPlan[] {
  const { width, height, palette, world, view, horizon } = c;
  let has = (name: string): boolean => c.feature(name) > 0.35;
  if (!LAND.some((name) => has(name))) {
    const archetype = ARCHETYPES[(c.intent.hash + world.int(0, 7)) % ARCHETYPES.length]!;
    const base = has;
    has = (name) => archetype.includes(name) || base(name);
  }
  const warm = c.time === 'golden' || c.time === 'sunset' || c.time === 'sunrise';
  const rimStrength = warm ? 70 : c.time === 'night' ? 12 : c.time === 'overcast' ? 8 : 35;
  const rimWidth = Math.max(1, height * 0.004);
  const layers: LayerPlan[] = [];
  const make = (top: Float32Array, s: LayerStyle, extra: Partial<LayerPlan> = {}): LayerPlan => {
    let min = height;
    for (let x = 0; x < width; x++) min = Math.min(min, top[x]!);
    return {
      kind: 'solid', top, colourTop: s.colour, colourBottom: s.bottom, gradientFrom: min, gradientTo: height, fog: s.fog, mist: s.mist ?? 0.15,
      rim: palette.sun, rimStrength: rimStrength * s.rim / 255, rimWidth,
      ...(s.shade ? { shade: slopeShade(top, c.sunX, s.shade) } : {}),
      ...extra,
    };
  };
  const water = has('sea') || has('lake') || has('river') || has('ice');
  const epic = 1 + c.style('epic') * 0.3;
  const minimal = c.style('minimal') > 0.5;
  const haze = (c.intent.atmosphere['haze'] ?? 0) * 0.12 + (c.intent.atmosphere['fog'] ?? 0) * 0.15;

  // Far ranges.
  if (has('glacier') || has('mountains') || (!water && !has('city') && world.chance(0.5)) || (water && world.chance(0.55))) {
    const glacier = has('glacier');
    if (!minimal) {
      const back = ridgeLine(view, world.fork(20), horizon, height * world.range(0.2, 0.34) * epic, world.range(0.9, 1.6), glacier ? 1.6 : 0.9);
      layers.push(make(back, { colour: mixRgb(palette.far, palette.skyHorizon, 0.35), bottom: palette.far, fog: 0.4 + haze, rim: 0.6, shade: glacier ? 3 : 1.5 }));
    }
    const front = ridgeLine(view, world.fork(21), horizon + height * 0.015, height * world.range(0.12, 0.24) * epic, world.range(1.4, 2.4), glacier ? 2.2 : 1.2);
    const cold = glacier || (c.intent.atmosphere['cold'] ?? 0) > 0.5 || (c.intent.atmosphere['snow'] ?? 0) > 0.5;
    let snow: Float32Array | undefined;
    if (cold || world.chance(0.35)) {
      snow = new Float32Array(width);
      const line = horizon - height * (cold ? 0.02 : 0.1);
      for (let x = 0; x < width; x++) snow[x] = line + Math.sin(x * 0.05) * height * 0.006;
    }
    layers.push(make(front, { colour: palette.far, bottom: mixRgb(palette.far, palette.mid, 0.5), fog: 0.18 + haze, rim: 1, shade: glacier ? 4 : 2.5 }, snow ? { snow } : {}));
  } else {
    const hills = hillLine(view, world.fork(22), horizon, height * world.range(0.03, 0.08), world.range(1.5, 3));
    layers.push(make(hills, { colour: mixRgb(palette.far, palette.skyHorizon, 0.3), bottom: palette.far, fog: 0.45 + haze, rim: 0.5 }));
  }

  // Middle ground: on the far shore when there is water, stepping toward the viewer otherwise.
  const midBase = water ? horizon + height * 0.012 : horizon + height * world.range(0.05, 0.12);
  const midStyle: LayerStyle = { colour: palette.mid, bottom: mixRgb(palette.mid, palette.near, 0.4), fog: 0.16 + haze, rim: 1, shade: 2 };
  if (has('city')) {
    const top = cityLine(view, world.fork(30), midBase, height * world.range(0.12, 0.24) * epic, world.range(0.035, 0.06));
    if (has('towers')) addTowers(view, world.fork(31), top, world.int(1, 3), height * 0.3);
    const night = c.time === 'night' || c.time === 'dusk' || c.time === 'sunset';
    layers.push(make(top, { ...midStyle, shade: 0 }, {
      windows: { cellWidth: Math.max(3, height * 0.008), cellHeight: Math.max(4, height * 0.012), density: night ? 0.4 : 0.18, colour: night ? mixRgb([255, 196, 110], palette.accent, 0.2) : mixRgb(palette.mid, palette.skyHorizon, 0.45), seed: world.int(0, 1 << 30) },
    }));
  }
  if (has('terraces')) {
    const top = terraceLine(view, world.fork(32), midBase + height * 0.04, height * world.range(0.12, 0.22), world.range(1.2, 2.2), world.int(5, 9));
    if (has('trees') || has('garden')) addTrees(view, world.fork(33), top, height * 0.025, 0.03, 'round', 0.5);
    layers.push(make(top, { ...midStyle, rim: 1.6 }));
  }
  if (has('rooftops')) {
    const top = rooftopLine(view, world.fork(34), midBase + height * (water ? 0 : 0.06), height * world.range(0.035, 0.06), world.range(0.07, 0.11));
    if (has('towers') && !has('city')) addTowers(view, world.fork(35), top, world.int(1, 3), height * 0.16);
    layers.push(make(top, { ...midStyle, colour: mixRgb(palette.mid, palette.accent, 0.35), shade: 0 }));
  } else if (has('towers') && !has('city')) {
    const top = hillLine(view, world.fork(36), midBase, height * 0.03, 2);
    addTowers(view, world.fork(37), top, world.int(2, 4), height * 0.25);
    layers.push(make(top, midStyle));
  }
  if (has('cliffs') || has('islands')) {
    const top = has('islands') && !has('cliffs')
      ? hillLine(view, world.fork(38), midBase + height * 0.03, height * 0.08, 3.5)
      : cliffLine(view, world.fork(39), midBase + height * 0.02, height * world.range(0.12, 0.22), world.range(1.2, 2.4));
    if (has('islands')) for (let x = 0; x < width; x++) top[x] = Math.min(midBase + height * 0.06, top[x]!);
    if (has('islands') || has('palms')) addTrees(view, world.fork(40), top, height * 0.05, 0.12, 'palm', 0.35);
    layers.push(make(top, { ...midStyle, shade: 4 }, has('cliffs') ? { role: 'cliffs' } : {}));
  }
  if (has('dunes')) {
    layers.push(make(duneLine(view, world.fork(41), midBase + height * 0.05, height * world.range(0.06, 0.12), world.range(1.2, 2)), { ...midStyle, shade: 6 }));
  }
  if ((has('hills') || has('forest')) && !water) {
    const top = hillLine(view, world.fork(42), midBase + height * 0.05, height * world.range(0.05, 0.1), world.range(1.5, 2.8));
    if (has('forest')) addTrees(view, world.fork(43), top, height * 0.06, 0.035, 'conifer', 0.9);
    else if (has('trees')) addTrees(view, world.fork(44), top, height * 0.05, 0.09, 'round', 0.6);
    layers.push(make(top, { ...midStyle, fog: midStyle.fog * 0.6, colour: mixRgb(palette.mid, palette.near, 0.35) }));
  } else if (has('forest') && water) {
    const top = hillLine(view, world.fork(45), midBase, height * 0.02, 2);
    addTrees(view, world.fork(46), top, height * 0.05, 0.025, 'conifer', 0.95);
    layers.push(make(top, midStyle));
  }

  // Water.
  if (water) {
    const ice = has('ice') && !has('sea') && !has('lake');
    layers.push({
      kind: 'water', top: new Float32Array(width), colourTop: ice ? mixRgb(palette.water, [225, 238, 246], 0.5) : palette.water,
      colourBottom: mixRgb(palette.water, palette.ground, 0.4), gradientFrom: horizon, gradientTo: height, fog: 0.05, mist: 0,
      rim: palette.sun, rimStrength: 0, rimWidth: 1,
      water: { y: Math.round(horizon + height * 0.012), reflectivity: ice ? 0.35 : c.style('serene') > 0 ? 0.8 : 0.62, ripple: ice ? 0.2 : 1, phase: world.range(0, 100) },
    });
  }

  // Railway on a viaduct across the middle distance.
  if (has('railway') || has('bridge')) {
    const deck = Math.round(horizon + height * world.range(0.05, 0.12));
    const span = Math.max(12, Math.round(height * world.range(0.1, 0.16)));
    const a = arcade(view, deck, height * 0.018, span, Math.round(span * 0.22), height, Math.round(world.range(0, span)));
    if (has('railway')) {
      // A streamlined train on the deck.
      const x0 = width * world.range(0.05, 0.35);
      const len = width * world.range(0.35, 0.55);
      const th = height * 0.035;
      for (let x = Math.max(0, Math.floor(x0)); x < Math.min(width, x0 + len); x++) {
        const t = (x - x0) / len;
        const nose = t > 0.9 ? Math.sqrt(Math.max(0, 1 - ((t - 0.9) / 0.1) ** 2)) : 1;
        a.top[x] = deck - th * nose;
      }
    }
    layers.push(make(a.top, { colour: mixRgb(palette.near, palette.mid, 0.4), bottom: palette.near, fog: 0.1, rim: 1.2 }, { holeTop: a.holeTop, holeBottom: a.holeBottom }));
  }

  // Near ground.
  const nearFlat = has('plaza') || has('railway') || has('canopy');
  const worldNear = !water || world.chance(0.75) || c.intent.people > 0 || has('garden') || has('standing') || c.intent.colours.length > 2;
  const showNear = c.foreground === 'close' || (c.foreground === 'as-world' && worldNear);
  // Drawn even when unused, so that every shot of a series consumes the world's stream alike.
  const worldGround = world.range(0.84, 0.92);
  if (showNear) {
    const groundY = height * (c.foreground === 'close' ? worldGround - 0.08 : worldGround);
    const top = nearFlat ? hillLine(view, world.fork(50), groundY, height * 0.01, 1) : has('dunes') ? duneLine(view, world.fork(51), groundY, height * 0.06, 1.3) : hillLine(view, world.fork(52), groundY, height * 0.06, world.range(1, 2));
    if (has('garden') || has('flowers')) addTrees(view, world.fork(53), top, height * 0.07, 0.08, 'round', 0.8);
    else if (has('forest') || has('trees')) addTrees(view, world.fork(54), top, height * 0.2, 0.12, has('forest') ? 'conifer' : 'round', 0.5);
    if (has('palms')) addTrees(view, world.fork(55), top, height * 0.28, 0.4, 'palm', 0.6);
    layers.push(make(top, { colour: nearFlat ? mixRgb(palette.near, palette.accent, 0.2) : palette.near, bottom: palette.ground, fog: 0.03, mist: 0, rim: 1.4, shade: 2 }, { role: 'near' }));
  }

  // Framing architecture in front of everything.
  if (has('canopy')) {
    // A vault seen from inside: a dark silhouette that frames the view (not a slab of the palette's
    // ground colour, which references can turn pink or green), leaving most of the picture open.
    const bottom = new Float32Array(width);
    const cx = width / 2;
    const half = width * world.range(0.42, 0.5);
    const spring = height * world.range(0.62, 0.76);
    const apex = height * world.range(0.025, 0.06);
    for (let x = 0; x < width; x++) {
      const t = Math.abs(x + 0.5 - cx) / half;
      bottom[x] = t >= 1 ? height + 1 : spring - (spring - apex) * Math.sqrt(1 - t * t);
    }
    const shadow = mixRgb(palette.skyTop, [10, 11, 16], 0.7);
    layers.push({
      kind: 'frame', top: new Float32Array(width), bottom, colourTop: mixRgb(shadow, palette.ground, 0.3), colourBottom: mixRgb(shadow, palette.ground, 0.15),
      gradientFrom: 0, gradientTo: height, fog: 0, mist: 0, rim: palette.sun, rimStrength: (rimStrength * 1.6) / 255, rimWidth: rimWidth * 1.5,
      vault: { cx, half, spring, apex },
    });
  } else if (has('arches') && world.chance(0.7)) {
    const span = Math.round(width * world.range(0.28, 0.4));
    const a = arcade(view, Math.round(height * world.range(0.02, 0.06)), height * 0.04, span, Math.round(span * 0.16), height, Math.round(span / 2 - ((width / 2) % span)));
    layers.push(make(a.top, { colour: mixRgb(palette.ground, palette.near, 0.6), bottom: palette.ground, fog: 0, mist: 0, rim: 0.8 }, { holeTop: a.holeTop, holeBottom: a.holeBottom }));
  }
  return layers;
}
