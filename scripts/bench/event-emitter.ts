/**
 * Child process of the cluster benchmark: emits `count` result events for one task on the Redis
 * event bus, each carrying its send time (ms since the epoch, sub-millisecond), then exits.
 * Usage: event-emitter.ts <redisUrl> <prefix> <taskUUID> <count>
 */
import { RedisTaskEvents } from '../../src/events/redis-task-events.ts';

const [redisUrl, prefix, taskUUID, count] = process.argv.slice(2) as [string, string, string, string];
const bus = new RedisTaskEvents({ redisUrl, prefix });
for (let i = 0; i < Number(count); i++) {
  await bus.emit({ type: 'result', taskUUID, item: { index: i, sentAt: performance.timeOrigin + performance.now() } });
  // Paced like images finishing, not a flood: the latency of one event is what is measured.
  await new Promise((resolve) => setTimeout(resolve, 2));
}
await bus.emit({ type: 'end', taskUUID });
await bus.close();
