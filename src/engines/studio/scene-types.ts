/** The render plan: plain data that the planner builds and the rasteriser draws. */
import type { Rgb } from './colour.ts';

/** One depth layer of the scene, drawn back to front. Every array has one entry per column. */
export interface LayerPlan {
  /** `solid`: covers rows from `top` down; `water`: reflects what is above `waterY`; `frame`: covers rows above `bottom`. */
  readonly kind: 'solid' | 'water' | 'frame';
  /** What the layer is, where subjects need to know (a lighthouse stands on the `cliffs`). */
  readonly role?: 'cliffs' | 'near';
  readonly top: Float32Array;
  readonly bottom?: Float32Array;
  /** Openings (arches) through a solid layer: rows holeTop ≤ y < holeBottom are not covered. */
  readonly holeTop?: Float32Array;
  readonly holeBottom?: Float32Array;
  /** Brightness offset per column (lit and shaded faces), fading with depth below the top edge. */
  readonly shade?: Float32Array;
  /** Rows above this y are snow-covered (mountain caps). */
  readonly snow?: Float32Array;
  readonly colourTop: Rgb;
  readonly colourBottom: Rgb;
  /** Rows over which the layer's gradient runs. */
  readonly gradientFrom: number;
  readonly gradientTo: number;
  /** Atmospheric perspective: how much of the fog colour the layer takes (0 near, ~0.7 far). */
  readonly fog: number;
  /** Extra fog toward the layer's lower rows (valley mist). */
  readonly mist: number;
  readonly rim: Rgb;
  readonly rimStrength: number;
  readonly rimWidth: number;
  readonly windows?: { readonly cellWidth: number; readonly cellHeight: number; readonly density: number; readonly colour: Rgb; readonly seed: number };
  readonly water?: { readonly y: number; readonly reflectivity: number; readonly ripple: number; readonly phase: number };
  /** A `frame` shaped as a vault: its opening is the half-ellipse centred on (cx, spring) reaching up to `apex`. */
  readonly vault?: { readonly cx: number; readonly half: number; readonly spring: number; readonly apex: number };
}

export interface SkyPlan {
  readonly top: Rgb;
  readonly mid: Rgb;
  readonly horizon: Rgb;
  /** The y where the sky gradient reaches `horizon`. */
  readonly horizonY: number;
  readonly sunX: number;
  readonly sunY: number;
  readonly sunRadius: number;
  readonly sunColour: Rgb;
  /** 0 hides the disc (overcast, behind clouds). */
  readonly sunDisc: number;
  readonly glow: number;
  readonly clouds: number;
  readonly cloudScale: number;
  readonly cloudLit: Rgb;
  readonly cloudShade: Rgb;
  readonly cloudBandTop: number;
  readonly cloudBandBottom: number;
  readonly cloudStretch: number;
  readonly aurora: number;
  readonly auroraColour: Rgb;
  readonly rays: number;
  /** Sky gradient quantised into this many bands (0: smooth), for poster styles. */
  readonly posterize: number;
  /** Retro sun: horizontal stripes cut out of the lower half of the disc. */
  readonly sunStripes: boolean;
  readonly noiseSeed: number;
}

/** Everything drawn after the layers: figures, birds, kites, particles… in image pixels. */
export type Sprite =
  | { readonly type: 'disc'; readonly x: number; readonly y: number; readonly r: number; readonly colour: Rgb; readonly alpha: number; readonly soft: number }
  | { readonly type: 'glow'; readonly x: number; readonly y: number; readonly r: number; readonly colour: Rgb; readonly alpha: number }
  | { readonly type: 'stroke'; readonly x0: number; readonly y0: number; readonly x1: number; readonly y1: number; readonly r0: number; readonly r1: number; readonly colour: Rgb; readonly alpha: number }
  | { readonly type: 'polygon'; readonly points: readonly number[]; readonly colour: Rgb; readonly alpha: number };

/** A disc in the sky (moon, planet) drawn before the layers, with an optional ring. */
export interface SkyBody {
  readonly x: number;
  readonly y: number;
  readonly r: number;
  readonly colour: Rgb;
  readonly shadow: Rgb;
  /** Direction of the lit side, radians. */
  readonly lightAngle: number;
  readonly bands: number;
  readonly ring: number;
  readonly ringTilt: number;
  readonly ringColour: Rgb;
}

export interface GradePlan {
  readonly exposure: number;
  readonly contrast: number;
  /** Added to shadows and highlights (split toning), RGB offsets. */
  readonly shadowTint: Rgb;
  readonly highlightTint: Rgb;
  readonly lift: number;
  readonly vignette: number;
  readonly grain: number;
  readonly glowColour: Rgb;
  readonly glowStrength: number;
  readonly glowX: number;
  readonly glowY: number;
  readonly glowRadius: number;
  readonly mist: number;
  readonly mistY: number;
  readonly mistHeight: number;
  readonly fogColour: Rgb;
  readonly paper: number;
  readonly seed: number;
}

export interface ElementPlan {
  readonly pixels: { readonly data: Uint8Array; readonly width: number; readonly height: number; readonly channels: number };
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly border: number;
}

/** Where a subject of the prompt was drawn (image pixels), for the composition and for tests. */
export interface SubjectPlacement {
  readonly kind: string;
  /** Bounding box of the silhouette. */
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  /** A box inside the silhouette that its own colour fills. */
  readonly core: readonly [number, number, number, number];
  /** The subject's colour before the scene's light (the bound colour, or its default). */
  readonly colour: Rgb;
  readonly bound: boolean;
}

export interface ScenePlan {
  readonly width: number;
  readonly height: number;
  readonly sky: SkyPlan;
  readonly stars: number;
  readonly starSeed: number;
  readonly bodies: readonly SkyBody[];
  readonly layers: readonly LayerPlan[];
  readonly fogColour: Rgb;
  readonly sprites: readonly Sprite[];
  readonly grade: GradePlan;
  readonly elements: readonly ElementPlan[];
  /** Sprites drawn behind the layers (far subjects: a mountain, a volcano), which the layers in front hide. */
  readonly backdrop?: readonly Sprite[];
  /** The prompt's subjects as drawn (their sprites are in `sprites`); empty when it names none. */
  readonly subjects: readonly SubjectPlacement[];
}
