import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeImage } from '../../test/fixtures/images.ts';
import { ApiError } from '../errors/index.ts';
import { ManualClock } from '../shared/clock.ts';
import type { ImageRecord } from '../store/task-store.ts';
import { createImageInputs, type ImageInputs } from './image-inputs.ts';

const DAY = 86_400_000;
const UPLOAD = 'aaaaaaaa-0000-4000-8000-000000000001';
const GENERATED = 'aaaaaaaa-0000-4000-8000-000000000002';
const EXPIRED = 'aaaaaaaa-0000-4000-8000-000000000003';

describe('image inputs (stores as in-memory test doubles)', () => {
  const clock = new ManualClock(1_000_000);
  const records = new Map<string, ImageRecord>();
  const objects = new Map<string, Uint8Array>();
  const touched: Array<[string, number]> = [];
  let inputs: ImageInputs;

  before(async () => {
    const add = async (imageUUID: string, kind: ImageRecord['kind'], expiresAt: number | null) => {
      const bytes = await makeImage(400, 400, 'png');
      objects.set(`${imageUUID}.png`, bytes);
      records.set(imageUUID, {
        imageUUID, kind, taskUUID: null, apiKeyId: null, format: 'png', width: 400, height: 400, bytes: bytes.length,
        objectKey: `${imageUUID}.png`, createdAt: 0, expiresAt, servable: true,
      });
    };
    await add(UPLOAD, 'upload', clock.now() + DAY);
    await add(GENERATED, 'generated', null);
    await add(EXPIRED, 'generated', clock.now() - 1);
    inputs = createImageInputs({
      store: {
        getImage: async (uuid) => records.get(uuid),
        touchImage: async (uuid, expiresAt) => void touched.push([uuid, expiresAt]),
      },
      objects: { get: async (key) => (objects.has(key) ? Buffer.from(objects.get(key) as Uint8Array) : undefined) },
      clock,
      config: { allowPrivateUrls: false, uploadRetentionMs: 30 * DAY },
    });
  });
  after(() => inputs.close());

  it('resolves uploads and generations by UUID and extends the life of uploads', async () => {
    const signal = new AbortController().signal;
    const result = await inputs.resolveTaskInputs([UPLOAD, GENERATED], [], 'inputs.referenceImages', signal);
    assert.equal(result.referenceImages.length, 2);
    assert.deepEqual(touched, [[UPLOAD, clock.now() + 30 * DAY]]);
  });

  it('treats an expired image as unknown', async () => {
    await assert.rejects(
      inputs.resolveTaskInputs([EXPIRED], [], 'referenceImages', new AbortController().signal),
      (error: unknown) =>
        error instanceof ApiError && error.code === 'invalidReferenceImage' && error.details.parameter === 'referenceImages[0]',
    );
  });

  it('lays out elements and names their items in errors', async () => {
    const signal = new AbortController().signal;
    const result = await inputs.resolveTaskInputs(
      [GENERATED],
      [{ frontalImage: UPLOAD, referenceImages: [GENERATED, UPLOAD] }, { frontalImage: GENERATED, referenceImages: [] }],
      'inputs.referenceImages',
      signal,
    );
    assert.equal(result.elements.length, 2);
    assert.equal(result.elements[0]?.views.length, 2);
    assert.equal(result.elements[1]?.views.length, 0);
    assert.equal(result.elements[0]?.frontal, result.elements[0]?.views[1]);
    await assert.rejects(
      inputs.resolveTaskInputs([GENERATED], [{ frontalImage: UPLOAD, referenceImages: ['%%%'] }], 'inputs.referenceImages', signal),
      (error: unknown) => error instanceof ApiError && error.details.parameter === 'inputs.elements[0].referenceImages[0]',
    );
  });

  it('normalises uploads, naming `image` in errors', async () => {
    const stored = await inputs.normaliseUpload(`data:image/jpeg;base64,${(await makeImage(2500, 1000, 'jpg')).toString('base64')}`, new AbortController().signal);
    assert.deepEqual([stored.format, stored.width, stored.height], ['jpg', 2048, 819]);
    await assert.rejects(
      inputs.normaliseUpload('http://127.0.0.1/x.png', new AbortController().signal),
      (error: unknown) => error instanceof ApiError && error.code === 'invalidImage' && error.details.parameter === 'image',
    );
  });
});
