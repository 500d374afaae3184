/**
 * Fair sharing and money across a real cluster (docs/tenancy.md): two API processes and one
 * worker on Redis (BullMQ), PostgreSQL and S3. Fair order on BullMQ between two keys, one rate
 * limit for both API processes, and a budget that 20 submissions spread over both API processes
 * cannot overspend.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { runKeysCommand } from '../src/cli/keys-command.ts';
import { startCluster, type Cluster } from './helpers/cluster.ts';
import { serviceProblem } from './helpers/services.ts';

const skip = (await serviceProblem('redis')) ?? (await serviceProblem('postgres'));

const STUDIO = 'kiln:studio@1';
const O3 = 'klingai:kling-image@o3';

function inference(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    taskType: 'imageInference',
    taskUUID: randomUUID(),
    model: STUDIO,
    positivePrompt: 'a lighthouse at dusk',
    width: 256,
    height: 256,
    numberResults: 1,
    includeCost: true,
    ...fields,
  };
}

async function post(url: string, key: string, tasks: unknown[]): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${url}/v1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(tasks),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

async function usage(url: string, key: string): Promise<any> {
  const response = await fetch(`${url}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200);
  return response.json();
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 40_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('tenancy across a cluster (BullMQ, PostgreSQL, Redis)', { skip, timeout: 180_000 }, () => {
  let cluster: Cluster;
  const newKey = async (...args: string[]): Promise<{ id: string; key: string }> => {
    let out = '';
    let err = '';
    const code = await runKeysCommand(['create', ...args, '--json'], { env: cluster.env, out: (t) => (out += t), err: (t) => (err += t) });
    assert.equal(code, 0, err);
    return JSON.parse(out) as { id: string; key: string };
  };
  before(async () => {
    cluster = await startCluster({ apis: 2, workers: 1, env: { KILN_QUEUE_CONCURRENCY: '1' } });
  });
  after(() => cluster?.close());

  test("fair order on BullMQ: B's image starts right after the image running when it came, A's stay in order", async () => {
    const a = await newKey();
    const b = await newKey();
    const [api0, api1] = cluster.apis.map((api) => api.url) as [string, string];
    // A: 40 images of 1 024×1 024 (slow enough on one studio thread to pile up), one task per request.
    const aTasks = Array.from({ length: 40 }, (_, i) => inference({ positivePrompt: `a tower number ${i}`, width: 1024, height: 1024, deliveryMethod: 'async' }));
    for (const task of aTasks) assert.equal((await post(api0, a.key, [task])).status, 200);
    const doneBefore = (await usage(api0, a.key)).totals.images as number;
    const bTask = inference({ positivePrompt: 'a small boat', deliveryMethod: 'async' });
    assert.equal((await post(api1, b.key, [bTask])).status, 200);
    await until(async () => (await usage(api1, b.key)).totals.images === 1, "B's image");
    const bTime = Date.parse((await usage(api1, b.key)).rows[0].time);
    await until(async () => (await usage(api0, a.key)).totals.images === 40, "A's 40 images", 120_000);
    const aRows = (await usage(api0, a.key)).rows as { taskUUID: string; time: string }[];
    const aBeforeB = aRows.filter((row) => Date.parse(row.time) < bTime).length;
    // One worker slot: at most the A image running when B came (and one finishing in the same ms).
    console.log(`fairness: ${doneBefore} of A done when B was sent, ${aBeforeB} before B`);
    assert.ok(aBeforeB <= doneBefore + 2, `${aBeforeB} of A's images finished before B's (${doneBefore} were done when B was sent)`);
    assert.ok(aBeforeB < 30, 'B did not wait for A');
    const timeOf = new Map(aRows.map((row) => [row.taskUUID, Date.parse(row.time)]));
    const times = aTasks.map((task) => timeOf.get(String(task.taskUUID)) ?? Number.NaN);
    for (let i = 1; i < times.length; i++) assert.ok(times[i - 1]! <= times[i]!, `A's task ${i} finished before task ${i - 1}`);
  });

  test("fairness counts images on BullMQ too: A's started 12-image task hands its slot back to B's one image", async () => {
    const a = await newKey();
    const b = await newKey();
    const [api0, api1] = cluster.apis.map((api) => api.url) as [string, string];
    const big = inference({ positivePrompt: 'a harbour crane', numberResults: 12, width: 1024, height: 1024, deliveryMethod: 'async' });
    const next = inference({ positivePrompt: 'a second crane', numberResults: 4, width: 1024, height: 1024, deliveryMethod: 'async' });
    assert.equal((await post(api0, a.key, [big])).status, 200);
    assert.equal((await post(api0, a.key, [next])).status, 200);
    await until(async () => (await usage(api0, a.key)).totals.images >= 1, "A's first image");
    assert.equal((await post(api1, b.key, [inference({ positivePrompt: 'a small boat', deliveryMethod: 'async' })])).status, 200);
    // Read once B is queued: what A has in flight then may still finish first.
    const doneBefore = (await usage(api0, a.key)).totals.images as number;
    await until(async () => (await usage(api1, b.key)).totals.images === 1, "B's image");
    const bTime = Date.parse((await usage(api1, b.key)).rows[0].time);
    await until(async () => (await usage(api0, a.key)).totals.images === 16, "A's 16 images", 120_000);
    const aRows = (await usage(api0, a.key)).rows as { taskUUID: string; imageUUID: string; time: string }[];
    const aBeforeB = aRows.filter((row) => Date.parse(row.time) < bTime).length;
    console.log(`fairness in images: ${doneBefore} of A's 16 done when B was sent, ${aBeforeB} before B`);
    // On this worker's one slot the studio engine renders up to two images of a task at once while
    // up to two more are encoded and stored: those in flight when B came may finish first, but no
    // image of A starts after B is queued (without the hand-back, all twelve would be before B).
    assert.ok(aBeforeB <= doneBefore + 4, `${aBeforeB} of A's images finished before B's (${doneBefore} were done when B was sent)`);
    assert.ok(aBeforeB < 12, 'B did not wait for the rest of the big task');
    const bigRows = aRows.filter((row) => row.taskUUID === big.taskUUID);
    assert.equal(new Set(bigRows.map((row) => row.imageUUID)).size, 12, 'the big task resumed without making an image twice');
    const nextRows = aRows.filter((row) => row.taskUUID === next.taskUUID);
    const lastBig = Math.max(...bigRows.map((row) => Date.parse(row.time)));
    assert.ok(nextRows.every((row) => Date.parse(row.time) >= lastBig), "A's second task waited for its first (FIFO within a key)");
  });

  test('one rate limit for every API process (Redis token bucket)', async () => {
    const k = await newKey('--rate', '1');
    const [api0, api1] = cluster.apis.map((api) => api.url) as [string, string];
    assert.equal((await post(api0, k.key, [inference({ deliveryMethod: 'async' })])).status, 200);
    const task = inference({ deliveryMethod: 'async' });
    const refused = await post(api1, k.key, [task]);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.errors[0].code, 'rateLimitExceeded');
    assert.equal(refused.body.errors[0].taskUUID, task.taskUUID);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  });

  test('20 submissions over two API processes racing for the last dollars never overspend (PostgreSQL)', async () => {
    // 0.28 USD: ten O3 images at 0.028.
    const k = await newKey('--budget', '0.28', '--budget-period', 'month');
    const urls = cluster.apis.map((api) => api.url);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post(urls[i % urls.length]!, k.key, [inference({ model: O3, width: 1024, height: 1024, deliveryMethod: 'async' })])),
    );
    assert.equal(answers.filter((a) => a.status === 200).length, 10);
    const refused = answers.filter((a) => a.status !== 200);
    assert.equal(refused.length, 10);
    for (const answer of refused) {
      assert.equal(answer.status, 402);
      assert.equal(answer.body.errors[0].code, 'insufficientCredits');
    }
    await until(async () => (await usage(urls[0]!, k.key)).totals.images === 10, 'ten charged images', 120_000);
    assert.deepEqual((await usage(urls[1]!, k.key)).totals, { images: 10, cost: 0.28 });
  });
});
