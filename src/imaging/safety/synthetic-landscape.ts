import type { RawImage } from '../../engines/spec/image-engine.ts';

/**
 * A deterministic, photo-like benign picture for tests and the bench: a sky gradient with a
 * sun, layered mountain ridges, a lake and a grassy foreground, with sensor-like noise.
 */
export function syntheticLandscape(width: number, height: number, seed = 1, channels: 3 | 4 = 3): RawImage {
  const random = mulberry32(seed);
  const data = new Uint8Array(width * height * channels);
  const ridge = (x: number, base: number, amplitude: number, phase: number): number =>
    height * (base - amplitude * (0.5 * Math.sin(x * 7 + phase) + 0.3 * Math.sin(x * 17 + phase * 2) + 0.2 * Math.sin(x * 41 + phase * 3)));
  const sun = { x: width * (0.2 + 0.6 * random()), y: height * 0.22, r: Math.min(width, height) * 0.06 };
  const phases = [random() * 6, random() * 6];
  const horizon = height * 0.62;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const u = x / width;
      const v = y / height;
      let r: number;
      let g: number;
      let b: number;
      if (y < ridge(u, 0.42, 0.08, phases[0]!)) {
        const glow = Math.max(0, 1 - Math.hypot(x - sun.x, y - sun.y) / (sun.r * 4));
        r = 90 + 120 * v + 150 * glow;
        g = 150 + 80 * v + 120 * glow;
        b = 235 - 30 * v + 40 * glow;
        if (Math.hypot(x - sun.x, y - sun.y) < sun.r) [r, g, b] = [255, 244, 214];
      } else if (y < ridge(u, 0.55, 0.05, phases[1]!)) {
        [r, g, b] = [95 + 40 * v, 110 + 30 * v, 135];
      } else if (y < horizon) {
        [r, g, b] = [55 + 30 * v, 85 + 40 * v, 60];
      } else if (y < height * 0.75) {
        const ripple = 12 * Math.sin(y * 0.9 + Math.sin(x * 0.05) * 3);
        [r, g, b] = [70 + ripple, 120 + ripple, 170 + ripple];
      } else {
        const blades = 25 * Math.sin(x * 0.7 + y * 0.2) * Math.sin(x * 0.13);
        [r, g, b] = [70 + 40 * v + blades, 125 + 30 * v + blades, 45 + blades / 2];
      }
      const noise = (random() - 0.5) * 18;
      const offset = (y * width + x) * channels;
      data[offset] = clamp(r + noise);
      data[offset + 1] = clamp(g + noise);
      data[offset + 2] = clamp(b + noise);
      if (channels === 4) data[offset + 3] = 255;
    }
  }
  return { data, width, height, channels };
}

function clamp(value: number): number {
  return value < 0 ? 0 : value > 255 ? 255 : Math.round(value);
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
