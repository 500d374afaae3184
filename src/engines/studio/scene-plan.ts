/** The composer: reads the prompt and the inputs and decides, from the seeds, what goes where. */
import { adjustLab, mixRgb, scaleRgb, type Rgb } from './colour.ts';
import { elementRect } from './elements.ts';
import type { TimeOfDay } from './lexicon.ts';
import { adaptToScene, applyNamedColours, basePalette, pullToward, styleChroma, varyHue, type Palette } from './palette.ts';
import { readPrompt, type SceneIntent } from './prompt-reader.ts';
import { airship, banner, bird, boat, dragon, figure, kite, lanternStrand, weather } from './props.ts';
import { combine, Random } from './random.ts';
import { summarizeReference, type PaletteEntry, type ReferenceSummary } from './references.ts';
import type { RenderJob } from './render-job.ts';
import type { ElementPlan, LayerPlan, ScenePlan, SkyBody, Sprite } from './scene-types.ts';
import type { View } from './terrain.ts';
import { composeLayers } from './composition.ts';
import { placeSubjects } from './subjects/place-subjects.ts';
import { readSubjects, type SubjectReading } from './subjects/subject-reader.ts';

const TIME_WEIGHTS: readonly [TimeOfDay, number][] = [
  ['golden', 3], ['sunset', 2.2], ['morning', 2], ['sunrise', 2], ['dusk', 1.4], ['day', 1.2], ['night', 0.8], ['overcast', 0.5],
];

function pickTime(random: Random): TimeOfDay {
  const total = TIME_WEIGHTS.reduce((s, [, w]) => s + w, 0);
  let r = random.next() * total;
  for (const [time, w] of TIME_WEIGHTS) if ((r -= w) <= 0) return time;
  return 'golden';
}

/** The shots of a series, by index: camera zoom and pan (world units), horizon shift, sun shift (fractions of the frame) and the foreground. */
const SHOTS: readonly { zoom: number; pan: number; horizon: number; sunShift: number; foreground: 'as-world' | 'close' | 'open' }[] = [
  { zoom: 1, pan: 0, horizon: 0, sunShift: 0, foreground: 'as-world' },
  { zoom: 0.62, pan: 1.3, horizon: 0.08, sunShift: -0.2, foreground: 'close' },
  { zoom: 1.5, pan: 2.6, horizon: -0.07, sunShift: 0.18, foreground: 'open' },
  { zoom: 0.85, pan: 3.7, horizon: 0.04, sunShift: 0.08, foreground: 'close' },
  { zoom: 1.2, pan: 5.1, horizon: -0.03, sunShift: -0.12, foreground: 'open' },
];

export interface SceneContext {
  readonly width: number;
  readonly height: number;
  readonly intent: SceneIntent;
  readonly palette: Palette;
  readonly time: TimeOfDay;
  readonly world: Random;
  readonly moment: Random;
  readonly view: View;
  readonly horizon: number;
  readonly sunX: number;
  readonly sunY: number;
  readonly reference: ReferenceSummary | undefined;
  /** In a series, how this shot treats the near ground: the world's choice, a close foreground, or none. */
  readonly foreground: 'as-world' | 'close' | 'open';
  feature(name: string): number;
  style(name: string): number;
}

export function planScene(job: RenderJob): ScenePlan {
  const reading = readSubjects(job.prompt);
  const intent = withSubjects(readPrompt(job.prompt), reading);
  const { width, height } = job;
  const inSeries = job.seriesAmount !== undefined && job.seriesIndex !== undefined;
  const seriesIndex = job.seriesIndex ?? 0;
  const seriesAmount = job.seriesAmount ?? 1;
  const world = new Random(combine(inSeries ? job.taskSeed : job.seed, intent.hash));
  const moment = new Random(combine(job.seed, intent.hash, seriesIndex, 77));
  const references = job.references.map((thumb, i) => summarizeReference(thumb, intent.imageMentions.includes(i + 1) ? 3 : i === 0 ? 1.5 : 1));
  const first = references[0];

  let time = intent.time ?? pickTime(world.fork(1));
  if (intent.time === undefined && first) time = first.lightness < 28 ? 'night' : first.lightness < 42 ? 'dusk' : time;
  const feature = (name: string): number => Math.min(1.5, intent.scene[name] ?? 0);
  const style = (name: string): number => Math.min(1, intent.style[name] ?? 0);

  const palette = basePalette(time);
  adaptToScene(palette, intent, time);
  // A storm: heavy slate clouds over a pale break of light low on the horizon, dark water and land.
  const storm = Math.min(1, intent.atmosphere['storm'] ?? 0);
  if (storm > 0.4) {
    palette.skyTop = mixRgb(palette.skyTop, [46, 54, 68], 0.8 * storm);
    palette.skyMid = mixRgb(palette.skyMid, [84, 94, 110], 0.75 * storm);
    palette.skyHorizon = mixRgb(palette.skyHorizon, [232, 222, 196], 0.45 * storm);
    palette.cloudShade = mixRgb(palette.cloudShade, [44, 50, 62], 0.85 * storm);
    palette.cloudLit = mixRgb(palette.cloudLit, [150, 158, 170], 0.7 * storm);
    palette.sun = mixRgb(palette.sun, [255, 236, 196], 0.6 * storm);
    palette.water = mixRgb(palette.water, [52, 66, 78], 0.7 * storm);
    palette.far = mixRgb(palette.far, [88, 98, 110], 0.6 * storm);
    palette.mid = mixRgb(palette.mid, [60, 68, 76], 0.6 * storm);
    palette.near = mixRgb(palette.near, [36, 42, 44], 0.6 * storm);
    palette.ground = mixRgb(palette.ground, [24, 28, 30], 0.6 * storm);
  }
  const exposure = time === 'night' ? 0.55 : time === 'dusk' ? 0.75 : 1;
  if (intent.colours.length === 0 && references.length === 0) varyHue(palette, world.fork(2), 22);
  applyNamedColours(palette, intent, world.fork(3), exposure);
  styleChroma(palette, 1 + style('vibrant') * 0.25 + style('neon') * 0.3 - style('editorial') * 0.12 - style('pastel') * 0.35 - style('vintage') * 0.3 - style('noir') * 0.85, style('pastel') * 10 - style('moody') * 6);
  colourScenery(palette, reading, exposure);
  if (references.length > 0) {
    const merged: PaletteEntry[] = references.flatMap((r) => r.palette);
    pullToward(palette, merged, 0.85);
  }

  // A series is one world seen in several shots: each index has its own framing, and the sun sinks
  // through the series (the same palette in a later light).
  const shot = inSeries ? SHOTS[seriesIndex % SHOTS.length]! : undefined;
  const zoom = shot ? shot.zoom : world.range(0.85, 1.2);
  const pan = world.range(0, 60) + (shot ? shot.pan + Math.floor(seriesIndex / SHOTS.length) * 4.3 : 0);
  const view: View = { width, height, zoom, pan };
  let hz = world.range(0.38, 0.7);
  if (feature('planet') + feature('space') + feature('sky') + style('epic') > 0.9) hz += 0.06;
  if (feature('sea') + feature('lake') > 0.9) hz -= 0.04;
  if (shot) hz += shot.horizon;
  if (first) hz = hz * 0.2 + first.horizon * 0.8;
  hz = Math.min(0.78, Math.max(0.3, hz));
  const horizon = hz * height;
  const sunHeight = time === 'night' ? 0.55 : ({ sunrise: 0.1, morning: 0.45, day: 0.7, golden: 0.28, sunset: 0.07, dusk: -0.02, overcast: 0.5 } as const)[time];
  let sunX = world.range(0.16, 0.84) * width;
  let sunY = horizon - sunHeight * horizon * 0.95;
  if (shot) {
    const progress = seriesAmount > 1 ? seriesIndex / (seriesAmount - 1) : 0;
    sunX = Math.min(0.9, Math.max(0.1, sunX / width + shot.sunShift)) * width;
    sunY = horizon - sunHeight * horizon * 0.95 * (1.15 - 0.75 * progress);
  }
  if (storm > 0.4 && !first) sunY = horizon - height * 0.03;
  if (first) {
    sunX = first.light.x * width;
    sunY = Math.min(horizon - height * 0.02, first.light.y * height);
  }

  const context: SceneContext = { width, height, intent, palette, time, world, moment, view, horizon, sunX, sunY, reference: first, foreground: shot?.foreground ?? 'as-world', feature, style };
  const layers = composeLayers(context);
  const placed = placeSubjects(context, layers, reading.subjects);
  const sprites = [...placed.sprites, ...placeProps(context, layers)];
  const fogColour = mixRgb(palette.skyHorizon, palette.far, 0.25);
  const warmLight = time === 'golden' || time === 'sunset' || time === 'sunrise';
  const clouds = storm > 0.4 ? 0.95 : Math.min(0.95, Math.max(0, ({ sunrise: 0.45, morning: 0.35, day: 0.3, golden: 0.42, sunset: 0.55, dusk: 0.4, night: 0.25, overcast: 0.95 } as const)[time] + (intent.atmosphere['clouds'] ?? 0) * 0.3 + world.range(-0.2, 0.15) - style('minimal') * 0.3));
  const bodies: SkyBody[] = [];
  if (feature('planet') > 0 || feature('orbit') > 0.9) {
    const r = height * world.range(0.16, 0.3);
    bodies.push({
      x: world.range(0.2, 0.8) * width, y: horizon - world.range(0.15, 0.45) * horizon, r,
      colour: mixRgb(palette.accent, palette.skyHorizon, 0.25), shadow: mixRgb(palette.skyTop, [10, 10, 20], 0.4),
      lightAngle: Math.atan2(sunY - horizon * 0.3, sunX - width / 2) + Math.PI, bands: world.range(4, 9),
      ring: feature('orbit') > 0 || world.chance(0.35) ? 0.75 : 0, ringTilt: world.range(0.18, 0.32), ringColour: mixRgb(palette.cloudLit, palette.sun, 0.4),
    });
  }
  if ((time === 'night' || feature('moon') > 0) && !placed.bodies.length) {
    bodies.push({ x: sunX, y: Math.max(height * 0.1, sunY), r: height * 0.035, colour: [236, 238, 228], shadow: [120, 126, 150], lightAngle: 0.6, bands: 0, ring: 0, ringTilt: 0.3, ringColour: [0, 0, 0] });
  }
  const sunDisc = time === 'overcast' || time === 'night' || time === 'dusk' ? 0 : 1;
  const glowStrength = time === 'night' ? 0.05 : time === 'overcast' ? 0.06 : warmLight ? 0.42 : 0.22;
  if (sunDisc > 0 && bodies.length === 0 || (sunDisc > 0 && feature('planet') > 0)) {
    bodies.push({ x: sunX, y: sunY, r: height * (style('retro') > 0.5 || style('minimal') > 0.5 ? 0.09 : 0.032), colour: mixRgb(palette.sun, [255, 250, 235], 0.5), shadow: mixRgb(palette.sun, [255, 250, 235], 0.4), lightAngle: 0, bands: 0, ring: 0, ringTilt: 0.3, ringColour: [0, 0, 0] });
  }
  bodies.push(...placed.bodies);
  const starsAmount = (intent.atmosphere['stars'] ?? 0) + (time === 'night' ? 1 : time === 'dusk' ? 0.35 : 0) + (feature('space') > 0 ? 1 : 0);
  const cinematic = style('cinematic');
  const vintage = style('vintage');
  const elements = placeElements(job, width, height);
  return {
    width,
    height,
    sky: {
      top: palette.skyTop, mid: palette.skyMid, horizon: palette.skyHorizon, horizonY: horizon,
      sunX, sunY, sunRadius: height * 0.03, sunColour: palette.sun, sunDisc, glow: storm > 0.4 ? 0.4 : time === 'night' ? 0.12 : time === 'overcast' ? 0.15 : 0.55,
      clouds, cloudScale: storm > 0.4 ? world.range(0.55, 0.8) : world.range(0.7, 1.5), cloudLit: palette.cloudLit, cloudShade: palette.cloudShade,
      cloudBandTop: storm > 0.4 ? -0.1 : world.range(0.02, 0.2), cloudBandBottom: Math.max(0.25, hz - (storm > 0.4 ? 0.07 : world.range(0.02, 0.15))), cloudStretch: world.range(1.8, 3.2),
      aurora: Math.min(1, intent.atmosphere['aurora'] ?? 0), auroraColour: mixRgb([80, 230, 170], palette.accent, 0.2),
      rays: Math.min(1, (intent.atmosphere['rays'] ?? 0) * 0.6 + (warmLight ? 0.15 : 0)),
      posterize: style('illustration') + style('retro') + style('flat') > 0.9 ? 14 : 0, sunStripes: false, noiseSeed: world.fork(9).int(0, 2 ** 31),
    },
    stars: Math.round(Math.min(1.5, starsAmount) * 700),
    starSeed: world.fork(10).int(0, 2 ** 31),
    bodies,
    layers,
    fogColour,
    sprites,
    grade: {
      exposure: 1 + style('dreamy') * 0.05 - style('moody') * 0.08,
      contrast: 0.12 + cinematic * 0.18 + style('noir') * 0.3 - style('dreamy') * 0.1 + storm * 0.15,
      shadowTint: cinematic > 0 ? [-4 * cinematic, 5 * cinematic, 12 * cinematic] : vintage > 0 ? [14 * vintage, 8 * vintage, -4 * vintage] : [0, 0, 4],
      highlightTint: cinematic > 0 ? [10 * cinematic, 3 * cinematic, -8 * cinematic] : vintage > 0 ? [10 * vintage, 4 * vintage, -14 * vintage] : [3, 1, -2],
      lift: 0.015 + style('editorial') * 0.03 + vintage * 0.07 + style('dreamy') * 0.04,
      vignette: 0.24 + cinematic * 0.2 + vintage * 0.2 + storm * 0.12,
      grain: 5 + vintage * 5 + style('watercolor') * 2,
      glowColour: scaleRgb(palette.sun, 0.6), glowStrength, glowX: sunX, glowY: sunY, glowRadius: 0.35 + style('dreamy') * 0.15,
      mist: Math.min(0.7, (intent.atmosphere['fog'] ?? 0) * 0.5 + (intent.atmosphere['haze'] ?? 0) * 0.2 + (intent.atmosphere['vapor'] ?? 0) * 0.12 + style('dreamy') * 0.1),
      mistY: hz + 0.04, mistHeight: 0.12, fogColour,
      paper: style('watercolor') * 0.05,
      seed: combine(job.seed, 5),
    },
    elements,
    backdrop: placed.backdrop,
    subjects: placed.placements,
  };
}

/**
 * The prompt's reading with its subjects taken out of the scene: colours bound to a subject no
 * longer tint the scene, the layers' own stand-ins for a subject (spires for a lighthouse, boats
 * for a sailboat) give way to it, and what a subject needs (water under a ship) is added.
 */
function withSubjects(intent: SceneIntent, reading: SubjectReading): SceneIntent {
  if (reading.subjects.length === 0) return intent;
  const scene: Record<string, number> = { ...intent.scene };
  let people = intent.people;
  for (const subject of reading.subjects) {
    for (const name of subject.entry.suppress ?? []) delete scene[name];
    for (const [name, amount] of Object.entries(subject.entry.needs ?? {})) scene[name] = Math.max(scene[name] ?? 0, amount);
    if (subject.entry.people) people = 0;
    // Something standing on the ground needs near ground to stand on (not the far shore across the water).
    const onCliffs = subject.relation?.type === 'on' && reading.subjects[subject.relation.target]?.entry.scenery === 'cliffs';
    if ((subject.entry.anchor ?? 'ground') === 'ground' && !subject.entry.scenery && !subject.entry.far && !onCliffs) scene['standing'] = 1;
  }
  return { ...intent, scene, people, colours: intent.colours.filter((c) => !reading.bound.has(c.name) && !reading.nouns.has(c.name)) };
}

/** Colours bound to scenery ("emerald cliffs", "a turquoise sea") go to the palette roles that draw it. */
function colourScenery(palette: Palette, reading: SubjectReading, exposure: number): void {
  for (const subject of reading.subjects) {
    const scenery = subject.entry.scenery;
    if (!scenery || !subject.colour) continue;
    const rgb = exposure < 0.8 ? adjustLab(subject.colour, -(1 - exposure) * 40) : subject.colour;
    switch (scenery) {
      case 'cliffs':
      case 'dunes':
        palette.mid = rgb;
        break;
      case 'water':
        palette.water = rgb;
        break;
      case 'hills':
        palette.mid = rgb;
        palette.near = mixRgb(rgb, palette.near, 0.25);
        break;
      case 'mountains':
        palette.far = rgb;
        break;
      case 'sky':
        palette.skyTop = rgb;
        palette.skyMid = mixRgb(rgb, palette.skyHorizon, 0.4);
        break;
    }
  }
}

function placeElements(job: RenderJob, width: number, height: number): ElementPlan[] {
  return job.elements.map((pixels, index) => {
    const rect = elementRect(width, height, job.elements.length, index, pixels.width, pixels.height);
    return { pixels, ...rect };
  });
}

/** The glazing of a vault seen from inside: arched ribs beyond the opening and mullions running out to the edges. */
function vaultRibs(out: Sprite[], vault: NonNullable<LayerPlan['vault']>, colour: Rgb, height: number): void {
  const { cx, half, spring, apex } = vault;
  const rise = spring - apex;
  const at = (theta: number, s: number): [number, number] => [cx + Math.cos(theta) * half * s, spring - Math.sin(theta) * rise * s];
  const w = Math.max(0.6, height * 0.0022);
  for (const s of [1.14, 1.34, 1.62]) {
    let [px, py] = at(0, s);
    for (let i = 1; i <= 32; i++) {
      const [x, y] = at((i / 32) * Math.PI, s);
      out.push({ type: 'stroke', x0: px, y0: py, x1: x, y1: y, r0: w, r1: w, colour, alpha: 0.22 });
      px = x;
      py = y;
    }
  }
  for (let k = 1; k < 10; k++) {
    const theta = (k / 10) * Math.PI;
    const [x0, y0] = at(theta, 1.02);
    const [x1, y1] = at(theta, 2.4);
    out.push({ type: 'stroke', x0, y0, x1, y1, r0: w * 0.9, r1: w * 1.6, colour, alpha: 0.18 });
  }
}

function groundAt(layers: readonly LayerPlan[], x: number, height: number): number {
  for (let l = layers.length - 1; l >= 0; l--) {
    const layer = layers[l]!;
    if (layer.kind === 'solid' && !layer.holeTop) return layer.top[Math.max(0, Math.min(layer.top.length - 1, Math.round(x)))]!;
  }
  return height;
}

function placeProps(c: SceneContext, layers: readonly LayerPlan[]): Sprite[] {
  const { width, height, palette, moment, intent } = c;
  const sprites: Sprite[] = [];
  const dark = mixRgb(palette.ground, [8, 8, 14], 0.45);
  const skyDark = mixRgb(palette.skyTop, [10, 10, 18], 0.65);
  if (c.feature('lanterns') > 0) {
    const strands = c.feature('lanterns') > 1.5 ? 2 : 1;
    for (let i = 0; i < strands; i++) {
      const y0 = height * moment.range(0.02, 0.14);
      const y1 = height * moment.range(0.02, 0.14);
      lanternStrand(sprites, -width * 0.02, y0, width * 1.02, y1, height * moment.range(0.06, 0.16), moment.int(7, 13), mixRgb(palette.accent, [255, 170, 60], 0.5), dark, height * 0.012);
    }
  }
  if (c.feature('kites') > 0) {
    const n = moment.int(2, 5);
    for (let i = 0; i < n; i++) kite(sprites, moment.range(0.1, 0.9) * width, moment.range(0.1, 0.4) * c.horizon, height * moment.range(0.015, 0.03), i % 2 ? palette.accent : mixRgb(palette.accent, palette.skyHorizon, 0.5), palette.cloudLit, moment);
  }
  if (c.feature('dragon') > 0) dragon(sprites, moment.range(0.55, 0.75) * width, c.horizon * moment.range(0.35, 0.55), width * 0.45, palette.accent, mixRgb(palette.sun, [255, 255, 255], 0.4), moment);
  if (c.feature('birds') > 0) {
    const n = moment.int(5, 13);
    const cx = moment.range(0.2, 0.8) * width;
    const cy = moment.range(0.15, 0.6) * c.horizon;
    for (let i = 0; i < n; i++) bird(sprites, cx + moment.gauss() * width * 0.3, cy + moment.gauss() * height * 0.15, height * moment.range(0.006, 0.014), skyDark, moment);
  }
  if (c.feature('airships') > 0) {
    const n = moment.int(1, 3);
    for (let i = 0; i < n; i++) airship(sprites, moment.range(0.15, 0.85) * width, moment.range(0.15, 0.6) * c.horizon, height * moment.range(0.03, 0.07), mixRgb(palette.cloudLit, palette.far, 0.3), mixRgb(palette.far, palette.near, 0.5));
  }
  const waterLayer = layers.find((l) => l.kind === 'water');
  if (waterLayer && c.feature('boats') > 0) {
    const n = moment.int(2, 4);
    for (let i = 0; i < n; i++) {
      const y = waterLayer.water!.y + (height - waterLayer.water!.y) * moment.range(0.05, 0.35);
      boat(sprites, moment.range(0.1, 0.9) * width, y, height * 0.02 * (1 + (y - c.horizon) / height * 4), dark, palette.cloudLit, moment);
    }
  }
  if (c.feature('banners') > 0) {
    for (let i = 0; i < moment.int(3, 6); i++) {
      const x = moment.range(0.05, 0.95) * width;
      banner(sprites, x, groundAt(layers, x, height), height * moment.range(0.12, 0.2), dark, i % 2 ? palette.accent : palette.cloudLit, moment);
    }
  }
  if (intent.people > 0) {
    const count = Math.min(22, Math.max(1, Math.round(intent.people * 1.1)));
    const solo = count === 1;
    const centre = moment.range(0.3, 0.7) * width;
    for (let i = 0; i < count; i++) {
      const x = solo ? centre : Math.min(width * 0.97, Math.max(width * 0.03, centre + moment.gauss() * width * 0.3));
      const h = height * (solo ? 0.12 : moment.range(0.06, 0.1));
      const coat = i % 3 === 0 ? palette.accent : i % 3 === 1 ? mixRgb(palette.accent, palette.sun, 0.5) : mixRgb(palette.near, palette.cloudLit, 0.4);
      figure(sprites, x, Math.min(height - h * 0.05, groundAt(layers, x, height) + h * 0.06), h, dark, coat, moment);
    }
  }
  const vault = layers.find((l) => l.kind === 'frame')?.vault;
  if (vault) vaultRibs(sprites, vault, mixRgb(palette.sun, palette.cloudLit, 0.5), height);
  const atm = intent.atmosphere;
  if ((atm['storm'] ?? 0) > 0.4 && (atm['rain'] ?? 0) <= 0.4) weather(sprites, 'rain', 260, width, height, [200, 208, 218], moment);
  if ((atm['snow'] ?? 0) > 0.4) weather(sprites, 'snow', Math.round(500 * Math.min(1.5, atm['snow']!)), width, height, [245, 248, 255], moment);
  if ((atm['rain'] ?? 0) > 0.4) weather(sprites, 'rain', Math.round(450 * Math.min(1.5, atm['rain']!)), width, height, mixRgb(palette.cloudLit, [220, 230, 240], 0.5), moment);
  if ((atm['petals'] ?? 0) > 0.4) weather(sprites, 'petals', 170, width, height, mixRgb(palette.accent, [255, 200, 215], 0.45), moment);
  if ((atm['embers'] ?? 0) > 0.4) weather(sprites, 'embers', 90, width, height, [255, 140, 50], moment, height * 0.3);
  if ((atm['fireflies'] ?? 0) > 0.4) weather(sprites, 'fireflies', 70, width, height, [230, 255, 140], moment, c.horizon);
  if ((atm['dust'] ?? 0) > 0.4) weather(sprites, 'dust', 160, width, height, mixRgb(palette.sun, palette.skyHorizon, 0.5), moment);
  if ((atm['vapor'] ?? 0) > 0.4) weather(sprites, 'vapor', 26, width, c.horizon * 1.15, mixRgb(palette.cloudLit, [255, 255, 255], 0.5), moment, c.horizon * 0.35);
  return sprites;
}
