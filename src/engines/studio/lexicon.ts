/** The studio lexicon: data files under `lexicon/`, loaded once per thread on first use. */
import { readFileSync } from 'node:fs';

export const TIMES = ['sunrise', 'morning', 'day', 'golden', 'sunset', 'dusk', 'night', 'overcast'] as const;
export type TimeOfDay = (typeof TIMES)[number];

/** A time of day's base palette and light (hex colours, as in `lexicon/times.json`). */
export interface TimePalette {
  readonly exposure: number;
  /** Height of the sun above the horizon, as a fraction of the sky's height (negative: below). */
  readonly sunHeight: number;
  readonly skyTop: string;
  readonly skyMid: string;
  readonly skyHorizon: string;
  readonly sun: string;
  readonly cloudLit: string;
  readonly cloudShade: string;
  readonly far: string;
  readonly mid: string;
  readonly near: string;
  readonly ground: string;
  readonly water: string;
  readonly accent: string;
}

export interface SceneWords {
  readonly time: Readonly<Record<string, TimeOfDay>>;
  readonly atmosphere: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly scene: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly style: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly people: Readonly<Record<string, number>>;
  readonly modifiers: Readonly<Record<string, string>>;
}

export interface Lexicon {
  readonly colours: Readonly<Record<string, string>>;
  readonly words: SceneWords;
  readonly times: Readonly<Record<TimeOfDay, TimePalette>>;
}

let cached: Lexicon | undefined;

function readJson(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`./lexicon/${name}`, import.meta.url), 'utf8'));
}

/** The lexicon, read from its JSON files the first time it is needed. */
export function lexicon(): Lexicon {
  cached ??= {
    colours: readJson('colours.json') as Lexicon['colours'],
    words: readJson('scene-words.json') as SceneWords,
    times: readJson('times.json') as Lexicon['times'],
  };
  return cached;
}
