/**
 * More subjects' silhouettes (animals, plants, buildings, vehicles and sky objects), in the same
 * unit frame as `catalog.ts`: 1 high, base centre at (0, 0), y up negative, facing +x.
 */
import type { Random } from '../random.ts';
import { arcadeWall, disc, dome, ellipse, line, poly, rect, taper, tri, type Part } from './shapes.ts';
import type { Silhouette } from './catalog.ts';

type Builder = (random: Random) => Silhouette;

/** A ring (even-odd: the outer circle and the inner one in one polygon). */
function ring(tone: Part['tone'], cx: number, cy: number, r0: number, r1: number): Part {
  const pts: number[] = [];
  const n = 24;
  for (let i = 0; i <= n; i++) pts.push(cx + Math.cos((i / n) * Math.PI * 2) * r0, cy + Math.sin((i / n) * Math.PI * 2) * r0);
  for (let i = n; i >= 0; i--) pts.push(cx + Math.cos((i / n) * Math.PI * 2) * r1, cy + Math.sin((i / n) * Math.PI * 2) * r1);
  return poly(tone, pts, false);
}

const cat: Builder = () => ({
  parts: [
    line('body', -0.2, -0.08, -0.42, -0.1, 0.04, 0.035), line('body', -0.42, -0.1, -0.5, -0.4, 0.035, 0.03),
    ellipse('body', -0.04, -0.3, 0.24, 0.3),
    line('body', 0.1, -0.3, 0.12, 0, 0.05, 0.04),
    disc('body', 0.08, -0.68, 0.16),
    poly('body', [-0.05, -0.74, 0.0, -0.98, 0.09, -0.8]), poly('body', [0.08, -0.8, 0.18, -0.98, 0.22, -0.72]),
    disc('glow', 0.05, -0.7, 0.025, false), disc('glow', 0.15, -0.7, 0.025, false),
  ],
  width: 0.8,
  core: [-0.16, -0.42, 0.08, -0.14],
  tones: { glow: [214, 220, 90] },
});

const dog: Builder = (r) => {
  const tail = r.range(-0.9, -0.78);
  return {
    parts: [
      ...[-0.3, -0.18, 0.2, 0.3].map((x) => line('body', x, -0.45, x + 0.02, 0, 0.05, 0.035)),
      ellipse('body', 0, -0.5, 0.38, 0.15),
      line('body', -0.34, -0.56, -0.5, tail, 0.035, 0.02),
      line('body', 0.3, -0.55, 0.44, -0.78, 0.09, 0.07),
      ellipse('body', 0.48, -0.82, 0.13, 0.1),
      poly('body', [0.5, -0.88, 0.72, -0.82, 0.72, -0.74, 0.52, -0.74]),
      disc('dark', 0.72, -0.8, 0.03, false),
      poly('roof', [0.4, -0.9, 0.48, -0.9, 0.44, -0.66, 0.36, -0.7]),
    ],
    width: 1.3,
    core: [-0.25, -0.58, 0.2, -0.42],
  };
};

/** A wolf sitting and howling, muzzle to the sky. */
const wolf: Builder = () => ({
  parts: [
    line('body', -0.3, -0.08, -0.7, -0.04, 0.08, 0.05),
    ellipse('body', -0.14, -0.24, 0.24, 0.24),
    poly('body', [-0.3, -0.28, -0.04, -0.62, 0.14, -0.62, 0.16, -0.3, 0.2, 0, 0.04, 0]),
    line('body', 0.12, -0.35, 0.16, 0, 0.045, 0.035),
    line('body', 0.04, -0.5, 0.1, -0.76, 0.1, 0.08),
    disc('body', 0.09, -0.8, 0.1),
    poly('body', [0.06, -0.86, 0.3, -1.0, 0.34, -0.96, 0.17, -0.74]),
    poly('body', [0.0, -0.82, -0.1, -0.96, 0.08, -0.88]),
    disc('dark', 0.13, -0.84, 0.015, false),
  ],
  width: 1.1,
  core: [-0.26, -0.38, 0.0, -0.14],
});

const rabbit: Builder = () => ({
  parts: [
    ellipse('body', 0, -0.24, 0.3, 0.24),
    disc('trim', -0.3, -0.28, 0.07, false),
    disc('body', 0.24, -0.48, 0.14),
    line('body', 0.2, -0.58, 0.13, -1.0, 0.04, 0.03), line('body', 0.26, -0.58, 0.34, -0.98, 0.04, 0.03),
    ellipse('body', 0.26, -0.04, 0.12, 0.04),
    disc('dark', 0.3, -0.5, 0.02, false),
  ],
  width: 0.8,
  core: [-0.18, -0.36, 0.1, -0.1],
});

const bear: Builder = () => ({
  parts: [
    ...[-0.38, -0.22, 0.22, 0.36].map((x) => rect('body', x, 0, 0.14, 0.45)),
    ellipse('body', 0, -0.55, 0.5, 0.28),
    disc('body', 0.22, -0.7, 0.22),
    disc('body', 0.6, -0.62, 0.16),
    ellipse('body', 0.76, -0.56, 0.1, 0.07),
    disc('body', 0.54, -0.78, 0.05),
    disc('dark', 0.85, -0.58, 0.03, false),
  ],
  width: 1.8,
  core: [-0.35, -0.68, 0.2, -0.4],
});

const elephant: Builder = () => ({
  parts: [
    ...[-0.36, -0.18, 0.16, 0.32].map((x) => rect('body', x, 0, 0.15, 0.45)),
    ellipse('body', 0, -0.58, 0.46, 0.32),
    line('body', -0.45, -0.6, -0.55, -0.3, 0.02, 0.015),
    disc('body', 0.48, -0.68, 0.2),
    line('body', 0.6, -0.62, 0.66, -0.3, 0.07, 0.05), line('body', 0.66, -0.3, 0.72, -0.12, 0.05, 0.035),
    line('trim', 0.56, -0.52, 0.7, -0.44, 0.018, 0.01),
    ellipse('roof', 0.36, -0.64, 0.14, 0.2),
  ],
  width: 1.6,
  core: [-0.3, -0.7, 0.1, -0.4],
});

/** One bird of prey, wings spread. */
const eagle: Builder = () => {
  const wing = [0, -0.55, -0.3, -0.78, -0.7, -0.92, -1.15, -0.98, -1.08, -0.88, -1.18, -0.82, -1.06, -0.76, -1.12, -0.68, -0.7, -0.58, -0.3, -0.42];
  const mirror = wing.map((v, i) => (i % 2 === 0 ? -v : v));
  return {
    parts: [
      poly('body', wing), poly('body', mirror),
      poly('body', [-0.08, -0.25, 0.08, -0.25, 0.16, 0, -0.16, 0]),
      ellipse('body', 0, -0.48, 0.11, 0.3),
      disc('trim', 0, -0.8, 0.09, false), tri('glow', 0, -0.75, 0.06, -0.08, false),
    ],
    width: 2.4,
    core: [-0.6, -0.8, -0.3, -0.62],
    tones: { glow: [240, 190, 60] },
  };
};

const swan: Builder = () => ({
  parts: [
    ellipse('foam', 0, 0, 0.8, 0.05, false),
    poly('body', [-0.62, -0.5, -0.42, -0.32, -0.1, -0.4, 0.2, -0.32, 0.42, -0.16, 0.45, 0, -0.5, 0, -0.6, -0.2]),
    line('body', 0.3, -0.24, 0.42, -0.55, 0.08, 0.045), line('body', 0.42, -0.55, 0.36, -0.82, 0.045, 0.04), line('body', 0.36, -0.82, 0.42, -0.9, 0.04, 0.05),
    poly('glow', [0.44, -0.94, 0.6, -0.86, 0.45, -0.86], false),
    disc('dark', 0.42, -0.91, 0.015, false),
  ],
  width: 1.4,
  core: [-0.3, -0.3, 0.15, -0.08],
  tones: { glow: [230, 120, 40] },
});

/** A fish leaping out of the water. */
const fish: Builder = () => ({
  parts: [
    ellipse('foam', 0, 0, 0.6, 0.05, false),
    poly('body', [-0.38, -0.5, -0.72, -0.8, -0.62, -0.5, -0.72, -0.22]),
    tri('body', -0.05, -0.68, 0.3, 0.18),
    ellipse('body', 0, -0.5, 0.46, 0.2),
    poly('body', [0.0, -0.36, 0.12, -0.22, 0.14, -0.36]),
    disc('trim', 0.3, -0.54, 0.045, false), disc('dark', 0.31, -0.54, 0.022, false),
  ],
  width: 1.3,
  core: [-0.25, -0.58, 0.15, -0.42],
});

const butterfly: Builder = () => ({
  parts: [
    ellipse('body', -0.3, -0.68, 0.3, 0.26), ellipse('body', 0.3, -0.68, 0.3, 0.26),
    ellipse('body', -0.2, -0.3, 0.2, 0.2), ellipse('body', 0.2, -0.3, 0.2, 0.2),
    disc('trim', -0.36, -0.72, 0.07, false), disc('trim', 0.36, -0.72, 0.07, false),
    line('dark', 0, -0.12, 0, -0.78, 0.035, 0.03),
    line('dark', 0, -0.78, -0.12, -1, 0.008), line('dark', 0, -0.78, 0.12, -1, 0.008),
  ],
  width: 1.3,
  core: [-0.45, -0.62, -0.12, -0.52],
});

const owl: Builder = () => ({
  parts: [
    rect('trunk', 0, 0, 0.7, 0.16),
    ellipse('body', 0, -0.52, 0.28, 0.38),
    poly('body', [-0.26, -0.7, -0.3, -0.98, -0.1, -0.82, 0.1, -0.82, 0.3, -0.98, 0.26, -0.7]),
    disc('trim', -0.11, -0.7, 0.085, false), disc('trim', 0.11, -0.7, 0.085, false),
    disc('dark', -0.11, -0.7, 0.04, false), disc('dark', 0.11, -0.7, 0.04, false),
    tri('glow', 0, -0.56, 0.06, 0.1, false),
  ],
  width: 0.7,
  core: [-0.18, -0.5, 0.18, -0.22],
  tones: { trim: [244, 220, 140], glow: [220, 160, 60], trunk: [92, 66, 48] },
});

const penguin: Builder = () => ({
  parts: [
    ellipse('body', 0, -0.45, 0.25, 0.42),
    ellipse('trim', 0.06, -0.4, 0.15, 0.32, false),
    disc('body', 0.02, -0.84, 0.14),
    poly('glow', [0.12, -0.86, 0.28, -0.82, 0.12, -0.79], false),
    line('body', -0.2, -0.6, -0.32, -0.3, 0.05, 0.02),
    ellipse('glow', -0.06, -0.02, 0.1, 0.03, false), ellipse('glow', 0.12, -0.02, 0.1, 0.03, false),
    disc('trim', 0.08, -0.87, 0.025, false),
  ],
  width: 0.6,
  core: [-0.22, -0.62, -0.12, -0.3],
  tones: { trim: [240, 240, 236], glow: [240, 160, 40] },
});

const sunflower: Builder = () => {
  const parts: Part[] = [
    line('trunk', 0, 0, 0.02, -0.74, 0.03, 0.025),
    poly('trunk', [0.0, -0.32, 0.2, -0.46, 0.3, -0.38, 0.02, -0.28]), poly('trunk', [0.0, -0.5, -0.18, -0.62, -0.28, -0.54, -0.01, -0.46]),
  ];
  for (let k = 0; k < 14; k++) {
    const a = (k / 14) * Math.PI * 2;
    parts.push(poly('body', [0.02 + Math.cos(a + 0.2) * 0.1, -0.78 + Math.sin(a + 0.2) * 0.1, 0.02 + Math.cos(a) * 0.25, -0.78 + Math.sin(a) * 0.25, 0.02 + Math.cos(a - 0.2) * 0.1, -0.78 + Math.sin(a - 0.2) * 0.1]));
  }
  parts.push(disc('body', 0.02, -0.78, 0.17), disc('dark', 0.02, -0.78, 0.1, false));
  return { parts, width: 0.55, core: [0.13, -0.82, 0.18, -0.74], tones: { trunk: [70, 124, 52], dark: [86, 52, 30] } };
};

const mushroom: Builder = () => ({
  parts: [
    taper('trim', 0, 0, 0.5, 0.22, 0.16),
    poly('body', [-0.48, -0.46, 0.48, -0.46, 0.4, -0.52, 0, -0.56, -0.4, -0.52]),
    dome('body', 0, -0.5, 0.96, 0.48),
    disc('trim', -0.2, -0.72, 0.06, false), disc('trim', 0.16, -0.82, 0.05, false), disc('trim', 0.3, -0.6, 0.045, false), disc('trim', -0.34, -0.56, 0.04, false), disc('trim', 0.0, -0.62, 0.04, false),
  ],
  width: 1,
  core: [-0.12, -0.9, 0.1, -0.66],
  tones: { trim: [244, 238, 224] },
});

/** A field of flowers: a green bank under rows of blossoms. */
const flowers: Builder = (r) => {
  const parts: Part[] = [poly('trunk', [-1.6, 0, -1.4, -0.5, 0, -0.62, 1.4, -0.5, 1.6, 0])];
  for (let row = 0; row < 4; row++) {
    const y = -0.58 + row * 0.16;
    const n = 9 + row * 2;
    const span = 1.35 + row * 0.06;
    for (let i = 0; i < n; i++) {
      const x = -span + (2 * span * (i + 0.5)) / n + r.range(-0.04, 0.04);
      const rad = 0.07 + row * 0.012;
      parts.push(line('trunk', x, y, x, y + 0.14, 0.01), disc('body', x, y + r.range(-0.03, 0.03), rad, false));
    }
  }
  return { parts, width: 3.2, core: [-0.2, -0.5, 0.2, -0.42], tones: { trunk: [74, 126, 58] } };
};

const willow: Builder = (r) => {
  const parts: Part[] = [taper('trunk', 0, 0, 0.65, 0.14, 0.08), dome('body', 0, -0.62, 1.0, 0.36)];
  // Hanging strands: long, thin, a little apart, lengths varying, the outer ones swept out.
  for (let i = 0; i < 17; i++) {
    const x = -0.48 + i * (0.96 / 16);
    const top = -0.62 - Math.sqrt(Math.max(0, 1 - (x / 0.5) ** 2)) * 0.3;
    const bottom = -0.1 - Math.abs(x) * 0.2 - (i % 2) * 0.14 + r.range(-0.04, 0.04);
    const mid = (top + bottom) / 2;
    parts.push(line('body', x, top, x * 1.12, mid, 0.024, 0.018), line('body', x * 1.12, mid, x * 1.2, bottom, 0.018, 0.008));
  }
  return { parts, width: 1.15, core: [-0.2, -0.9, 0.2, -0.66], tones: { trunk: [84, 64, 48] } };
};

const birch: Builder = (r) => {
  const parts: Part[] = [taper('trim', 0, 0, 0.8, 0.07, 0.04)];
  for (let k = 0; k < 6; k++) parts.push(rect('dark', r.range(-0.01, 0.01), -0.06 - k * 0.1, 0.05, 0.012, false));
  parts.push(ellipse('body', 0, -0.66, 0.2, 0.32), disc('body', -0.1, -0.5, 0.12), disc('body', 0.1, -0.56, 0.12));
  return { parts, width: 0.45, core: [-0.1, -0.86, 0.1, -0.6], tones: { trim: [236, 234, 226], dark: [40, 38, 36] } };
};

const bush: Builder = (r) => {
  const parts: Part[] = [];
  for (const [x, y, rad] of [[-0.5, -0.3, 0.3], [0.5, -0.3, 0.3], [-0.2, -0.55, 0.38], [0.25, -0.55, 0.4], [0, -0.35, 0.35]] as const) parts.push(disc('body', x + r.range(-0.03, 0.03), y, rad));
  parts.push(rect('body', 0, 0, 1.4, 0.3));
  return { parts, width: 1.6, core: [-0.3, -0.6, 0.3, -0.2] };
};

/** A barn: gambrel roof, big doors with crossed braces. */
const barn: Builder = () => ({
  parts: [
    rect('body', 0, 0, 1.2, 0.5),
    poly('body', [-0.6, -0.5, 0.6, -0.5, 0.5, -0.8, 0, -0.96, -0.5, -0.8]),
    poly('roof', [-0.68, -0.48, -0.56, -0.82, 0, -1, 0.56, -0.82, 0.68, -0.48, 0.6, -0.48, 0.5, -0.78, 0, -0.93, -0.5, -0.78, -0.6, -0.48]),
    rect('trim', 0, 0, 0.46, 0.38), rect('body', -0.115, -0.025, 0.18, 0.33, false), rect('body', 0.115, -0.025, 0.18, 0.33, false),
    line('trim', -0.2, -0.03, -0.03, -0.35, 0.014), line('trim', 0.03, -0.03, 0.2, -0.35, 0.014),
    rect('trim', 0, -0.6, 0.18, 0.16), rect('dark', 0, -0.62, 0.12, 0.12, false),
    // The silo beside it, banded, under a dome.
    rect('body', 0.86, 0, 0.26, 0.86), dome('roof', 0.86, -0.86, 0.28, 0.12),
    ...[-0.2, -0.42, -0.64].map((y) => rect('trim', 0.86, y, 0.26, 0.02, false)),
  ],
  width: 1.8,
  core: [-0.52, -0.46, -0.3, -0.06],
  tones: { trim: [240, 236, 226], roof: [70, 66, 70], dark: [40, 30, 30] },
});

const ferrisWheel: Builder = (r) => {
  const cy = -0.55;
  const R = 0.43;
  const a0 = r.range(0, Math.PI / 8);
  const parts: Part[] = [line('dark', 0, cy, -0.26, 0, 0.02), line('dark', 0, cy, 0.26, 0, 0.02), ring('body', 0, cy, R, R - 0.04), ring('body', 0, cy, R * 0.6, R * 0.6 - 0.02)];
  for (let k = 0; k < 8; k++) {
    const a = a0 + (k / 8) * Math.PI;
    parts.push(line('body', Math.cos(a) * -R, cy + Math.sin(a) * -R, Math.cos(a) * R, cy + Math.sin(a) * R, 0.01));
  }
  for (let k = 0; k < 12; k++) {
    const a = a0 + (k / 12) * Math.PI * 2;
    const x = Math.cos(a) * R;
    const y = cy + Math.sin(a) * R;
    parts.push(rect('roof', x, y + 0.07, 0.08, 0.07, false));
  }
  parts.push(disc('body', 0, cy, 0.06), rect('dark', 0, 0, 0.7, 0.04, false));
  return { parts, width: 1.1, core: [-0.035, cy - 0.035, 0.035, cy + 0.035], tones: { dark: [60, 60, 66] } };
};

const bus: Builder = () => {
  const parts: Part[] = [poly('body', [-1.3, -0.14, 1.3, -0.14, 1.32, -0.85, 1.2, -0.95, -1.24, -0.95, -1.3, -0.88])];
  for (let k = 0; k < 6; k++) parts.push(rect('glow', -1.08 + k * 0.36, -0.55, 0.28, 0.28, false));
  parts.push(rect('glow', 1.14, -0.3, 0.2, 0.53, false), rect('trim', 0, -0.36, 2.56, 0.05, false));
  parts.push(disc('dark', -0.8, -0.14, 0.16, false), disc('dark', 0.8, -0.14, 0.16, false), disc('trim', -0.8, -0.14, 0.06, false), disc('trim', 0.8, -0.14, 0.06, false));
  return { parts, width: 2.7, core: [-1.2, -0.34, 1.0, -0.18], tones: { glow: [170, 200, 215], dark: [30, 30, 34], trim: [230, 230, 226] } };
};

const bicycle: Builder = () => ({
  parts: [
    ring('dark', -0.5, -0.3, 0.3, 0.26), ring('dark', 0.5, -0.3, 0.3, 0.26),
    line('body', -0.5, -0.3, -0.05, -0.3, 0.03), line('body', -0.05, -0.3, -0.16, -0.64, 0.03), line('body', -0.5, -0.3, -0.16, -0.64, 0.03),
    line('body', -0.16, -0.64, 0.38, -0.64, 0.03), line('body', -0.05, -0.3, 0.38, -0.64, 0.03), line('body', 0.5, -0.3, 0.36, -0.8, 0.03),
    line('dark', 0.3, -0.82, 0.46, -0.84, 0.02), rect('dark', -0.18, -0.66, 0.16, 0.04, false),
  ],
  width: 1.6,
  core: [-0.3, -0.62, 0.2, -0.3],
  tones: { dark: [34, 32, 36] },
});

const airplane: Builder = () => ({
  parts: [
    poly('body', [-1.1, -0.5, -1.2, -1.0, -1.0, -1.0, -0.8, -0.55]),
    ellipse('body', 0, -0.48, 1.2, 0.16),
    poly('roof', [-0.1, -0.46, 0.35, -0.46, -0.15, -0.05, -0.35, -0.05]),
    poly('roof', [-0.95, -0.52, -0.75, -0.52, -0.98, -0.3, -1.1, -0.3]),
    ...[-0.5, -0.3, -0.1, 0.1, 0.3, 0.5, 0.7].map((x) => disc('glow', x, -0.52, 0.025, false)),
    poly('glow', [0.95, -0.55, 1.12, -0.52, 1.1, -0.46, 0.95, -0.47], false),
  ],
  width: 2.5,
  core: [-0.7, -0.6, 0.7, -0.38],
  tones: { roof: [150, 154, 164], glow: [40, 50, 66] },
});

const helicopter: Builder = () => ({
  parts: [
    line('dark', -0.9, -0.82, 0.9, -0.82, 0.02),
    rect('dark', 0, -0.7, 0.06, 0.12, false),
    line('body', -0.2, -0.5, -1.1, -0.6, 0.08, 0.035),
    poly('body', [-1.15, -0.6, -1.2, -0.82, -1.05, -0.6]),
    ellipse('body', 0, -0.46, 0.42, 0.26),
    poly('glow', [0.12, -0.68, 0.36, -0.55, 0.42, -0.44, 0.12, -0.44], false),
    line('dark', -0.1, -0.2, -0.12, -0.06, 0.015), line('dark', 0.2, -0.2, 0.22, -0.06, 0.015), line('dark', -0.4, -0.04, 0.48, -0.04, 0.02),
  ],
  width: 2.1,
  core: [-0.3, -0.46, 0.05, -0.28],
  tones: { glow: [170, 200, 215], dark: [40, 40, 46] },
});

const kite: Builder = (r) => {
  const parts: Part[] = [poly('body', [0, -1, 0.3, -0.7, 0, -0.2, -0.3, -0.7]), line('trim', 0, -1, 0, -0.2, 0.01), line('trim', -0.3, -0.7, 0.3, -0.7, 0.01)];
  let x = 0;
  let y = -0.2;
  for (let k = 0; k < 4; k++) {
    const nx = x + r.range(-0.12, 0.12) + 0.05;
    const ny = y + 0.05 + k * 0.004 + 0.0;
    parts.push(line('dark', x, y, nx, ny + 0.0, 0.006), poly('body', [nx - 0.06, ny - 0.04, nx + 0.06, ny + 0.04, nx + 0.06, ny - 0.04, nx - 0.06, ny + 0.04], false));
    x = nx;
    y = ny + 0.0;
  }
  return { parts, width: 0.7, core: [-0.1, -0.78, 0.1, -0.55], tones: { trim: [60, 40, 30], dark: [60, 56, 56] } };
};

const satellite: Builder = () => {
  const parts: Part[] = [];
  for (const side of [-1, 1]) {
    parts.push(line('trim', side * 0.15, -0.5, side * 0.32, -0.5, 0.015));
    parts.push(rect('roof', side * 0.7, -0.3, 0.76, 0.4));
    for (let k = 1; k < 4; k++) parts.push(line('trim', side * (0.32 + k * 0.19), -0.3, side * (0.32 + k * 0.19), -0.7, 0.006));
    parts.push(line('trim', side * 0.32, -0.5, side * 1.08, -0.5, 0.006));
  }
  parts.push(rect('body', 0, -0.3, 0.3, 0.4), dome('trim', 0, -0.72, 0.26, -0.12), line('trim', 0, -0.78, 0, -0.96, 0.008), disc('glow', 0, -0.96, 0.025, false));
  return { parts, width: 2.2, core: [-0.12, -0.66, 0.12, -0.34], tones: { roof: [40, 60, 120], trim: [200, 200, 206] } };
};

const triumphalArch: Builder = () => ({
  parts: [
    arcadeWall('body', -0.6, 0.6, 0, -0.72, 1, -0.4),
    rect('body', 0, -0.72, 1.3, 0.06), rect('body', 0, -0.78, 1.1, 0.2), rect('body', 0, -0.98, 1.2, 0.03),
    ...[-0.5, -0.28, 0.28, 0.5].map((x) => rect('trim', x, -0.02, 0.05, 0.66, false)),
    rect('dark', 0, -0.82, 0.6, 0.08, false),
  ],
  width: 1.3,
  core: [-0.6, -0.9, -0.32, -0.62],
  tones: { trim: [236, 230, 214], dark: [70, 62, 56] },
});

const snowman: Builder = () => ({
  parts: [
    disc('body', 0, -0.22, 0.22), disc('body', 0, -0.56, 0.16), disc('body', 0, -0.8, 0.12),
    line('trunk', -0.12, -0.58, -0.4, -0.76, 0.014), line('trunk', 0.12, -0.58, 0.4, -0.74, 0.014),
    rect('dark', 0, -0.88, 0.26, 0.03, false), rect('dark', 0, -0.9, 0.16, 0.12, false),
    poly('glow', [0.02, -0.82, 0.2, -0.79, 0.02, -0.77], false),
    disc('dark', -0.04, -0.85, 0.015, false), disc('dark', 0.05, -0.85, 0.015, false),
    ...[-0.6, -0.52, -0.44].map((y) => disc('dark', 0, y, 0.015, false)),
  ],
  width: 0.8,
  core: [-0.14, -0.34, 0.14, -0.1],
  tones: { glow: [240, 130, 40], dark: [30, 30, 34], trunk: [92, 66, 48] },
});

/** A cherry tree: a low spreading crown with pale blossom flecks. */
const cherryTree: Builder = (r) => {
  const parts: Part[] = [taper('trunk', 0, 0, 0.4, 0.1, 0.06), line('trunk', 0, -0.36, -0.3, -0.6, 0.03, 0.015), line('trunk', 0, -0.36, 0.32, -0.58, 0.03, 0.015)];
  for (const [x, y, rx, ry] of [[0, -0.66, 0.6, 0.22], [-0.35, -0.58, 0.3, 0.16], [0.36, -0.58, 0.3, 0.16], [0, -0.82, 0.36, 0.16]] as const) parts.push(ellipse('body', x, y, rx, ry));
  for (let k = 0; k < 14; k++) parts.push(disc('trim', r.range(-0.55, 0.55), r.range(-0.85, -0.5), 0.025, false));
  return { parts, width: 1.3, core: [-0.25, -0.74, 0.25, -0.6], tones: { trunk: [70, 50, 46], trim: [252, 236, 240] } };
};

export const MORE_SILHOUETTES: Readonly<Record<string, Builder>> = {
  cat, dog, wolf, rabbit, bear, elephant, eagle, swan, fish, butterfly, owl, penguin, sunflower, mushroom, flowers, willow, birch, bush, barn,
  ferris: ferrisWheel, bus, bicycle, airplane, helicopter, kite, satellite, arch: triumphalArch, snowman, cherry: cherryTree,
};
