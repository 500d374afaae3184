/**
 * Reads the subjects of a prompt: the nouns of `lexicon/subjects.json` in the order they appear,
 * with how many, the colour or material bound to each ("crimson lighthouse", "a lighthouse painted
 * crimson", "cliffs of emerald") and how each stands to another ("X on Y", "X above Y"…).
 */
import { readFileSync } from 'node:fs';
import { hexToRgb, type Rgb } from '../colour.ts';
import { lexicon } from '../lexicon.ts';
import { applyModifier } from '../prompt-reader.ts';

export type Anchor = 'ground' | 'water' | 'sky';
export type Relation = 'on' | 'above' | 'below' | 'beside' | 'front' | 'behind';
/** Scenery the prompt can colour but that the layers draw: the cliffs, the water, the hills… */
export type Scenery = 'cliffs' | 'water' | 'hills' | 'mountains' | 'sky' | 'dunes';

/** One entry of `lexicon/subjects.json`. */
export interface SubjectEntry {
  readonly words: readonly string[];
  readonly anchor?: Anchor;
  /** Height of one subject as a fraction of the frame's height. */
  readonly height?: number;
  /** Its colour when the prompt names none. */
  readonly colour?: string;
  /** Scene features the subject replaces (the layers' own spires when a lighthouse is drawn). */
  readonly suppress?: readonly string[];
  /** Scene features it needs (a ship needs water). */
  readonly needs?: Readonly<Record<string, number>>;
  readonly scenery?: Scenery;
  readonly far?: boolean;
  readonly flock?: number;
  readonly people?: boolean;
  readonly body?: boolean;
  /** How many a bare plural means (default 3 for small subjects, 2 for large ones). */
  readonly plural?: number;
  /** How many of it a plural or collective noun means ("a crowd": 7). */
  readonly crowd?: number;
}

interface SubjectLexicon {
  readonly subjects: Readonly<Record<string, SubjectEntry>>;
  readonly counts: Readonly<Record<string, number>>;
  readonly materials: Readonly<Record<string, string>>;
  readonly binders: readonly string[];
  readonly relations: Readonly<Record<string, Relation>>;
}

/** A subject as the prompt gives it. */
export interface SubjectIntent {
  readonly kind: string;
  readonly entry: SubjectEntry;
  readonly count: number;
  /** The bound colour, already through its modifier ("deep crimson"). */
  readonly colour: Rgb | undefined;
  readonly colourName: string | undefined;
  /** How this subject stands to another: `target` indexes the returned subjects. */
  readonly relation: { readonly type: Relation; readonly target: number } | undefined;
}

export interface SubjectReading {
  readonly subjects: readonly SubjectIntent[];
  /** Colour names bound to a subject: they colour it, not the scene. */
  readonly bound: ReadonlySet<string>;
  /** Words read as subject nouns ("cherry" in "cherry tree"): not colours of the scene either. */
  readonly nouns: ReadonlySet<string>;
}

let cached: { lexicon: SubjectLexicon; phrases: Map<string, string>; longest: number } | undefined;

function subjectLexicon(): NonNullable<typeof cached> {
  if (cached) return cached;
  const lexicon = JSON.parse(readFileSync(new URL('../lexicon/subjects.json', import.meta.url), 'utf8')) as SubjectLexicon;
  const phrases = new Map<string, string>();
  let longest = 1;
  for (const [kind, entry] of Object.entries(lexicon.subjects)) {
    for (const word of entry.words) {
      const key = word.replace(/-/g, ' ');
      if (!phrases.has(key)) phrases.set(key, kind);
      longest = Math.max(longest, key.split(' ').length);
    }
  }
  cached = { lexicon, phrases, longest };
  return cached;
}

function tokens(prompt: string): string[] {
  return prompt
    .toLowerCase()
    .replace(/<<<[^>]*>>>/g, ' , ')
    .replace(/[.;:!?()]/g, ' , ')
    .replace(/,/g, ' , ')
    .split(/[^a-z0-9',-]+/)
    .flatMap((t) => (t === ',' ? [','] : t.replace(/^[-']+|[-']+$/g, '').replace(/'s$/, '').split('-')))
    .filter((t) => t.length > 0);
}

function singular(word: string): string[] {
  const out = [word];
  if (word.endsWith('ies')) out.push(`${word.slice(0, -3)}y`);
  if (word.endsWith('es')) out.push(word.slice(0, -2));
  if (word.endsWith('s')) out.push(word.slice(0, -1));
  // A few irregular plurals: wolves, snowmen, geese.
  if (word.endsWith('ves')) out.push(`${word.slice(0, -3)}f`);
  if (word.endsWith('men')) out.push(`${word.slice(0, -3)}man`);
  if (word === 'geese') out.push('goose');
  return out;
}

/** The subject noun phrase starting at token `i`, longest first: its kind, length and whether it was plural. */
function nounAt(words: readonly string[], i: number): { kind: string; length: number; plural: boolean } | undefined {
  const { phrases, longest } = subjectLexicon();
  for (let n = Math.min(longest, words.length - i); n >= 1; n--) {
    const parts = words.slice(i, i + n);
    if (parts.includes(',')) continue;
    const last = parts[n - 1]!;
    for (const form of singular(last)) {
      const kind = phrases.get([...parts.slice(0, -1), form].join(' '));
      if (kind !== undefined) return { kind, length: n, plural: form !== last && !(kind === 'deer') };
    }
  }
  return undefined;
}

/** A colour or material at token `i` (two-word colours first): its name, colour and length. */
function colourAt(words: readonly string[], i: number): { name: string; rgb: Rgb; length: number } | undefined {
  const { colours, words: sceneWords } = lexicon();
  const { materials } = subjectLexicon().lexicon;
  const word = words[i];
  if (word === undefined || word === ',') return undefined;
  const modifier = sceneWords.modifiers[word];
  const next = words[i + 1];
  if (next !== undefined && colours[`${word}${next}`] !== undefined) return { name: `${word}${next}`, rgb: hexToRgb(colours[`${word}${next}`]!), length: 2 };
  if (modifier !== undefined && next !== undefined) {
    const inner = colourAt(words, i + 1);
    if (inner) return { ...inner, rgb: applyModifier(inner.rgb, modifier), length: inner.length + 1 };
  }
  // A colour word followed by a basic colour ("sapphire blue"): the specific word carries it.
  const hex = colours[word] ?? materials[word];
  if (hex === undefined) return undefined;
  const basic = next !== undefined && ['blue', 'green', 'red', 'white', 'yellow', 'purple', 'pink', 'grey', 'gray', 'orange', 'brown', 'black'].includes(next);
  return { name: word, rgb: hexToRgb(hex), length: basic ? 2 : 1 };
}

/** At most this many drawn subjects per prompt. */
const MAX_SUBJECTS = 4;

const STOP = new Set([',', 'and', 'with', 'the', 'a', 'an', 'at', 'on', 'in', 'of', 'above', 'below', 'over', 'under', 'beside', 'behind', 'near', 'by', 'under', 'against', 'from', 'to', 'into', 'across', 'through', 'under', 'beneath']);
const AFTER_COLOUR = new Set([undefined, ',', 'and', 'on', 'above', 'below', 'beside', 'behind', 'in', 'at', 'under', 'with', 'against', 'over', 'near', 'by', 'beneath', 'upon', 'atop', 'before', 'beyond', 'next', 'alongside', 'while', 'under']);

/** Reads the subjects of `prompt` (none when it names none the lexicon knows). */
export function readSubjects(prompt: string): SubjectReading {
  const { lexicon: table } = subjectLexicon();
  const words = tokens(prompt);
  const nouns = new Set<string>();
  const found: { kind: string; start: number; end: number; count: number; colour: ReturnType<typeof colourAt>; relation?: { type: Relation; at: number } }[] = [];
  for (let i = 0; i < words.length; i++) {
    const noun = nounAt(words, i);
    if (!noun) continue;
    const entry = table.subjects[noun.kind]!;
    // "pine" in "pine green", "cherry" in "cherry red": a colour, not a tree.
    if (noun.length === 1 && colourAt(words, i)?.length === 2) continue;
    const start = i;
    const end = i + noun.length;
    // Back over the adjectives: the nearest colour, then a count ("three crimson sailboats", "a pair of deer").
    let colour: ReturnType<typeof colourAt>;
    let count = 0;
    let countWord: string | undefined;
    for (let j = start - 1; j >= Math.max(0, start - 5); j--) {
      const w = words[j]!;
      if (w === ',') break;
      const n = table.counts[w] ?? (/^\d+$/.test(w) ? Number(w) : undefined);
      if (n !== undefined) {
        count = n;
        countWord = w;
        break;
      }
      if (colour === undefined) {
        const wider = j > 0 ? colourAt(words, j - 1) : undefined;
        const here = colourAt(words, j);
        if (wider && j - 1 + wider.length === j + 1) {
          colour = wider;
          j--;
          continue;
        }
        if (here && j + here.length <= start) {
          colour = here;
          continue;
        }
      }
      if (w !== 'of' && STOP.has(w)) break;
      if (w !== 'of' && nounAt(words, j) !== undefined) break;
    }
    if (count === 0 || (count === 1 && noun.plural)) count = noun.plural ? (entry.flock ? 1 : entry.plural ?? ((entry.height ?? 0) > 0.3 ? 2 : 3)) : 1;
    if (entry.crowd !== undefined && (countWord === undefined || countWord === 'a' || countWord === 'an')) count = entry.crowd;
    for (let j = start; j < end; j++) nouns.add(words[j]!);
    // After the noun: "painted crimson", "of emerald", "in deep red".
    let k = end;
    if (colour === undefined && table.binders.includes(words[k] ?? '')) {
      for (let j = k + 1; j <= k + 2 && j < words.length; j++) {
        const c = colourAt(words, j);
        if (c && AFTER_COLOUR.has(words[j + c.length])) {
          colour = c;
          k = j + c.length;
          break;
        }
        if (!['a', 'an', 'the', 'of', 'in', 'with'].includes(words[j]!)) break;
      }
    }
    // A relation to the next subject: "X on Y", "X in front of Y".
    let relation: { type: Relation; at: number } | undefined;
    for (let j = k; j < Math.min(words.length, k + 3); j++) {
      const three = `${words[j]} ${words[j + 1]} ${words[j + 2]}`;
      const two = `${words[j]} ${words[j + 1]}`;
      const type = table.relations[three] ?? table.relations[two] ?? table.relations[words[j]!];
      if (type !== undefined) {
        relation = { type, at: j };
        break;
      }
      if (words[j] === ',' || words[j] === 'and') break;
    }
    // A subject named again ("a traveler … the figure") is the same subject, unless it is coloured otherwise.
    const again = found.find((f) => f.kind === noun.kind);
    if (again && (colour === undefined || again.colour?.name === colour.name)) {
      i = end - 1;
      continue;
    }
    // Long prompts name many things: the first few drawn subjects lead, the rest stay in the scene words.
    if (!entry.scenery && found.filter((f) => !table.subjects[f.kind]!.scenery).length >= MAX_SUBJECTS) {
      i = end - 1;
      continue;
    }
    found.push({ kind: noun.kind, start, end, count: Math.min(12, Math.max(1, count)), colour, ...(relation ? { relation } : {}) });
    i = end - 1;
  }
  // Resolve relations to the first subject after the preposition (within a few words).
  const subjects: SubjectIntent[] = [];
  const bound = new Set<string>();
  found.forEach((f, index) => {
    let relationTarget: SubjectIntent['relation'];
    if (f.relation) {
      const target = found.findIndex((g, gi) => gi > index && g.start > f.relation!.at && g.start <= f.relation!.at + 6);
      if (target >= 0) relationTarget = { type: f.relation.type, target };
    }
    if (f.colour) bound.add(f.colour.name);
    const entry = table.subjects[f.kind]!;
    subjects.push({ kind: f.kind, entry, count: f.count, colour: f.colour ? f.colour.rgb : undefined, colourName: f.colour?.name, relation: relationTarget });
  });
  return { subjects, bound, nouns };
}
