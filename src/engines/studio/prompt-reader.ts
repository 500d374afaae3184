/** Reads a prompt through the lexicon into a `SceneIntent`: what the renderer should show. */
import { adjustLab, hexToRgb, type Rgb } from './colour.ts';
import { lexicon, type TimeOfDay } from './lexicon.ts';
import { hashString } from './random.ts';

export interface NamedColour {
  readonly name: string;
  readonly rgb: Rgb;
  /** 1 for an explicit colour word, less for words that are also nouns (snow, stone, sand…). */
  readonly weight: number;
}

export interface SceneIntent {
  readonly colours: readonly NamedColour[];
  readonly time: TimeOfDay | undefined;
  readonly atmosphere: Readonly<Record<string, number>>;
  readonly scene: Readonly<Record<string, number>>;
  readonly style: Readonly<Record<string, number>>;
  /** How many people the prompt implies (0 when none). */
  readonly people: number;
  /** 1-based reference numbers named as `<<<image_N>>>`. */
  readonly imageMentions: readonly number[];
  /** Words the lexicon knew, for diagnostics. */
  readonly known: number;
  /** A hash of the whole prompt, so that unknown words still steer the picture. */
  readonly hash: number;
}

/** Words that are colours but usually mean a thing; they colour the picture only as hints. */
const WEAK_COLOURS = new Set([
  'snow', 'sand', 'stone', 'smoke', 'ash', 'ink', 'frost', 'marble', 'ceramic', 'lacquer', 'concrete', 'cement', 'chrome',
  'titanium', 'steel', 'pearl', 'honey', 'coffee', 'wine', 'cherry', 'lemon', 'mint', 'rose', 'plum', 'moss', 'pine', 'clay',
  'brick', 'jet', 'lagoon', 'linen', 'bone', 'orange', 'lime', 'olive', 'peach', 'salmon', 'chocolate', 'tomato', 'glacierblue',
  'sage', 'ginger', 'cinnamon', 'walnut', 'oldlace', 'light', 'opal', 'sepia', 'cocoa', 'amber', 'parchment',
]);
/** Time words that only lean the light one way; a specific time word wins over them. */
const WEAK_TIMES = new Set([
  'warm', 'bright', 'dark', 'clear', 'fresh', 'spring', 'summer', 'autumn', 'autumnal', 'honeyed', 'winter', 'wintry', 'grey',
  'gray', 'setting', 'sunny', 'sunlit', 'breakfast', 'darkness', 'rainy', 'drizzle', 'stormy', 'starry', 'starlit',
]);
const BASIC_COLOURS = new Set(['white', 'black', 'grey', 'gray', 'blue', 'green', 'red', 'yellow', 'orange', 'purple', 'pink', 'brown']);

function tokenize(prompt: string): { tokens: string[]; mentions: number[] } {
  const mentions: number[] = [];
  const text = prompt.toLowerCase().replace(/<<<\s*image_(\d+)\s*>>>/g, (_m, n: string) => {
    mentions.push(Number(n));
    return ' ';
  });
  const tokens = text
    .replace(/<<<[^>]*>>>/g, ' ')
    .split(/[^a-z0-9'-]+/)
    .map((t) => t.replace(/^[-']+|[-']+$/g, '').replace(/'s$/, ''))
    .filter((t) => t.length > 0);
  return { tokens, mentions };
}

function lookup<T>(table: Readonly<Record<string, T>>, word: string): T | undefined {
  if (Object.hasOwn(table, word)) return table[word];
  if (word.endsWith('es') && Object.hasOwn(table, word.slice(0, -2))) return table[word.slice(0, -2)];
  if (word.endsWith('s') && Object.hasOwn(table, word.slice(0, -1))) return table[word.slice(0, -1)];
  return undefined;
}

export function applyModifier(rgb: Rgb, modifier: string | undefined): Rgb {
  switch (modifier) {
    case 'deep':
      return adjustLab(rgb, -18, 1.05);
    case 'pale':
      return adjustLab(rgb, 14, 0.6);
    case 'muted':
      return adjustLab(rgb, 0, 0.55);
    case 'warm':
      return adjustLab(rgb, 2, 1.05, -12);
    case 'cool':
      return adjustLab(rgb, 0, 1, 14);
    case 'vivid':
      return adjustLab(rgb, 2, 1.25);
    default:
      return rgb;
  }
}

function addAll(target: Record<string, number>, source: Readonly<Record<string, number>> | undefined): void {
  if (!source) return;
  for (const [key, value] of Object.entries(source)) target[key] = (target[key] ?? 0) + value;
}

/** Reads `prompt` word by word (hyphenated compounds and two-word colours first). */
export function readPrompt(prompt: string): SceneIntent {
  const { colours: colourTable, words } = lexicon();
  const { tokens, mentions } = tokenize(prompt);
  const colours: NamedColour[] = [];
  const seen = new Set<string>();
  const atmosphere: Record<string, number> = {};
  const scene: Record<string, number> = {};
  const style: Record<string, number> = {};
  const timeVotes = new Map<TimeOfDay, number>();
  let people = 0;
  let known = 0;

  const addColour = (name: string, hex: string, modifier: string | undefined): void => {
    if (seen.has(name)) return;
    seen.add(name);
    colours.push({ name, rgb: applyModifier(hexToRgb(hex), modifier), weight: WEAK_COLOURS.has(name) ? 0.4 : 1 });
  };

  const visit = (word: string, previous: string | undefined, next: string | undefined): boolean => {
    let hit = false;
    const time = lookup(words.time, word);
    if (time) {
      timeVotes.set(time, (timeVotes.get(time) ?? 0) + (WEAK_TIMES.has(word) ? 0.3 : 1));
      hit = true;
    }
    const atmos = lookup(words.atmosphere, word);
    if (atmos) addAll(atmosphere, atmos), (hit = true);
    const sceneHit = lookup(words.scene, word);
    if (sceneHit) addAll(scene, sceneHit), (hit = true);
    const styleHit = lookup(words.style, word);
    if (styleHit) addAll(style, styleHit), (hit = true);
    const count = lookup(words.people, word);
    if (count !== undefined) (people += count), (hit = true);
    const hex = colourTable[word];
    if (hex !== undefined && !(BASIC_COLOURS.has(word) && previous !== undefined && colourTable[previous] !== undefined)) {
      const modifier = previous === undefined ? undefined : words.modifiers[previous];
      // "porcelain white", "sapphire blue": the specific word carries the colour.
      addColour(word, hex, modifier);
      hit = true;
    }
    void next;
    return hit;
  };

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const next = tokens[i + 1];
    const previous = tokens[i - 1];
    // Two-word colours ("deep blue", "forest green", "warm gold") and compounds ("blue-hour").
    if (next !== undefined) {
      const joined = `${token}${next}`;
      const joinedHex = colourTable[joined];
      if (joinedHex !== undefined) {
        addColour(joined, joinedHex, undefined);
        known++;
        i++;
        continue;
      }
      if (lookup(words.time, `${token}-${next}`) !== undefined) {
        visit(`${token}-${next}`, previous, tokens[i + 2]);
        known++;
        i++;
        continue;
      }
    }
    if (token.includes('-')) {
      const compound = token.replace(/-/g, '');
      if (colourTable[compound] !== undefined) {
        addColour(compound, colourTable[compound]!, undefined);
        known++;
        continue;
      }
      if (visit(token, previous, next)) {
        known++;
        continue;
      }
      const parts = token.split('-').filter((p) => p.length > 0);
      for (let p = 0; p < parts.length; p++) if (visit(parts[p]!, p === 0 ? previous : parts[p - 1], parts[p + 1] ?? next)) known++;
      continue;
    }
    if (visit(token, previous, next)) known++;
  }

  let time: TimeOfDay | undefined;
  let best = 0;
  for (const [candidate, votes] of timeVotes) {
    if (votes > best) {
      best = votes;
      time = candidate;
    }
  }
  return { colours, time, atmosphere, scene, style, people, imageMentions: mentions, known, hash: hashString(prompt.trim().toLowerCase()) };
}
