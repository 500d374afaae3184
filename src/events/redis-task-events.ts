/**
 * The task event bus over Redis pub/sub, for API and worker processes that run apart. One
 * publisher and one subscriber connection per process; one channel per watched task,
 * `<prefix>:task:<lower-case taskUUID>`, shared by every local watcher of that task.
 */
import type { Redis } from 'ioredis';
import { ApiError } from '../errors/index.ts';
import type { Logger } from '../shared/logger.ts';
import { closeRedisClient, createRedisClient, REDIS_CALL_BUDGET_MS, withDeadline } from './redis-clients.ts';
import { EventBusUnavailableError, type TaskEvent, type TaskEventBus, type TaskListener } from './task-events.ts';

export interface RedisTaskEventsOptions {
  /** `redis://[user:password@]host[:port][/db]` (or `rediss://`). */
  readonly redisUrl: string;
  /** Namespace of the channels; processes that share events must share it. Default `kiln`. */
  readonly prefix?: string;
  readonly logger?: Logger;
}

/** One watched task in this process: its watchers, and the SUBSCRIBE they wait for. */
interface Channel {
  readonly name: string;
  /** Watchers whose `watch` resolved; one object per call, so a listener watching twice hears twice (as asked). */
  readonly watchers: Set<{ readonly listener: TaskListener }>;
  /** Watchers holding the channel, confirmed or still waiting for the SUBSCRIBE. */
  holders: number;
  readonly subscribed: Promise<void>;
}

/** An event as it travels: errors in their Runware wire form. */
type WireEvent =
  | { readonly type: 'result'; readonly taskUUID: string; readonly item: Readonly<Record<string, unknown>> }
  | {
      readonly type: 'error' | 'notice';
      readonly taskUUID: string;
      readonly error: Record<string, unknown>;
      /** HTTP status of the code, for readers of the channel that are not Kiln (informational). */
      readonly status: number;
      /** Only when the error says so explicitly; otherwise it follows from the code. */
      readonly retryable?: boolean;
    }
  | { readonly type: 'end'; readonly taskUUID: string }
  | { readonly type: 'cancel'; readonly taskUUID: string }
  | { readonly type: 'progress'; readonly taskUUID: string; readonly items: readonly Readonly<Record<string, unknown>>[] };

export class RedisTaskEvents implements TaskEventBus {
  private readonly prefix: string;
  private readonly logger: Logger | undefined;
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly channels = new Map<string, Channel>();
  private closed = false;

  constructor(options: RedisTaskEventsOptions) {
    this.prefix = options.prefix ?? 'kiln';
    this.logger = options.logger;
    this.publisher = createRedisClient({ redisUrl: options.redisUrl, connectionName: `${this.prefix}-events-pub`, logger: this.logger });
    // Connected at the first watch: a worker process only emits.
    this.subscriber = createRedisClient({ redisUrl: options.redisUrl, connectionName: `${this.prefix}-events-sub`, logger: this.logger, lazy: true });
    this.subscriber.on('message', (channel: string, message: string) => this.deliver(channel, message));
    // While the subscriber is cut off, what is published to its channels is lost (ioredis
    // subscribes again by itself): once it is back, its watchers are told to read the store.
    let cut = false;
    this.subscriber.on('close', () => (cut = true));
    this.subscriber.on('ready', () => {
      if (!cut) return;
      cut = false;
      this.resync();
    });
  }

  private resync(): void {
    for (const channel of this.channels.values()) {
      const taskUUID = channel.name.slice(channel.name.lastIndexOf(':') + 1);
      this.tell(channel, { type: 'resync', taskUUID });
    }
  }

  async watch(taskUUID: string, listener: TaskListener): Promise<() => void> {
    if (this.closed) throw new EventBusUnavailableError('The task event bus is closed.');
    const name = this.channelOf(taskUUID);
    let channel = this.channels.get(name);
    if (!channel) {
      channel = this.open(name);
      this.channels.set(name, channel);
    }
    channel.holders += 1;
    try {
      await channel.subscribed;
    } catch (error) {
      this.release(channel);
      throw new EventBusUnavailableError('The task event bus (Redis) cannot be reached.', { cause: error });
    }
    const watcher = { listener };
    channel.watchers.add(watcher);
    let active = true;
    const held = channel;
    return () => {
      if (!active) return;
      active = false;
      held.watchers.delete(watcher);
      this.release(held);
    };
  }

  async emit(event: TaskEvent): Promise<void> {
    // Local to each process: a resync is about this process's own connection.
    if (event.type === 'resync') return;
    try {
      const message = JSON.stringify(toWire(event));
      await withDeadline(this.publisher.publish(this.channelOf(event.taskUUID), message), REDIS_CALL_BUDGET_MS, 'PUBLISH');
    } catch (error) {
      this.logger?.warn({ err: error, taskUUID: event.taskUUID, event: event.type }, 'task event lost: not published to Redis');
    }
  }

  async ping(): Promise<void> {
    if (this.closed) throw new EventBusUnavailableError('The task event bus is closed.');
    await withDeadline(this.publisher.ping(), REDIS_CALL_BUDGET_MS, 'PING');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    await Promise.all([closeRedisClient(this.subscriber), closeRedisClient(this.publisher)]);
  }

  private channelOf(taskUUID: string): string {
    return `${this.prefix}:task:${taskUUID.toLowerCase()}`;
  }

  private open(name: string): Channel {
    const channel: Channel = {
      name,
      watchers: new Set(),
      holders: 0,
      subscribed: withDeadline(this.subscriber.subscribe(name), REDIS_CALL_BUDGET_MS, 'SUBSCRIBE').then(
        () => undefined,
        (error: unknown) => {
          // Forget a failed channel at once, so that the next watcher of the task tries again.
          if (this.channels.get(name) === channel) this.channels.delete(name);
          throw error;
        },
      ),
    };
    return channel;
  }

  /**
   * Drops one holder; the last one out unsubscribes. That includes a channel whose SUBSCRIBE
   * timed out, since it may still reach Redis from ioredis's offline queue.
   */
  private release(channel: Channel): void {
    channel.holders -= 1;
    if (channel.holders > 0) return;
    const current = this.channels.get(channel.name);
    if (current === channel) this.channels.delete(channel.name);
    // A newer channel of the same task has sent its own SUBSCRIBE: leave the subscription to it.
    else if (current !== undefined) return;
    if (this.closed) return;
    // Commands on one connection run in order, so a later SUBSCRIBE of the same task wins over this.
    withDeadline(this.subscriber.unsubscribe(channel.name), REDIS_CALL_BUDGET_MS, 'UNSUBSCRIBE').catch((error: unknown) => {
      this.logger?.debug({ err: error, channel: channel.name }, 'UNSUBSCRIBE failed: the channel stays subscribed, its messages are ignored');
    });
  }

  private deliver(name: string, message: string): void {
    const channel = this.channels.get(name);
    if (!channel || channel.watchers.size === 0) return;
    let event: TaskEvent;
    try {
      event = fromWire(JSON.parse(message) as WireEvent);
    } catch (error) {
      this.logger?.error({ err: error, channel: name }, 'unreadable task event from Redis');
      return;
    }
    this.tell(channel, event);
  }

  private tell(channel: Channel, event: TaskEvent): void {
    for (const watcher of [...channel.watchers]) {
      // A listener's fault must not reach ioredis, which would rethrow it as an uncaught exception.
      try {
        watcher.listener(event);
      } catch (error) {
        this.logger?.error({ err: error, taskUUID: event.taskUUID, event: event.type }, 'task event listener threw');
      }
    }
  }
}

function toWire(event: Exclude<TaskEvent, { type: 'resync' }>): WireEvent {
  if (event.type !== 'error' && event.type !== 'notice') return event;
  const { retryable } = event.error.details;
  return {
    type: event.type,
    taskUUID: event.taskUUID,
    error: event.error.toJSON(),
    status: event.error.status,
    ...(retryable === undefined ? {} : { retryable }),
  };
}

function fromWire(wire: WireEvent): TaskEvent {
  switch (wire.type) {
    case 'result':
      return { type: 'result', taskUUID: wire.taskUUID, item: wire.item };
    case 'end':
    case 'cancel':
      return { type: wire.type, taskUUID: wire.taskUUID };
    case 'progress':
      return { type: 'progress', taskUUID: wire.taskUUID, items: wire.items };
    case 'error':
    case 'notice': {
      const rebuilt = ApiError.fromWire(wire.error);
      const error = wire.retryable === undefined ? rebuilt : new ApiError(rebuilt.code, rebuilt.message, { ...rebuilt.details, retryable: wire.retryable });
      return { type: wire.type, taskUUID: wire.taskUUID, error };
    }
    default:
      throw new Error(`unknown task event type ${String((wire as { type?: unknown }).type)}`);
  }
}
