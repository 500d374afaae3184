/**
 * The model registry: what each served model accepts and what it costs. Pure data and rules;
 * which engine serves a model is decided by configuration in `compose.ts`.
 */

export interface Size {
  readonly width: number;
  readonly height: number;
}

/** A served model's limits and price table. */
export interface ModelSpec {
  /** AIR id, e.g. `klingai:kling-image@o3`. */
  readonly id: string;
  readonly name: string;
  readonly promptMaxLength: number;
  readonly maxResults: number;
  /** References plus element images, together. */
  readonly maxInputImages: number;
  readonly defaultSize: Size;
  /** True when `width`×`height` is allowed. */
  acceptsSize(width: number, height: number): boolean;
  /** The message tail and `allowedValues` for `unsupportedDimensions`. */
  readonly sizeRule: { readonly message: string; readonly allowedValues: unknown };
  /** USD per generated image of this size. */
  price(width: number, height: number): number;
  /** The size used when the request names none but has a first reference of this aspect. */
  sizeForAspect(aspect: number): Size;
}

/** Kling IMAGE O3's 24 sizes, by aspect and tier (runware-protocol.md §5.2). */
export const O3_SIZES = {
  '1:1': [[1024, 1024], [2048, 2048], [4096, 4096]],
  '3:2': [[1248, 832], [2496, 1664], [4992, 3328]],
  '2:3': [[832, 1248], [1664, 2496], [3328, 4992]],
  '4:3': [[1168, 880], [2336, 1760], [4736, 3520]],
  '3:4': [[880, 1168], [1760, 2336], [3520, 4736]],
  '9:16': [[768, 1360], [1536, 2720], [3072, 5440]],
  '16:9': [[1360, 768], [2720, 1536], [5440, 3072]],
  '21:9': [[1552, 656], [3104, 1312], [6272, 2688]],
} as const satisfies Record<string, readonly (readonly [number, number])[]>;

type Tier = 0 | 1 | 2;
const O3_TIER = new Map<string, Tier>();
for (const sizes of Object.values(O3_SIZES)) {
  sizes.forEach(([w, h], tier) => O3_TIER.set(`${w}x${h}`, tier as Tier));
}
const O3_LIST = [0, 1, 2].flatMap((tier) =>
  Object.values(O3_SIZES).map((sizes) => `${sizes[tier]?.[0]}x${sizes[tier]?.[1]}`),
);
const O3_ALLOWED = Object.fromEntries(
  Object.entries(O3_SIZES).map(([aspect, sizes]) => [aspect, sizes.map(([w, h]) => `${w}x${h}`)]),
);

function closestByAspect(sizes: readonly Size[], aspect: number): Size {
  let best = sizes[0] as Size;
  let bestDistance = Infinity;
  for (const size of sizes) {
    const distance = Math.abs(Math.log(size.width / size.height) - Math.log(aspect));
    if (distance < bestDistance) {
      best = size;
      bestDistance = distance;
    }
  }
  return best;
}

const O3_1K: Size[] = Object.values(O3_SIZES).map((s) => ({ width: s[0][0], height: s[0][1] }));

export const KLING_O3: ModelSpec = {
  id: 'klingai:kling-image@o3',
  name: 'Kling IMAGE O3',
  promptMaxLength: 2500,
  maxResults: 20,
  maxInputImages: 10,
  defaultSize: { width: 1024, height: 1024 },
  acceptsSize: (width, height) => O3_TIER.has(`${width}x${height}`),
  sizeRule: {
    message: `Supported values are: ${O3_LIST.map((s) => `'${s}'`).join(', ')}.`,
    allowedValues: O3_ALLOWED,
  },
  price: (width, height) => (O3_TIER.get(`${width}x${height}`) === 2 ? 0.056 : 0.028),
  sizeForAspect: (aspect) => closestByAspect(O3_1K, aspect),
};

/** Kiln's development model: any multiple of 8 from 128 to 6272, at most 16.8 MP, free. */
export const KILN_STUDIO: ModelSpec = {
  id: 'kiln:studio@1',
  name: 'Kiln studio (development model)',
  promptMaxLength: 2500,
  maxResults: 20,
  maxInputImages: 10,
  defaultSize: { width: 1024, height: 1024 },
  acceptsSize: (width, height) =>
    width % 8 === 0 &&
    height % 8 === 0 &&
    width >= 128 &&
    height >= 128 &&
    width <= 6272 &&
    height <= 6272 &&
    width * height <= 16_800_000,
  sizeRule: {
    message: 'Width and height must be multiples of 8 between 128 and 6272, with at most 16.8 megapixels.',
    allowedValues: { min: 128, max: 6272, multipleOf: 8, maxPixels: 16_800_000 },
  },
  price: () => 0,
  sizeForAspect: (aspect) => {
    const width = Math.round(Math.sqrt(1024 * 1024 * aspect) / 8) * 8;
    const height = Math.round((1024 * 1024) / Math.max(width, 8) / 8) * 8;
    return { width, height };
  },
};

export const MODELS: ReadonlyMap<string, ModelSpec> = new Map(
  [KLING_O3, KILN_STUDIO].map((m) => [m.id, m]),
);
