/**
 * Renders the studio engine's gallery into docs/gallery/: the seed file's four example prompts,
 * a dozen more (with references, a series and an element), prompts with named subjects and a contact sheet.
 * Run with `npx tsx scripts/gallery.ts` (or `npm run gallery`).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { GenerateCall, InputImage, RawImage } from '../src/engines/spec/image-engine.ts';
import { createStudioEngine } from '../src/engines/studio/studio-engine.ts';

const WIDTH = 624;
const HEIGHT = 416;
const OUT = new URL('../docs/gallery/', import.meta.url);

const SEED_PROMPTS: readonly [string, string][] = [
  ['01-ceramic-dragon-kite-festival', 'An expansive spring festival in a hillside town plaza, centered on an enormous dragon-shaped kite crafted from glazed ceramic panels and lacquered bamboo, soaring low above tiled rooftops. Performers in elaborate festival garments with painted masks, braided cords, tassels, and embroidered sleeves guide the kite with dozens of ribbons. A circle of children release tiny paper swallows into the air while elders watch from stone steps decorated with flowering branches and lantern strands. Background filled with layered rooftops, distant terraces, wind banners, and drifting petals. Golden late-afternoon sunlight, crisp atmosphere, highly detailed faces and fabrics, expressive motion, cinematic composition, deep environmental storytelling, refined color harmony of jade, coral, saffron, and porcelain white, ultra-detailed, premium fantasy realism.'],
  ['02-retrofuturist-icebound-rail-terminal', 'A grand retrofuturist rail terminal carved into a vast glacier basin, gleaming chrome locomotives resting on elevated tracks above fractured blue ice, bundled travelers in geometric 1930s-inspired winter fashion, glowing amber platform lamps, vapor plumes drifting across the scene, enormous ribbed glass canopies rimmed with frost, distant icebreaker airships tethered to mooring towers, intricate brass signage in an invented alphabet, polished metal reflections, sweeping cinematic composition, layered depth, ultra-detailed textures, atmospheric perspective, crisp focus, elegant color harmony of cyan, silver, cream, and warm gold, epic yet inviting mood, premium editorial illustration aesthetic'],
  ['03-deserted-orbital-garden-concourse', 'Using all five reference images as guidance, create a grand orbital garden concourse suspended above a rust-colored planet, blending the structural elegance of a spacefaring conservatory with arid botanical design. A solitary traveler stands near the center in layered sand-toned attire with subtle metallic detailing and a translucent visor, scaled naturally within the environment. Surround the figure with curated terraces of rare succulents, twisted drought-resistant plants, suspended irrigation channels, and sculpted planters. Emphasize warm sunrise beams filtering through curved glass, long shadows, atmospheric haze, polished titanium framework, frosted panels, ceramic pathways, and oxidized copper accents. Ultra-detailed, high fidelity, cinematic composition, expansive depth, refined textures, realistic lighting, premium sci-fi worldbuilding, serene and contemplative mood.'],
  ['04-tidal-glass-railway-terminal', 'Blend the composition and architectural character of the first reference image with the styling and silhouette language of the second reference image. Create a majestic retro-futurist railway terminal beside the sea, vast vaulted glass roof, brass framework, polished stone platforms, streamlined locomotives, gulls circling in the distance, luggage trolleys, signal lamps, and a central traveler wearing a sapphire tailored coat and sculptural hat. Emphasize luminous reflections on glass and metal, crisp environmental detail, believable human scale, elegant art deco design, cinematic depth, high fidelity textures, sophisticated color harmony of teal, cream, brass, and deep blue, atmospheric but clear, premium editorial quality.'],
];

const MORE: readonly [string, string][] = [
  ['05-alpine-lake-sunrise', 'snowy alpine peaks above a still lake at sunrise, pine forest, mist, serene watercolor'],
  ['06-desert-caravan-sunset', 'a caravan of travelers crossing desert dunes at sunset, dust in the air, cinematic'],
  ['07-neon-city-rain', 'a neon city skyline at night in the rain, reflections on the harbor, moody'],
  ['08-terraced-valley-morning', 'terraced rice fields on misty hills with a small village of rooftops, morning, editorial'],
  ['09-lighthouse-storm', 'a lighthouse on sea cliffs under a stormy overcast sky, boats, gulls'],
  ['10-ringed-planet-orbit', 'an orbital garden above a ringed planet among the stars, copper and teal, retro-futurist illustration'],
  ['11-lantern-village-night', 'a village of tiled rooftops with lantern strands at night, fireflies, people in the square'],
  ['12-tropical-islands-noon', 'tropical islands with palms in a turquoise sea, sailboats, noon, vibrant'],
  ['13-aurora-tundra', 'aurora borealis over frozen tundra and a glacier, stars, minimal'],
  ['14-zqx-plorb', 'zqx plorb vantish meddle'],
];

/** Prompts whose subject must be in the picture, in the colour the prompt gives it. */
const SUBJECTS: readonly [string, string][] = [
  ['18-crimson-lighthouse-emerald-cliffs', 'a crimson lighthouse on emerald cliffs above a turquoise sea at noon'],
  ['19-three-sailboats-sunset', 'three crimson sailboats on a calm sea at sunset'],
  ['20-balloon-above-castle', 'a red hot-air balloon above a white castle at golden hour'],
  ['21-golden-pagoda-cherry-tree', 'a golden pagoda beside a cherry tree, misty mountains, dawn'],
  ['22-pair-of-deer-pine', 'a pair of deer beside a pine tree in a snowy valley'],
  ['23-windmill-under-moon', 'a yellow windmill under a huge full moon at night'],
  ['24-whale-volcano-sunset', 'a whale in the ocean near a volcano at sunset'],
  ['25-blue-train-stone-bridge', 'a blue train crossing a stone bridge over a river, autumn afternoon'],
  ['26-crowd-marble-temple', 'a crowd in front of a marble temple at noon'],
  ['27-violet-castle-hill', 'a violet castle on a hill beside a palm tree, morning'],
];

function call(prompt: string, seed: number, extra: Partial<GenerateCall> = {}): GenerateCall {
  return {
    model: 'kiln:studio@1', prompt, width: WIDTH, height: HEIGHT, images: [{ index: 0, seed }], taskSeed: seed,
    referenceImages: [], elements: [], output: { format: 'jpg', quality: 90 }, options: {}, signal: new AbortController().signal, checkpoint: { load: async () => undefined, save: async () => {} }, includeCost: false, ...extra,
  };
}

function input(pixels: RawImage): InputImage {
  return { pixels, encoded: { bytes: new Uint8Array(), format: 'png', width: pixels.width, height: pixels.height } };
}

async function save(name: string, pixels: RawImage): Promise<Buffer> {
  const jpg = await sharp(Buffer.from(pixels.data), { raw: { width: pixels.width, height: pixels.height, channels: pixels.channels } }).jpeg({ quality: 86, mozjpeg: true }).toBuffer();
  await writeFile(new URL(`${name}.jpg`, OUT), jpg);
  return jpg;
}

async function main(): Promise<void> {
  await mkdir(OUT, { recursive: true });
  const engine = createStudioEngine();
  const tiles: { name: string; jpg: Buffer }[] = [];
  const one = async (name: string, c: GenerateCall): Promise<RawImage> => {
    const result = await engine.generate(c);
    const pixels = result.images[0]!.pixels!;
    tiles.push({ name, jpg: await save(name, pixels) });
    return pixels;
  };
  try {
    // References made by the engine itself: a warm dusk harbour and a cool misty forest.
    const refA = (await engine.generate(call('harbor city at dusk with lanterns, coral and violet', 301))).images[0]!.pixels!;
    const refB = (await engine.generate(call('misty pine forest by a lake, morning, sage and slate', 302))).images[0]!.pixels!;
    await save('ref-a', refA);
    await save('ref-b', refB);
    const [festival, terminal, orbital, tidal] = SEED_PROMPTS;
    await one(festival![0], call(festival![1], 916236551));
    await one(terminal![0], call(terminal![1], 666986601));
    await one(orbital![0], call(orbital![1], 1310100576, { referenceImages: [input(refA), input(refB)] }));
    await one(tidal![0], call(tidal![1], 426554814, { referenceImages: [input(refB), input(refA)] }));
    let seed = 1000;
    for (const [name, prompt] of MORE) await one(name, call(prompt, seed++));
    for (const [name, prompt] of SUBJECTS) await one(name, call(prompt, seed++));
    await one('15-with-reference-image-2', call('snowy mountains above a pine forest, in the light of <<<image_1>>>', 2024, { referenceImages: [input(refA)] }));
    for (let i = 0; i < 4; i++) {
      await one(`16-series-${i}`, call('a harbor town with boats and gulls at golden hour, cinematic', 5000 + i, { taskSeed: 5000, seriesAmount: 4, images: [{ index: i, seed: 5000 + i, seriesIndex: i }] }));
    }
    const face = await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="300" height="360"><rect width="300" height="360" fill="#c9b8a6"/><ellipse cx="150" cy="190" rx="92" ry="122" fill="#e8c4a0"/><path d="M58 150 Q150 20 242 150 L242 110 Q150 -10 58 110 Z" fill="#3b2a20"/><circle cx="115" cy="180" r="11" fill="#2a1d14"/><circle cx="185" cy="180" r="11" fill="#2a1d14"/><path d="M115 250 Q150 275 185 250" stroke="#8a3030" stroke-width="8" fill="none"/></svg>`)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const frontal: RawImage = { data: new Uint8Array(face.data), width: face.info.width, height: face.info.height, channels: 3 };
    for (let i = 0; i < 2; i++) {
      await one(`17-element-${i}`, call('portrait of <<<element_1>>> at a lantern festival in a hillside town, golden hour', 7000 + i, { taskSeed: 7000, elements: [{ frontal: input(frontal), views: [] }] }));
    }
  } finally {
    await engine.close();
  }
  const columns = 4;
  const tw = 312;
  const th = 208;
  const gap = 6;
  const rows = Math.ceil(tiles.length / columns);
  const composites = await Promise.all(tiles.map(async (tile, i) => ({
    input: await sharp(tile.jpg).resize(tw, th).toBuffer(),
    left: gap + (i % columns) * (tw + gap),
    top: gap + Math.floor(i / columns) * (th + gap),
  })));
  await sharp({ create: { width: gap + columns * (tw + gap), height: gap + rows * (th + gap), channels: 3, background: '#16161a' } })
    .composite(composites).jpeg({ quality: 85 }).toFile(new URL('contact-sheet.jpg', OUT).pathname);
  console.log(`wrote ${tiles.length} images and contact-sheet.jpg to docs/gallery/`);
}

await main();
