/** Where elements go: a function of the image size and the element's index only, never of the seed. */

export interface ElementRect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly border: number;
}

/**
 * The rectangle (inside its frame) where element `index` of `count` is pasted on a
 * `width`×`height` image, keeping the frontal image's aspect ratio.
 */
export function elementRect(width: number, height: number, count: number, index: number, frontalWidth: number, frontalHeight: number): ElementRect {
  const n = Math.max(1, count);
  const border = Math.max(2, Math.round(height * 0.012));
  const slot = (width * 0.86) / n;
  let h = height * (n === 1 ? 0.5 : 0.4);
  let w = (h * frontalWidth) / frontalHeight;
  if (w > slot * 0.8) {
    w = slot * 0.8;
    h = (w * frontalHeight) / frontalWidth;
  }
  const cx = width * 0.07 + slot * (index + 0.5);
  const cy = height * 0.56;
  return { x: Math.round(cx - w / 2), y: Math.round(cy - h / 2), width: Math.max(1, Math.round(w)), height: Math.max(1, Math.round(h)), border };
}
