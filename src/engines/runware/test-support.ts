/** Test helpers for the runware engine: a recording logger, an in-memory checkpoint, a call builder. */
import type { Logger } from '../../shared/logger.ts';
import type { EngineCheckpoint, GenerateCall, GeneratedImage, ImageSlot } from '../spec/image-engine.ts';

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A `Logger` that keeps every line (children share the list and add their bindings). */
export function recordingLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): Logger & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      if (typeof obj === 'string') lines.push({ level, msg: obj, fields: { ...bindings } });
      else lines.push({ level, msg: msg ?? '', fields: { ...bindings, ...(obj as Record<string, unknown>) } });
    };
  return {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

/** A durable-looking checkpoint kept in a map, so a second engine instance can read what the first saved. */
export class MemoryCheckpoints {
  readonly values = new Map<string, string>();
  readonly saves: { key: string; value: string }[] = [];
  for(key: string): EngineCheckpoint {
    return {
      load: async () => this.values.get(key),
      save: async (value) => {
        this.values.set(key, value);
        this.saves.push({ key, value });
      },
    };
  }
}

export interface CallOverrides extends Partial<Omit<GenerateCall, 'images'>> {
  readonly count?: number;
  readonly firstSeed?: number;
  readonly images?: readonly ImageSlot[];
}

/** A `GenerateCall` for `klingai:kling-image@o3` that records what the engine streams. */
export function makeCall(overrides: CallOverrides = {}): GenerateCall & { streamed: GeneratedImage[] } {
  const { count = 1, firstSeed = 1000, ...rest } = overrides;
  const streamed: GeneratedImage[] = [];
  const images = overrides.images ?? Array.from({ length: count }, (_, index) => ({ index, seed: firstSeed + index }));
  return {
    model: 'klingai:kling-image@o3',
    prompt: 'a lighthouse on a cliff at dusk',
    width: 1024,
    height: 1024,
    taskSeed: images[0]?.seed ?? 1,
    referenceImages: [],
    elements: [],
    output: { format: 'png', quality: 95 },
    options: {},
    signal: new AbortController().signal,
    checkpoint: new MemoryCheckpoints().for('call'),
    includeCost: true,
    onImage: (image) => void streamed.push(image),
    ...rest,
    images,
    streamed,
  };
}
