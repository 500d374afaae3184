/**
 * A BullMQ worker that takes jobs and never finishes them, for `test/bullmq-stall.test.ts`:
 * the test SIGKILLs it while it holds a job. Prints `started <jobId>` per job on stdout.
 * Reads KILN_STALL_REDIS_URL, KILN_STALL_QUEUE, KILN_STALL_PREFIX and KILN_STALL_LOCK_MS.
 */
import { BullmqQueue } from '../../src/queue/bullmq-queue.ts';

const queue = new BullmqQueue({
  redisUrl: required('KILN_STALL_REDIS_URL'),
  name: required('KILN_STALL_QUEUE'),
  prefix: required('KILN_STALL_PREFIX'),
  lockMs: Number(process.env.KILN_STALL_LOCK_MS ?? 2_000),
});
queue.process(async (job) => {
  process.stdout.write(`started ${job.id}\n`);
  // Never settles: the job stays locked by this process until the process dies.
  await new Promise<never>(() => {});
}, { concurrency: 1 });
process.stdout.write('ready\n');

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
