/** The picture's palette: a time of day's light, recoloured by the prompt's colour words and pulled toward the references. */
import { adjustLab, chroma, hexToRgb, lightness, mixRgb, rgbToLab, type Rgb } from './colour.ts';
import { lexicon, type TimeOfDay } from './lexicon.ts';
import type { SceneIntent } from './prompt-reader.ts';
import type { Random } from './random.ts';
import type { PaletteEntry } from './references.ts';

export const ROLES = ['skyTop', 'skyMid', 'skyHorizon', 'sun', 'cloudLit', 'cloudShade', 'far', 'mid', 'near', 'ground', 'water', 'accent'] as const;
export type Role = (typeof ROLES)[number];
export type Palette = Record<Role, Rgb>;

/** Roles a named colour may take, with how much of the picture each covers. */
const COLOUR_ROLES: readonly Role[] = ['skyHorizon', 'skyTop', 'far', 'mid', 'near', 'water', 'ground'];

export function basePalette(time: TimeOfDay): Palette {
  const t = lexicon().times[time];
  const palette = {} as Palette;
  for (const role of ROLES) palette[role] = hexToRgb(t[role]);
  return palette;
}

/** Scene words that change the ground's colour before any colour word is applied. */
export function adaptToScene(palette: Palette, intent: SceneIntent, time: TimeOfDay): void {
  const s = intent.scene;
  const night = time === 'night' || time === 'dusk' ? 0.45 : 1;
  const cold = (intent.atmosphere['cold'] ?? 0) + (intent.atmosphere['snow'] ?? 0) + (s['glacier'] ?? 0) + (s['ice'] ?? 0);
  if (cold > 0.8) {
    palette.far = mixRgb(palette.far, [200 * night, 222 * night, 238 * night], 0.65);
    palette.mid = mixRgb(palette.mid, [170 * night, 200 * night, 222 * night], 0.6);
    palette.near = mixRgb(palette.near, [215 * night, 228 * night, 240 * night], 0.55);
    palette.water = mixRgb(palette.water, [150 * night, 200 * night, 225 * night], 0.6);
    palette.skyHorizon = mixRgb(palette.skyHorizon, [225, 238, 246], 0.5 * night);
  }
  if ((s['dunes'] ?? 0) > 0.5) {
    palette.far = mixRgb(palette.far, [222 * night, 168 * night, 110 * night], 0.8);
    palette.mid = mixRgb(palette.mid, [206 * night, 136 * night, 76 * night], 0.8);
    palette.near = mixRgb(palette.near, [160 * night, 96 * night, 52 * night], 0.8);
    palette.ground = mixRgb(palette.ground, [110 * night, 64 * night, 38 * night], 0.7);
    palette.skyMid = mixRgb(palette.skyMid, [236, 170, 110], 0.4);
    palette.skyTop = mixRgb(palette.skyTop, [200, 150, 120], 0.3);
  }
  if ((s['forest'] ?? 0) + (s['garden'] ?? 0) + (s['trees'] ?? 0) > 0.9 && cold < 0.8) {
    palette.mid = mixRgb(palette.mid, [70 * night, 110 * night, 80 * night], 0.4);
    palette.near = mixRgb(palette.near, [40 * night, 78 * night, 54 * night], 0.45);
  }
  if ((s['space'] ?? 0) > 0.9) {
    palette.skyTop = mixRgb(palette.skyTop, [8, 10, 26], 0.85);
    palette.skyMid = mixRgb(palette.skyMid, [22, 24, 52], 0.7);
  }
}

/** Gives each named colour the role closest in lightness (with a little seeded play), so the colour covers an area. */
export function applyNamedColours(palette: Palette, intent: SceneIntent, random: Random, exposure: number): void {
  const strong = intent.colours.filter((c) => c.weight >= 1);
  const colours = (strong.length >= 3 ? strong : [...strong, ...intent.colours.filter((c) => c.weight < 1)]).slice(0, 6);
  if (colours.length === 0) return;
  const water = ['sea', 'lake', 'river', 'ice'].some((w) => (intent.scene[w] ?? 0) > 0.35);
  const free = new Set<Role>(COLOUR_ROLES.filter((role) => water || role !== 'water'));
  let mostChromatic: Rgb | undefined;
  let bestChroma = -1;
  for (const colour of colours) {
    const rgb = exposure < 0.8 ? adjustLab(colour.rgb, -(1 - exposure) * 40) : colour.rgb;
    const l = lightness(rgb) + random.range(-6, 6);
    let best: Role | undefined;
    let bestD = Infinity;
    const blue = rgbToLab(rgb)[2] < -15;
    for (const role of free) {
      // Blues belong to the sky and water; warm colours to the land.
      const skyish = role === 'skyTop' || role === 'skyHorizon' || role === 'water';
      const d = Math.abs(lightness(palette[role]) - l) + (blue && !skyish ? 30 : 0) + (!blue && role === 'skyTop' ? 12 : 0);
      if (d < bestD) (bestD = d), (best = role);
    }
    if (best === undefined) break;
    free.delete(best);
    palette[best] = mixRgb(palette[best], rgb, colour.weight >= 1 ? 1 : 0.6);
    const c = chroma(colour.rgb);
    if (c > bestChroma) (bestChroma = c), (mostChromatic = colour.rgb);
  }
  if (mostChromatic) palette.accent = mostChromatic;
  // Keep the sky readable as one sky: mid between top and horizon unless a colour sits there.
  palette.skyMid = mixRgb(palette.skyTop, palette.skyHorizon, 0.7);
  const warm = colours.find((c) => {
    const lab = rgbToLab(c.rgb);
    return lab[2] > 35 && lab[0] > 55;
  });
  if (warm) palette.sun = mixRgb(palette.sun, warm.rgb, 0.45);
  palette.cloudLit = mixRgb(palette.cloudLit, palette.skyHorizon, 0.35);
  palette.cloudShade = mixRgb(palette.cloudShade, palette.skyTop, 0.35);
}

/** Pulls every role toward the reference colour at the same lightness rank. */
export function pullToward(palette: Palette, references: readonly PaletteEntry[], strength: number): void {
  if (references.length === 0) return;
  const total = references.reduce((s, e) => s + e.weight, 0);
  const sorted = [...references].sort((a, b) => a.lab[0] - b.lab[0]);
  const roles = [...ROLES].sort((a, b) => lightness(palette[a]) - lightness(palette[b]));
  roles.forEach((role, rank) => {
    const q = (rank + 0.5) / roles.length;
    let acc = 0;
    let chosen = sorted[sorted.length - 1]!;
    for (const entry of sorted) {
      acc += entry.weight / total;
      if (acc >= q) {
        chosen = entry;
        break;
      }
    }
    palette[role] = mixRgb(palette[role], chosen.rgb, strength);
  });
}

/** Seeded hue play for prompts without colour words, so that seeds differ in colour too. */
export function varyHue(palette: Palette, random: Random, degrees: number): void {
  const shift = random.range(-degrees, degrees);
  for (const role of ROLES) palette[role] = adjustLab(palette[role], 0, 1, shift);
}

export function styleChroma(palette: Palette, scale: number, lightnessDelta: number): void {
  if (scale === 1 && lightnessDelta === 0) return;
  for (const role of ROLES) palette[role] = adjustLab(palette[role], lightnessDelta, scale);
}
