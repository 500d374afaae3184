/**
 * Subjects on rendered pixels: the prompt's subject is in the picture, in the colour the prompt
 * binds to it; different subjects have different silhouettes; counts give that many separate
 * shapes; "above" puts the first subject higher. Small images, rendered in this thread.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deltaE, hexToRgb, rgbToLab, type Lab } from './colour.ts';
import { lexicon } from './lexicon.ts';
import { readPrompt } from './prompt-reader.ts';
import { renderScene, stripBounds } from './renderer.ts';
import { planScene } from './scene-plan.ts';
import type { ScenePlan } from './scene-types.ts';
import { readSubjects } from './subjects/subject-reader.ts';

const W = 384;
const H = 256;

function render(prompt: string, seed = 1): { plan: ScenePlan; pixels: Uint8Array } {
  const plan = planScene({ prompt, width: W, height: H, seed, taskSeed: seed, references: [], elements: [] });
  return { plan, pixels: renderScene(plan) };
}

function named(name: string): Lab {
  return rgbToLab(hexToRgb(lexicon().colours[name]!));
}

/** Pixels within ΔE `tolerance` of `target`, as a 0/1 mask. */
function colourMask(pixels: Uint8Array, target: Lab, tolerance = 20): Uint8Array {
  const mask = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) mask[i] = deltaE(rgbToLab([pixels[i * 3]!, pixels[i * 3 + 1]!, pixels[i * 3 + 2]!]), target) <= tolerance ? 1 : 0;
  return mask;
}

/** Connected groups of mask pixels (8-connected after growing each pixel by `grow`), with at least `minArea` pixels. */
function blobs(mask: Uint8Array, grow = 2, minArea = 12): number[][] {
  const grown = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!mask[y * W + x]) continue;
      for (let dy = -grow; dy <= grow; dy++) for (let dx = -grow; dx <= grow; dx++) {
        const yy = y + dy;
        const xx = x + dx;
        if (yy >= 0 && yy < H && xx >= 0 && xx < W) grown[yy * W + xx] = 1;
      }
    }
  }
  const label = new Int32Array(W * H).fill(-1);
  const groups: number[][] = [];
  for (let start = 0; start < W * H; start++) {
    if (!grown[start] || label[start]! >= 0) continue;
    const members: number[] = [];
    const stack = [start];
    label[start] = groups.length;
    while (stack.length > 0) {
      const p = stack.pop()!;
      if (mask[p]) members.push(p);
      const x = p % W;
      const y = (p - x) / W;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx;
        const yy = y + dy;
        const q = yy * W + xx;
        if (xx >= 0 && xx < W && yy >= 0 && yy < H && grown[q] && label[q]! < 0) (label[q] = groups.length), stack.push(q);
      }
    }
    groups.push(members);
  }
  return groups.filter((g) => g.length >= minArea);
}

function centroidY(mask: Uint8Array): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) (sum += Math.floor(i / W)), n++;
  return sum / n;
}

/** The mask inside its own bounding box, resampled to `size`×`size` (a shape, whatever its size and place). */
function normalisedShape(mask: Uint8Array, size = 24): Uint8Array {
  let x0 = W;
  let y0 = H;
  let x1 = 0;
  let y1 = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const x = i % W;
    const y = Math.floor(i / W);
    x0 = Math.min(x0, x), x1 = Math.max(x1, x), y0 = Math.min(y0, y), y1 = Math.max(y1, y);
  }
  const out = new Uint8Array(size * size);
  for (let j = 0; j < size; j++) for (let i = 0; i < size; i++) {
    const x = Math.round(x0 + ((i + 0.5) / size) * (x1 - x0));
    const y = Math.round(y0 + ((j + 0.5) / size) * (y1 - y0));
    out[j * size + i] = mask[y * W + x]!;
  }
  return out;
}

function iou(a: Uint8Array, b: Uint8Array): number {
  let both = 0;
  let either = 0;
  for (let i = 0; i < a.length; i++) (both += a[i]! & b[i]!), (either += a[i]! | b[i]!);
  return both / Math.max(1, either);
}

describe('subjects: reading the prompt', () => {
  test('colour words bind to the noun they qualify, before or after it', () => {
    const reading = readSubjects('a crimson lighthouse on emerald cliffs above a turquoise sea at noon');
    assert.deepEqual(reading.subjects.map((s) => [s.kind, s.colourName]), [['lighthouse', 'crimson'], ['cliff', 'emerald'], ['sea', 'turquoise']]);
    assert.deepEqual(reading.subjects[0]!.relation, { type: 'on', target: 1 });
    const after = readSubjects('a lighthouse painted crimson, cliffs of emerald');
    assert.deepEqual(after.subjects.map((s) => [s.kind, s.colourName]), [['lighthouse', 'crimson'], ['cliff', 'emerald']]);
    assert.deepEqual(readSubjects('three sailboats on a deep blue sea').subjects.map((s) => [s.kind, s.count]), [['sailboat', 3], ['sea', 1]]);
    assert.equal(readSubjects('a pair of deer beside a pine tree').subjects[0]!.count, 2);
  });

  test('cats, dogs, wolves and the other newer nouns are their own kinds, plurals included', () => {
    const kinds = (prompt: string): string[] => readSubjects(prompt).subjects.map((s) => s.kind);
    assert.deepEqual(kinds('a cat beside a dog'), ['cat', 'dog']);
    assert.deepEqual(kinds('a wolf near a fox'), ['wolf', 'fox']);
    assert.deepEqual(readSubjects('two wolves and three snowmen').subjects.map((s) => [s.kind, s.count]), [['wolf', 2], ['snowman', 3]]);
    assert.deepEqual(kinds('a ferris wheel above a field of flowers'), ['ferris', 'flowers']);
    assert.deepEqual(kinds('an eagle over a barn'), ['eagle', 'barn']);
  });

  test('unbound colour words still tint the scene; bound ones leave it', () => {
    const reading = readSubjects('a white lighthouse, crimson and gold');
    assert.deepEqual([...reading.bound], ['white']);
    assert.ok(readPrompt('a white lighthouse, crimson and gold').colours.some((c) => c.name === 'crimson'));
    // With no subject noun the reading is empty and the scene is planned as before.
    assert.equal(readSubjects('misty hills at dawn, film grain').subjects.filter((s) => !s.entry.scenery).length, 0);
  });
});

describe('subjects: rendered pixels', () => {
  const bound: [string, string][] = [
    ['a crimson lighthouse on emerald cliffs above a turquoise sea at noon', 'crimson'],
    ['a lighthouse painted crimson at noon', 'crimson'],
    ['a violet castle on a hill at noon', 'violet'],
    ['a yellow windmill in a meadow at noon', 'yellow'],
  ];
  for (const [prompt, name] of bound) {
    test(`"${prompt}": the subject's region is ${name}, the rest of the frame is not`, () => {
      for (const seed of [1, 2]) {
        const { plan, pixels } = render(prompt, seed);
        const subject = plan.subjects[0];
        assert.ok(subject, 'a subject is placed');
        const mask = colourMask(pixels, named(name));
        const [cx0, cy0, cx1, cy1] = subject.core;
        let inside = 0;
        let insideHit = 0;
        let outside = 0;
        let outsideHit = 0;
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
          const hit = mask[y * W + x]!;
          if (x >= cx0 && x < cx1 && y >= cy0 && y < cy1) (inside++, (insideHit += hit));
          else if (!plan.subjects.some((s) => x >= s.x0 && x < s.x1 && y >= s.y0 && y < s.y1)) (outside++, (outsideHit += hit));
        }
        assert.ok(inside >= 40, `core of ${inside} px`);
        assert.ok(insideHit / inside >= 0.7, `${(insideHit / inside).toFixed(2)} of the subject within ΔE 20 of ${name} (seed ${seed})`);
        assert.ok(outsideHit / outside <= 0.05, `${(outsideHit / outside).toFixed(3)} of the rest within ΔE 20 of ${name} (seed ${seed})`);
        // The subject is large enough to read at a glance.
        assert.ok(subject.y1 - subject.y0 >= H * 0.2, `subject ${(subject.y1 - subject.y0).toFixed(0)} px high`);
      }
    });
  }

  test('bound scenery colours reach the scenery: emerald cliffs, a turquoise sea', () => {
    const { pixels } = render('a crimson lighthouse on emerald cliffs above a turquoise sea at noon');
    const emerald = colourMask(pixels, named('emerald'), 25);
    const turquoise = colourMask(pixels, named('turquoise'), 25);
    const share = (m: Uint8Array): number => m.reduce((s, v) => s + v, 0) / m.length;
    assert.ok(share(emerald) > 0.04, `emerald covers ${share(emerald).toFixed(3)}`);
    assert.ok(share(turquoise) > 0.02, `turquoise covers ${share(turquoise).toFixed(3)}`);
  });

  test('different subjects at the same seed have different silhouettes; one subject keeps its own', () => {
    const shape = (prompt: string, seed = 3): Uint8Array => normalisedShape(colourMask(render(prompt, seed).pixels, named('crimson')));
    const lighthouse = shape('a crimson lighthouse at noon');
    for (const other of ['a crimson windmill at noon', 'a crimson castle at noon', 'a crimson pagoda at noon', 'a crimson sailboat on the sea at noon']) {
      const overlap = iou(lighthouse, shape(other));
      assert.ok(overlap < 0.6, `${other}: IoU ${overlap.toFixed(2)} with the lighthouse`);
    }
    // The newer kinds have their own shapes too: a cat is not a dog, a wolf not a fox, a barn not a cottage.
    for (const [a, b] of [
      ['cat', 'dog'], ['wolf', 'fox'], ['dog', 'fox'], ['barn', 'cottage'], ['willow', 'oak'], ['sunflower', 'mushroom'], ['rabbit', 'cat'], ['bear', 'horse'], ['ferris wheel', 'windmill'], ['bus', 'car'],
    ] as const) {
      const overlap = iou(shape(`a crimson ${a} on a hill at noon`), shape(`a crimson ${b} on a hill at noon`));
      assert.ok(overlap < 0.6, `${a} and ${b}: IoU ${overlap.toFixed(2)}`);
    }
    const again = iou(lighthouse, shape('a crimson lighthouse at noon', 4));
    assert.ok(again > 0.6, `the lighthouse at another seed: IoU ${again.toFixed(2)}`);
  });

  const counted: [string, string, number][] = [
    ['three crimson sailboats on a calm sea at noon', 'crimson', 3],
    ['a pair of crimson deer in a meadow at noon', 'crimson', 2],
    ['four violet cottages at noon', 'violet', 4],
  ];
  for (const [prompt, name, count] of counted) {
    test(`"${prompt}" shows ${count} separate subjects`, () => {
      for (const seed of [1, 2, 3]) {
        const found = blobs(colourMask(render(prompt, seed).pixels, named(name))).length;
        assert.equal(found, count, `seed ${seed}: ${found} blobs`);
      }
    });
  }

  test('"above" puts the first subject higher', () => {
    for (const [prompt, first, second] of [
      ['a crimson hot-air balloon above a violet cottage at noon', 'crimson', 'violet'],
      ['a crimson tower above a violet cottage at noon', 'crimson', 'violet'],
    ] as const) {
      for (const seed of [1, 2]) {
        const { pixels } = render(prompt, seed);
        const a = centroidY(colourMask(pixels, named(first)));
        const b = centroidY(colourMask(pixels, named(second)));
        assert.ok(a < b, `${prompt} (seed ${seed}): ${first} at y ${a.toFixed(0)}, ${second} at ${b.toFixed(0)}`);
      }
    }
  });

  test('deterministic per seed and prompt; seeds move the subject; strips match the whole image', () => {
    const prompt = 'a crimson lighthouse on emerald cliffs above a turquoise sea at noon';
    assert.deepEqual(render(prompt, 5).pixels, render(prompt, 5).pixels);
    const xs = new Set([1, 2, 3, 4, 5, 6].map((seed) => Math.round(render(prompt, seed).plan.subjects[0]!.x0 / 8)));
    assert.ok(xs.size >= 2, 'seeds vary the layout');
    // Strips (several workers on one image) give the same bytes, backdrop subjects included.
    for (const text of [prompt, 'a whale in the ocean near a volcano at sunset']) {
      const plan = planScene({ prompt: text, width: W, height: H, seed: 5, taskSeed: 5, references: [], elements: [] });
      const whole = renderScene(plan);
      const out = new Uint8Array(W * H * 3);
      for (const [x0, x1] of stripBounds(W, 3)) renderScene(plan, { out, x0, x1 });
      assert.deepEqual(out, whole);
    }
  });

  test('a series keeps its subject in every shot', () => {
    const prompt = 'a crimson pagoda beside a pine tree at noon';
    for (let index = 0; index < 3; index++) {
      const plan = planScene({ prompt, width: W, height: H, seed: 100 + index, taskSeed: 9, seriesIndex: index, seriesAmount: 3, references: [], elements: [] });
      assert.deepEqual(plan.subjects.map((s) => s.kind).sort(), ['pagoda', 'pine']);
    }
  });
});
