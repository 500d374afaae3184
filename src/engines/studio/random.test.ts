import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Noise1D, Noise2D, Random } from './random.ts';

describe('studio randomness', () => {
  it('fill draws the same numbers as calling next, and leaves the stream where next would', () => {
    const a = new Random(1234);
    const b = new Random(1234);
    const filled = a.fill(new Float64Array(1000));
    for (let i = 0; i < filled.length; i++) assert.equal(filled[i], b.next(), `draw ${i}`);
    assert.equal(a.next(), b.next());
    const f32 = new Random(99).fill(new Float32Array(300));
    const c = new Random(99);
    for (let i = 0; i < f32.length; i++) assert.equal(f32[i], Math.fround(c.next()));
  });

  it('a 2D noise made in a reused table equals one made in its own', () => {
    const table = new Float32Array(256 * 256).fill(7);
    const own = new Noise2D(new Random(5));
    const reused = new Noise2D(new Random(5), table);
    for (const [x, y] of [[0.3, 0.7], [12.5, 200.25], [-3.75, 511.5], [1e4 + 0.1, -77.3]] as const) assert.equal(reused.at(x, y), own.at(x, y));
  });

  it('1D noise wraps exactly around its lattice, for negative positions too', () => {
    for (const cells of [256, 512]) {
      const noise = new Noise1D(new Random(cells), cells);
      // Positions with few fraction bits, so that x ± a multiple of the lattice is exact.
      for (const x of [0, 0.25, 17.5, 255.9375, 300.125, 1e6 + 0.5]) {
        assert.equal(noise.at(x + cells), noise.at(x), `${x} + ${cells}`);
        assert.equal(noise.at(x - 3 * cells), noise.at(x), `${x} - 3·${cells}`);
      }
      // A remainder too small to survive the wrap lands on the lattice's start, not past its end.
      assert.equal(noise.at(-1e-20), noise.at(0));
      // A negative subnormal, whose quotient by the lattice is -0, too.
      assert.equal(noise.at(-5e-324), noise.at(0));
      assert.equal(noise.at(-(2 ** -1067)), noise.at(0));
      const value = noise.at(-0.5);
      assert.ok(value >= 0 && value <= 1);
    }
    assert.throws(() => new Noise1D(new Random(1), 300), /power of two/);
  });
});
