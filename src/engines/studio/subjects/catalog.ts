/**
 * The subjects' silhouettes, built from the shape vocabulary (`shapes.ts`) with a few seeded
 * proportions, in the unit frame: 1 high, base centre at (0, 0). `width` is the silhouette's
 * width in the same units (for spacing and relations), `core` a box the subject's own colour
 * fills (x0, y0, x1, y1), used by tests and by the composition to see where the subject reads.
 */
import type { Random } from '../random.ts';
import { MORE_SILHOUETTES } from './catalog-more.ts';
import { arcadeWall, crenels, disc, dome, ellipse, line, poly, rect, taper, tri, type Part, type Tone } from './shapes.ts';

export interface Silhouette {
  readonly parts: readonly Part[];
  readonly width: number;
  readonly core: readonly [number, number, number, number];
  /** Fixed tone colours of this subject (hex-free RGB), for tones other than `body`. */
  readonly tones?: Partial<Record<Tone, readonly [number, number, number]>>;
}

type Builder = (random: Random) => Silhouette;

const lighthouse: Builder = (r) => {
  const w0 = r.range(0.2, 0.24);
  const w1 = w0 * 0.62;
  const parts: Part[] = [
    rect('trim', 0, 0, w0 * 1.5, 0.05),
    taper('body', 0, -0.05, 0.67, w0, w1),
    taper('trim', 0, -0.3, 0.05, w0 * 0.86, w0 * 0.83),
    taper('trim', 0, -0.52, 0.05, w0 * 0.76, w0 * 0.73),
    rect('dark', 0, -0.05, w0 * 0.28, 0.08, false),
    rect('dark', 0, -0.42, w0 * 0.18, 0.05, false),
    rect('roof', 0, -0.72, w1 * 1.7, 0.035),
    rect('glow', 0, -0.755, w1 * 0.9, 0.09, false),
    line('roof', -w1 * 0.45, -0.755, -w1 * 0.45, -0.845, 0.006),
    line('roof', w1 * 0.45, -0.755, w1 * 0.45, -0.845, 0.006),
    dome('roof', 0, -0.845, w1 * 1.15, 0.09),
    line('roof', 0, -0.93, 0, -0.99, 0.006),
  ];
  return { parts, width: w1 * 1.7 + 0.2, core: [-w1 * 0.35, -0.29, w1 * 0.35, -0.14], tones: { trim: [236, 232, 222], roof: [40, 40, 46], glow: [255, 226, 150] } };
};

const castle: Builder = (r) => {
  const tw = r.range(0.2, 0.26);
  const parts: Part[] = [
    rect('body', 0, 0, 1.25, 0.45),
    ...crenels('body', -0.62, 0.62, -0.45, 0.05),
    rect('body', 0, -0.4, 0.42, 0.33),
    ...crenels('body', -0.21, 0.21, -0.73, 0.05),
  ];
  for (const x of [-0.62, 0.62]) {
    parts.push(rect('body', x, 0, tw, 0.75), tri('roof', x, -0.75, tw * 1.25, 0.25));
    parts.push(rect('dark', x, -0.5, tw * 0.22, 0.08, false));
  }
  parts.push(poly('dark', [-0.11, 0, 0.11, 0, 0.11, -0.16, 0, -0.22, -0.11, -0.16], false));
  for (const x of [-0.3, 0.3]) parts.push(rect('dark', x, -0.28, 0.05, 0.08, false));
  parts.push(line('trunk', 0, -0.78, 0, -0.98, 0.006), poly('roof', [0, -0.98, 0.12, -0.95, 0, -0.91], false));
  return { parts, width: 1.25 + tw, core: [-0.55, -0.4, 0.55, -0.05], tones: { roof: [70, 60, 78], dark: [30, 26, 30] } };
};

const tower: Builder = (r) => {
  const w = r.range(0.2, 0.26);
  const parts: Part[] = [taper('body', 0, 0, 0.78, w * 1.15, w), ...crenels('body', -w * 0.6, w * 0.6, -0.78, 0.04), tri('roof', 0, -0.78, w * 1.3, 0.22)];
  for (const y of [-0.25, -0.45, -0.62]) parts.push(rect('dark', 0, y, w * 0.16, 0.05, false));
  parts.push(poly('dark', [-w * 0.16, 0, w * 0.16, 0, w * 0.16, -0.08, 0, -0.11, -w * 0.16, -0.08], false));
  return { parts, width: w * 1.4, core: [-w * 0.4, -0.7, w * 0.4, -0.12], tones: { roof: [64, 56, 66] } };
};

const bridge: Builder = (r) => {
  const n = r.int(3, 5);
  const half = 2.4;
  const parts: Part[] = [arcadeWall('body', -half, half, 0, -0.95, n, -0.55), rect('body', 0, -0.95, half * 2.04, 0.06), ...crenels('body', -half, half, -1.01, 0.04)];
  return { parts, width: half * 2, core: [-half * 0.9, -0.98, half * 0.9, -0.9] };
};

const windmill: Builder = (r) => {
  const a = r.range(0, Math.PI / 2);
  const parts: Part[] = [taper('body', 0, 0, 0.58, 0.34, 0.2), dome('roof', 0, -0.58, 0.24, 0.12), rect('dark', 0, 0, 0.07, 0.12, false), rect('dark', 0, -0.32, 0.05, 0.06, false)];
  const hx = 0;
  const hy = -0.6;
  for (let k = 0; k < 4; k++) {
    const t = a + (k * Math.PI) / 2;
    const c = Math.cos(t);
    const s = Math.sin(t);
    const len = 0.42;
    const px = -s * 0.055;
    const py = c * 0.055;
    parts.push(line('roof', hx, hy, hx + c * len, hy + s * len, 0.008));
    parts.push(poly('body', [hx + c * 0.08, hy + s * 0.08, hx + c * len, hy + s * len, hx + c * len + px * 1.6, hy + s * len + py * 1.6, hx + c * 0.08 + px * 1.6, hy + s * 0.08 + py * 1.6], false));
  }
  parts.push(disc('roof', hx, hy, 0.025, false));
  return { parts, width: 0.84, core: [-0.1, -0.45, 0.1, -0.12], tones: { roof: [60, 48, 42], trim: [226, 220, 206] } };
};

const cottage: Builder = (r) => {
  const w = r.range(0.85, 1.05);
  const parts: Part[] = [
    rect('trunk', w * 0.28, -0.5, 0.08, 0.3),
    rect('body', 0, 0, w, 0.5),
    poly('roof', [-w * 0.58, -0.5, w * 0.58, -0.5, w * 0.3, -0.92, -w * 0.3, -0.92]),
    rect('dark', -w * 0.2, 0, 0.12, 0.26, false),
    rect('glow', w * 0.2, -0.2, 0.14, 0.12, false),
  ];
  return { parts, width: w * 1.16, core: [-w * 0.42, -0.46, w * 0.42, -0.04], tones: { roof: [92, 56, 44], trunk: [110, 80, 70], glow: [250, 214, 140], dark: [50, 36, 32] } };
};

const temple: Builder = (r) => {
  const n = r.int(5, 7);
  const w = 1.6;
  const parts: Part[] = [rect('body', 0, 0, w * 1.08, 0.06), rect('body', 0, -0.06, w, 0.06)];
  for (let i = 0; i < n; i++) {
    const x = -w * 0.44 + (w * 0.88 * i) / (n - 1);
    parts.push(taper('body', x, -0.12, 0.5, 0.1, 0.085));
  }
  parts.push(rect('body', 0, -0.62, w, 0.1), tri('body', 0, -0.72, w * 1.02, 0.24));
  parts.push(rect('dark', 0, -0.14, w * 0.8, 0.44, false));
  // The columns again in front of the dark cella.
  for (let i = 0; i < n; i++) {
    const x = -w * 0.44 + (w * 0.88 * i) / (n - 1);
    parts.push(taper('body', x, -0.12, 0.5, 0.1, 0.085));
  }
  return { parts, width: w * 1.08, core: [-w * 0.45, -0.82, w * 0.45, -0.64], tones: { dark: [60, 54, 52] } };
};

const pagoda: Builder = (r) => {
  const tiers = r.int(4, 6);
  const parts: Part[] = [rect('body', 0, 0, 0.42, 0.06)];
  let y = -0.06;
  const step = 0.82 / tiers;
  for (let i = 0; i < tiers; i++) {
    const w = 0.36 * (1 - i * 0.11);
    parts.push(rect('body', 0, y, w, step * 0.62));
    parts.push(rect('dark', 0, y, w * 0.22, step * 0.45, false));
    const ry = y - step * 0.62;
    const rw = w * 1.7;
    parts.push(poly('roof', [-rw / 2, ry + 0.012, -rw / 2 + 0.03, ry - step * 0.12, -w * 0.3, ry - step * 0.38, w * 0.3, ry - step * 0.38, rw / 2 - 0.03, ry - step * 0.12, rw / 2, ry + 0.012]));
    y = ry - step * 0.38;
  }
  parts.push(line('roof', 0, y, 0, -1, 0.012, 0.004));
  for (let k = 1; k <= 3; k++) parts.push(disc('roof', 0, y - ((-1 - y) * -k) / 4, 0.018, false));
  return { parts, width: 0.62, core: [0.06, -0.06 - step * 0.55, 0.15, -0.08], tones: { roof: [44, 40, 48], dark: [60, 30, 24] } };
};

const skyscraper: Builder = (r) => {
  const w = r.range(0.26, 0.32);
  const parts: Part[] = [rect('body', 0, 0, w, 0.7), rect('body', 0, -0.7, w * 0.75, 0.14), rect('body', 0, -0.84, w * 0.45, 0.08), line('roof', 0, -0.92, 0, -1, 0.006)];
  for (let k = 1; k < 4; k++) parts.push(rect('dark', -w / 2 + (w * k) / 4, -0.04, w * 0.025, 0.64, false));
  return { parts, width: w, core: [-w * 0.35, -0.6, w * 0.35, -0.1], tones: { dark: [40, 48, 60], roof: [60, 64, 70] } };
};

const domeBuilding: Builder = () => ({
  parts: [
    rect('body', 0, 0, 1.3, 0.3), rect('body', 0, -0.3, 0.62, 0.18), dome('roof', 0, -0.48, 0.62, 0.34), rect('roof', 0, -0.82, 0.06, 0.08), disc('roof', 0, -0.93, 0.03, false),
    ...[-0.48, -0.24, 0, 0.24, 0.48].map((x) => poly('dark', [x - 0.06, -0.02, x + 0.06, -0.02, x + 0.06, -0.18, x, -0.22, x - 0.06, -0.18], false)),
    rect('body', -0.75, 0, 0.1, 0.62), tri('roof', -0.75, -0.62, 0.12, 0.14), rect('body', 0.75, 0, 0.1, 0.62), tri('roof', 0.75, -0.62, 0.12, 0.14),
  ],
  width: 1.6,
  core: [-0.55, -0.29, 0.55, -0.22],
  tones: { roof: [86, 120, 130], dark: [46, 40, 40] },
});

const ship: Builder = (r) => {
  const L = 1.3;
  const parts: Part[] = [poly('body', [-L / 2, -0.3, L / 2 + 0.1, -0.32, L * 0.4, -0.04, -L * 0.42, -0.04, -L / 2 - 0.04, -0.36])];
  parts.push(rect('trim', 0, -0.31, L * 0.9, 0.02, false));
  for (const [x, h] of [[-0.35, 0.88], [0.02, 1], [0.38, 0.8]] as const) {
    parts.push(line('dark', x, -0.3, x, -h, 0.008));
    for (let k = 0; k < 3; k++) {
      const yt = -h + 0.06 + k * (h - 0.38) / 3;
      const sw = 0.14 + k * 0.03;
      parts.push(poly('trim', [x - sw, yt, x + sw, yt, x + sw * 1.05, yt + (h - 0.38) / 3 - 0.02, x - sw * 1.05, yt + (h - 0.38) / 3 - 0.02], true));
    }
  }
  parts.push(line('dark', L / 2 + 0.08, -0.3, L / 2 + 0.32, -0.5, 0.006));
  void r;
  return { parts, width: L + 0.3, core: [-L * 0.35, -0.28, L * 0.3, -0.1], tones: { trim: [236, 228, 210], dark: [40, 30, 24] } };
};

const sailboat: Builder = (r) => {
  const dir = r.chance(0.5) ? 1 : -1;
  const parts: Part[] = [
    poly('trunk', [-0.38, -0.1, 0.42, -0.1, 0.3, 0.02, -0.3, 0.02]),
    line('dark', 0, -0.1, 0, -1, 0.008),
    poly('body', [dir * 0.02, -0.97, dir * 0.02, -0.14, dir * 0.44, -0.14]),
    poly('body', [-dir * 0.02, -0.86, -dir * 0.02, -0.16, -dir * 0.28, -0.16]),
  ];
  return { parts, width: 0.85, core: dir > 0 ? [0.04, -0.42, 0.2, -0.18] : [-0.2, -0.42, -0.04, -0.18], tones: { trunk: [60, 44, 38], dark: [40, 34, 30] } };
};

const balloon: Builder = (r) => {
  const pts: number[] = [];
  for (let i = 0; i <= 28; i++) {
    const a = -Math.PI / 2 + (i / 28) * Math.PI * 2;
    const x = Math.cos(a);
    const y = Math.sin(a);
    // A round top narrowing to a neck at the bottom.
    const squeeze = y > 0 ? 1 - 0.55 * y * y : 1;
    pts.push(x * 0.36 * squeeze, -0.62 + y * 0.36 + (y > 0 ? y * 0.12 : 0));
  }
  const parts: Part[] = [poly('body', pts)];
  for (const k of [-0.5, 0, 0.5]) parts.push(poly('trim', [k * 0.36 - 0.04, -0.95, k * 0.36 + 0.04, -0.95, k * 0.24 + 0.025, -0.2, k * 0.24 - 0.025, -0.2], false));
  parts.push(line('dark', -0.07, -0.15, -0.05, -0.06, 0.004), line('dark', 0.07, -0.15, 0.05, -0.06, 0.004), rect('trunk', 0, 0, 0.12, 0.07));
  void r;
  return { parts, width: 0.74, core: [-0.2, -0.85, -0.1, -0.4], tones: { trim: [246, 214, 120], trunk: [110, 74, 44], dark: [60, 50, 40] } };
};

const airship: Builder = () => ({
  parts: [ellipse('body', 0, -0.5, 1, 0.32), poly('roof', [-0.9, -0.5, -1.2, -0.85, -1.16, -0.5, -1.2, -0.2]), rect('roof', 0.05, -0.1, 0.34, 0.1)],
  width: 2.4,
  core: [-0.6, -0.65, 0.6, -0.4],
  tones: { roof: [70, 70, 80] },
});

const oak: Builder = (r) => {
  const parts: Part[] = [taper('trunk', 0, 0, 0.5, 0.12, 0.07), line('trunk', 0, -0.4, -0.16, -0.58, 0.025, 0.012), line('trunk', 0, -0.42, 0.18, -0.6, 0.025, 0.012)];
  const blobs: [number, number, number][] = [[0, -0.68, 0.28], [-0.26, -0.6, 0.2], [0.26, -0.6, 0.21], [-0.14, -0.82, 0.19], [0.15, -0.82, 0.2], [0, -0.52, 0.2]];
  for (const [x, y, rad] of blobs) parts.push(disc('body', x + r.range(-0.03, 0.03), y + r.range(-0.02, 0.02), rad));
  return { parts, width: 1, core: [-0.18, -0.82, 0.18, -0.56], tones: { trunk: [80, 58, 42] } };
};

const pine: Builder = () => {
  const parts: Part[] = [rect('trunk', 0, 0, 0.06, 0.14)];
  for (let k = 0; k < 4; k++) parts.push(tri('body', 0, -0.1 - k * 0.2, 0.5 - k * 0.09, 0.38 - k * 0.02));
  return { parts, width: 0.5, core: [-0.07, -0.6, 0.07, -0.2], tones: { trunk: [80, 58, 42] } };
};

const palm: Builder = (r) => {
  const lean = r.range(0.12, 0.25) * (r.chance(0.5) ? 1 : -1);
  const parts: Part[] = [];
  for (let k = 0; k < 6; k++) parts.push(line('trunk', lean * (k / 6) ** 2, -0.8 * (k / 6), lean * ((k + 1) / 6) ** 2, -0.8 * ((k + 1) / 6), 0.035 - k * 0.003, 0.032 - k * 0.003));
  const tx = lean;
  const ty = -0.8;
  for (let f = 0; f < 9; f++) {
    // Fronds fan out from the crown and droop toward their tips, the level ones most.
    const a = (f / 8) * Math.PI;
    const up = Math.sin(a);
    const len = 0.34 + 0.06 * (1 - up);
    const ex = tx + Math.cos(a) * len;
    const ey = ty + 0.16 * (1 - up) - 0.12 * up;
    const mx = tx + Math.cos(a) * len * 0.5;
    const my = ty - 0.07 - 0.06 * up;
    parts.push(poly('body', [tx, ty, mx, my - 0.035, ex, ey, mx, my + 0.03], true));
  }
  return { parts, width: 0.8, core: [tx - 0.04, ty - 0.1, tx + 0.04, ty - 0.04], tones: { trunk: [120, 92, 64] } };
};

const mountain: Builder = (r) => {
  const pts = [-1.1, 0];
  const n = 9;
  for (let i = 1; i < n; i++) {
    const t = i / n;
    const peak = 1 - Math.abs(t - 0.5) * 2;
    pts.push(-1.1 + 2.2 * t, -peak * (0.85 + r.range(-0.08, 0.08)) - (i === n / 2 ? 0 : 0));
  }
  pts.push(0, -1, 1.1, 0);
  // Sort the ridge points by x so the polygon stays simple.
  const ridge: [number, number][] = [];
  for (let i = 0; i < pts.length; i += 2) ridge.push([pts[i]!, pts[i + 1]!]);
  ridge.sort((a, b) => a[0] - b[0]);
  const parts: Part[] = [poly('body', ridge.flat())];
  parts.push(poly('trim', [-0.085, -0.835, 0, -1, 0.085, -0.835, 0.04, -0.855, 0, -0.825, -0.045, -0.86], false));
  return { parts, width: 2.2, core: [-0.3, -0.6, 0.3, -0.15], tones: { trim: [238, 242, 248] } };
};

const volcano: Builder = (r) => {
  const parts: Part[] = [poly('body', [-1.2, 0, -0.5, -0.55, -0.18, -0.9, 0.18, -0.9, 0.5, -0.55, 1.2, 0]), poly('glow', [-0.14, -0.9, 0.14, -0.9, 0.06, -0.84, -0.05, -0.84], false)];
  for (let k = 0; k < 6; k++) parts.push(disc('trim', r.range(-0.05, 0.05) + k * 0.09, -1 - k * 0.1, 0.08 + k * 0.025, false));
  parts.push(line('glow', 0.05, -0.86, 0.2, -0.55, 0.012, 0.004));
  return { parts, width: 2.4, core: [-0.5, -0.45, 0.5, -0.15], tones: { glow: [255, 120, 40], trim: [96, 90, 92] } };
};

const island: Builder = (r) => {
  const parts: Part[] = [ellipse('sand', 0, 0, 1.05, 0.12, false), poly('body', [-0.9, 0, -0.6, -0.22, -0.2, -0.36, 0.25, -0.32, 0.6, -0.2, 0.9, 0])];
  const px = r.range(-0.3, 0.3);
  for (let k = 0; k < 4; k++) parts.push(line('trunk', px + 0.04 * k, -0.3 - k * 0.12, px + 0.04 * (k + 1), -0.3 - (k + 1) * 0.12, 0.022));
  const tx = px + 0.16;
  const ty = -0.78;
  for (let f = 0; f < 7; f++) {
    const a = (f / 7) * Math.PI * 2;
    parts.push(poly('body', [tx, ty, tx + Math.cos(a) * 0.12, ty - 0.05, tx + Math.cos(a) * 0.26, ty + 0.08 + Math.abs(Math.sin(a)) * -0.1, tx + Math.cos(a) * 0.12, ty + 0.02], true));
  }
  return { parts, width: 2, core: [-0.4, -0.26, 0.4, -0.06], tones: { sand: [226, 206, 160], trunk: [110, 84, 60] } };
};

const whale: Builder = (r) => {
  const dir = r.chance(0.5) ? 1 : -1;
  const s = (x: number): number => x * dir;
  return {
    parts: [
      poly('body', [s(-0.9), 0, s(-0.7), -0.25, s(-0.2), -0.42, s(0.3), -0.42, s(0.7), -0.28, s(0.9), -0.1, s(0.95), 0]),
      poly('trim', [s(0.3), -0.05, s(0.8), -0.06, s(0.9), -0.04, s(0.93), 0, s(0.2), 0], false),
      poly('body', [s(-0.85), -0.1, s(-1.15), -0.45, s(-1.05), -0.5, s(-0.92), -0.3, s(-0.8), -0.52, s(-0.7), -0.46]),
      disc('dark', s(0.62), -0.2, 0.025, false),
      ellipse('foam', 0, 0, 1.2, 0.05, false),
    ],
    width: 2.3,
    core: [-0.4, -0.36, 0.4, -0.1],
    tones: { trim: [210, 214, 220], foam: [236, 242, 246], dark: [20, 22, 26] },
  };
};

/** A four-legged animal: body, neck, head, legs; deer get antlers, horses a mane, foxes a tail. */
function quadruped(kind: 'deer' | 'horse' | 'fox'): Builder {
  return (r) => {
    const dir = r.chance(0.5) ? 1 : -1;
    const s = (x: number): number => x * dir;
    const legs = kind === 'fox' ? 0.32 : 0.5;
    const by = -legs - 0.14;
    const bl = kind === 'fox' ? 0.42 : 0.4;
    const parts: Part[] = [];
    for (const [x, k] of [[-bl * 0.8, 0.02], [-bl * 0.55, -0.02], [bl * 0.55, 0.03], [bl * 0.8, -0.03]] as const) parts.push(line('body', s(x), by + 0.05, s(x + k), 0, 0.035, 0.018));
    parts.push(ellipse('body', 0, by, bl, 0.17));
    const nx = s(bl * 0.85);
    const neckTop = kind === 'fox' ? by - 0.15 : by - 0.36;
    parts.push(line('body', nx, by - 0.02, s(bl * 1.05), neckTop, 0.07, 0.055));
    parts.push(poly('body', [s(bl * 0.95), neckTop - 0.05, s(bl * 1.45), neckTop + 0.04, s(bl * 1.45), neckTop + 0.1, s(bl * 1.0), neckTop + 0.08]));
    if (kind === 'deer') {
      for (const side of [-1, 1]) {
        const ax = s(bl * 1.05 + side * 0.03);
        parts.push(line('trunk', ax, neckTop - 0.04, ax + s(side * 0.06 - 0.06), neckTop - 0.32, 0.014, 0.008));
        parts.push(line('trunk', ax + s(side * 0.02 - 0.03), neckTop - 0.18, ax + s(side * 0.14), neckTop - 0.26, 0.01, 0.006));
      }
      parts.push(disc('trim', s(-bl * 0.95), by - 0.05, 0.05, false));
    } else if (kind === 'horse') {
      parts.push(line('trunk', s(bl * 0.8), by - 0.1, s(bl * 1.02), neckTop - 0.02, 0.03, 0.02));
      parts.push(line('trunk', s(-bl * 0.95), by - 0.05, s(-bl * 1.2), by + 0.3, 0.04, 0.015));
    } else {
      parts.push(line('body', s(-bl * 0.9), by, s(-bl * 1.6), by + 0.06, 0.07, 0.09), disc('trim', s(-bl * 1.62), by + 0.06, 0.06, false));
      parts.push(tri('body', s(bl * 1.08), neckTop - 0.03, 0.08, 0.1));
    }
    return { parts, width: bl * 3, core: [-bl * 0.6, by - 0.1, bl * 0.6, by + 0.1], tones: { trunk: kind === 'horse' ? [40, 30, 26] : [190, 170, 140], trim: [240, 236, 226] } };
  };
}

const figure: Builder = (r) => {
  const lean = r.range(-0.04, 0.04);
  return {
    parts: [
      line('dark', -0.06, -0.02, lean * 0.3, -0.42, 0.035, 0.05), line('dark', 0.06, -0.02, lean * 0.3, -0.42, 0.035, 0.05),
      poly('body', [lean - 0.08, -0.8, lean + 0.08, -0.8, 0.15, -0.28, -0.15, -0.28]),
      line('body', lean + 0.07, -0.78, lean + 0.16, -0.46, 0.03, 0.025),
      disc('trunk', lean * 1.1, -0.89, 0.085),
    ],
    width: 0.4,
    core: [-0.06, -0.7, 0.06, -0.36],
    tones: { dark: [40, 36, 40], trunk: [214, 170, 140] },
  };
};

const birds: Builder = () => ({ parts: [line('body', -1, 0.1, 0, 0, 0.05, 0.09), line('body', 0, 0, 1, 0.1, 0.09, 0.05)], width: 2.2, core: [-0.1, -0.05, 0.1, 0.05] });

const car: Builder = () => ({
  parts: [
    poly('body', [-1, -0.18, -0.95, -0.5, -0.55, -0.55, -0.35, -0.95, 0.35, -0.95, 0.6, -0.55, 0.98, -0.48, 1, -0.18]),
    poly('glow', [-0.28, -0.58, -0.12, -0.88, 0.3, -0.88, 0.48, -0.58], false),
    line('body', 0.1, -0.58, 0.1, -0.9, 0.03),
    disc('dark', -0.58, -0.18, 0.2, false), disc('dark', 0.58, -0.18, 0.2, false), disc('trim', -0.58, -0.18, 0.08, false), disc('trim', 0.58, -0.18, 0.08, false),
  ],
  width: 2.1,
  core: [-0.85, -0.5, -0.5, -0.25],
  tones: { glow: [170, 200, 215], dark: [30, 30, 34], trim: [190, 190, 196] },
});

const train: Builder = () => {
  const parts: Part[] = [rect('dark', 0, 0, 6.6, 0.05, false)];
  for (const x of [-2.1, -0.3]) {
    parts.push(rect('body', x, -0.1, 1.7, 0.6), rect('roof', x, -0.7, 1.6, 0.06));
    for (let k = 0; k < 4; k++) parts.push(rect('glow', x - 0.6 + k * 0.4, -0.42, 0.24, 0.18, false));
  }
  parts.push(poly('body', [0.6, -0.1, 2.6, -0.1, 3.2, -0.3, 2.9, -0.6, 2.2, -0.72, 0.6, -0.72]), poly('glow', [2.3, -0.62, 2.85, -0.56, 3.0, -0.4, 2.3, -0.4], false));
  for (const x of [-2.7, -1.5, -0.9, 0.3, 1.0, 2.2]) parts.push(disc('dark', x, -0.1, 0.1, false));
  return { parts, width: 6.6, core: [0.8, -0.6, 2.0, -0.2], tones: { glow: [250, 226, 160], dark: [30, 30, 36], roof: [60, 64, 72] } };
};

const comet: Builder = () => ({
  parts: [line('trim', 0, -0.5, 2.6, -1.6, 0.12, 0.02), line('body', 0, -0.5, 1.8, -1.2, 0.07, 0.01), disc('glow', 0, -0.5, 0.11, false)],
  width: 2.8,
  core: [-0.06, -0.56, 0.06, -0.44],
  tones: { glow: [255, 252, 236], trim: [200, 220, 240] },
});

const church: Builder = () => ({
  parts: [
    rect('body', 0.2, 0, 0.9, 0.42), poly('roof', [-0.28, -0.42, 0.68, -0.42, 0.56, -0.62, -0.16, -0.62]),
    rect('body', -0.3, 0, 0.26, 0.72), tri('roof', -0.3, -0.72, 0.3, 0.26), line('dark', -0.3, -0.98, -0.3, -1.06, 0.008), line('dark', -0.34, -1.02, -0.26, -1.02, 0.008),
    poly('dark', [-0.36, 0, -0.24, 0, -0.24, -0.14, -0.3, -0.19, -0.36, -0.14], false), rect('glow', 0.1, -0.18, 0.07, 0.13, false), rect('glow', 0.38, -0.18, 0.07, 0.13, false),
    poly('dark', [-0.35, -0.5, -0.25, -0.5, -0.25, -0.6, -0.3, -0.64, -0.35, -0.6], false),
  ],
  width: 1.1,
  core: [0.5, -0.38, 0.6, -0.05],
  tones: { roof: [70, 58, 60], glow: [250, 214, 140], dark: [40, 32, 34] },
});

const pyramid: Builder = () => ({
  parts: [poly('body', [-0.8, 0, 0.8, 0, 0, -1]), poly('trim', [-0.8, 0, -0.72, -0.1, 0, -1], false)],
  width: 1.6,
  core: [-0.25, -0.3, 0.25, -0.1],
  tones: { trim: [240, 226, 190] },
});

const igloo: Builder = () => ({
  parts: [dome('body', 0, 0, 1.4, 0.7), poly('dark', [0.22, 0, 0.5, 0, 0.5, -0.18, 0.36, -0.26, 0.22, -0.18], false), line('trim', -0.62, -0.25, 0.62, -0.25, 0.006), line('trim', -0.45, -0.5, 0.45, -0.5, 0.006)],
  width: 1.4,
  core: [-0.45, -0.45, -0.05, -0.1],
  tones: { trim: [170, 190, 205], dark: [40, 50, 70] },
});

const rocket: Builder = () => ({
  parts: [
    poly('body', [-0.09, -0.12, 0.09, -0.12, 0.09, -0.72, 0, -1, -0.09, -0.72]), poly('roof', [-0.09, -0.12, -0.2, 0, -0.09, -0.32]), poly('roof', [0.09, -0.12, 0.2, 0, 0.09, -0.32]),
    disc('glow', 0, -0.55, 0.04, false), poly('glow', [-0.06, -0.12, 0.06, -0.12, 0, 0.06], false),
  ],
  width: 0.4,
  core: [-0.06, -0.48, 0.06, -0.18],
  tones: { roof: [60, 64, 74], glow: [255, 196, 110] },
});

const tent: Builder = () => ({
  parts: [poly('body', [-0.7, 0, 0.7, 0, 0.08, -0.8, -0.08, -0.8]), poly('dark', [-0.14, 0, 0.14, 0, 0, -0.36], false), line('trunk', 0, -0.8, 0, -0.9, 0.012)],
  width: 1.4,
  core: [-0.45, -0.25, -0.2, -0.05],
  tones: { dark: [34, 30, 30] },
});

const cactus: Builder = () => ({
  parts: [
    line('body', 0, 0, 0, -0.88, 0.09, 0.085), line('body', -0.02, -0.35, -0.24, -0.38, 0.06), line('body', -0.24, -0.36, -0.24, -0.64, 0.06, 0.055),
    line('body', 0.02, -0.5, 0.22, -0.52, 0.055), line('body', 0.22, -0.5, 0.22, -0.72, 0.055, 0.05),
  ],
  width: 0.6,
  core: [-0.04, -0.75, 0.04, -0.1],
});

const waterfall: Builder = (r) => {
  const parts: Part[] = [poly('body', [-1, 0, -0.95, -0.8, -0.6, -0.95, -0.2, -1, 0.25, -0.98, 0.7, -0.9, 1, -0.7, 1.05, 0])];
  const x = r.range(-0.15, 0.15);
  parts.push(poly('foam', [x - 0.14, -0.99, x + 0.14, -0.99, x + 0.18, 0, x - 0.18, 0], false));
  for (const k of [-0.08, 0, 0.08]) parts.push(line('trim', x + k, -0.95, x + k * 1.2, -0.05, 0.008));
  parts.push(ellipse('foam', x, 0, 0.4, 0.08, false));
  return { parts, width: 2.1, core: [-0.8, -0.7, -0.4, -0.2], tones: { foam: [236, 244, 250], trim: [190, 214, 230] } };
};

export const SILHOUETTES: Readonly<Record<string, Builder>> = {
  lighthouse, castle, tower, bridge, windmill, cottage, temple, pagoda, skyscraper, dome: domeBuilding, ship, sailboat, balloon, airship,
  church, pyramid, igloo, rocket, tent, cactus, waterfall, oak, pine, palm, car, train, comet, crowd: figure, mountain, volcano, island, whale, deer: quadruped('deer'), horse: quadruped('horse'), fox: quadruped('fox'), figure, birds,
  ...MORE_SILHOUETTES,
};
