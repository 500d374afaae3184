import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../shared/clock.ts';
import { newUuid } from '../shared/ids.ts';
import type { ApiKeyHashKind, ApiKeyRecord, ApiKeySource, TaskStore } from '../store/task-store.ts';
import type { Principal } from './task-service.ts';

/** Bare SHA-256 of a key, hex: how keys were stored before the key-hash secret existed. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** How keys are hashed for storage and lookup. */
export interface KeyHasher {
  readonly kind: ApiKeyHashKind;
  hash(key: string): string;
}

/**
 * HMAC-SHA256 with the server's key-hash secret: a copy of the database alone does not let
 * anyone test guesses against the stored hashes.
 */
export function hmacKeyHasher(secret: string): KeyHasher {
  return { kind: 'hmac', hash: (key) => createHmac('sha256', secret).update(key, 'utf8').digest('hex') };
}

/** Bare SHA-256 (no server secret configured: a cluster without KILN_KEY_HASH_SECRET). */
export const sha256KeyHasher: KeyHasher = { kind: 'sha256', hash: hashApiKey };

/** A new key: `kiln_` + 32 random bytes in base64url. */
export function generateApiKey(): string {
  return `kiln_${randomBytes(32).toString('base64url')}`;
}

/** A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** What an operator sees of a new or rotated key; `key` and `webhookSecret` are shown once. */
export interface IssuedKey {
  readonly id: string;
  readonly key: string;
  /** The key's webhook secret when it was made now; `null` when it stays as it was. */
  readonly webhookSecret: string | null;
  readonly label: string;
}

type Verified = Principal & { webhookSecret: string | null };

/** How long a key lookup is trusted: a key revoked or changed in the store takes effect on every process within this time. */
const CACHE_MS = 5_000;
/** Bound on cached lookups (misses included), so random keys cannot grow the cache without limit. */
const CACHE_MAX = 10_000;
/** How long a replaced webhook secret keeps signing beside the new one. */
export const WEBHOOK_SECRET_OVERLAP_MS = 24 * 3_600_000;
/** Characters of a key kept as its hint (`kiln_` and four more). */
const HINT_LENGTH = 9;

const hintOf = (key: string): string => `${key.slice(0, HINT_LENGTH)}…`;

/**
 * API keys, stored hashed; the store is the authority (keys are created, revoked and rotated
 * with `kiln keys …`, and KILN_API_KEYS is reconciled at start). Lookups (hits and misses) are
 * cached per process for a few seconds, so the store sees at most one query per key and
 * interval, and a change made by another process is seen within `CACHE_MS`.
 */
export class ApiKeys {
  private readonly cache = new Map<string, { verified: Verified | undefined; at: number }>();
  private readonly active = new Map<string, { active: boolean; at: number }>();

  constructor(
    private readonly store: TaskStore,
    private readonly clock: Clock,
    private readonly hasher: KeyHasher = sha256KeyHasher,
  ) {}

  async verify(key: string): Promise<Verified | undefined> {
    if (typeof key !== 'string' || key.length === 0 || key.length > 512) return undefined;
    const hash = this.hasher.hash(key);
    const now = performance.now();
    const cached = this.cache.get(hash);
    if (cached && now - cached.at < CACHE_MS) return cached.verified;
    const record = await this.find(key, hash);
    // The hash comparison in SQL is by equality; compare again in constant time as a belt.
    const verified =
      record && record.revokedAt == null && timingSafeEqual(Buffer.from(record.hash), Buffer.from(hash))
        ? { apiKeyId: record.id, webhookSecret: record.webhookSecret }
        : undefined;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(hash, { verified, at: now });
    return verified;
  }

  /** The record of a key, re-hashing a row stored as bare SHA-256 the first time its key is seen. */
  private async find(key: string, hash: string): Promise<ApiKeyRecord | undefined> {
    const record = await this.store.findApiKeyByHash(hash);
    if (record || this.hasher.kind === 'sha256') return record;
    const legacy = await this.store.findApiKeyByHash(hashApiKey(key));
    if (!legacy || legacy.hashKind === 'hmac') return undefined;
    await this.store.updateApiKey(legacy.id, { hash, hashKind: this.hasher.kind });
    return { ...legacy, hash, hashKind: this.hasher.kind };
  }

  /** Whether a key id is still valid (not revoked, not deleted); cached like `verify`. */
  async isActive(apiKeyId: string): Promise<boolean> {
    const now = performance.now();
    const cached = this.active.get(apiKeyId);
    if (cached && now - cached.at < CACHE_MS) return cached.active;
    const record = await this.store.findApiKeyById(apiKeyId);
    const active = record !== undefined && record.revokedAt == null;
    if (this.active.size >= CACHE_MAX) this.active.clear();
    this.active.set(apiKeyId, { active, at: now });
    return active;
  }

  /** Adds a given key (idempotent by hash). */
  async add(key: string, label: string, webhookSecret: string | null = null, source: ApiKeySource | null = null): Promise<void> {
    await this.store.insertApiKey({
      id: newUuid(),
      hash: this.hasher.hash(key),
      hashKind: this.hasher.kind,
      label,
      webhookSecret,
      createdAt: this.clock.now(),
      source,
      hint: hintOf(key),
    });
  }

  /** Makes a new key with its own webhook secret; both are in the answer and nowhere else in clear. */
  async create(label: string, source: ApiKeySource = 'cli'): Promise<IssuedKey> {
    const key = generateApiKey();
    const webhookSecret = generateWebhookSecret();
    const id = newUuid();
    await this.store.insertApiKey({
      id,
      hash: this.hasher.hash(key),
      hashKind: this.hasher.kind,
      label,
      webhookSecret,
      createdAt: this.clock.now(),
      source,
      hint: hintOf(key),
    });
    return { id, key, webhookSecret, label };
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.store.listApiKeys();
  }

  /** Revokes a key; its requests are refused within `CACHE_MS` on every process. */
  async revoke(id: string): Promise<boolean> {
    const revoked = await this.store.revokeApiKey(id, this.clock.now());
    this.cache.clear();
    this.active.delete(id);
    return revoked;
  }

  /** Replaces a key by a new one under the same id (its tasks and images stay its own); the old key stops working. */
  async rotate(id: string): Promise<IssuedKey | undefined> {
    const record = await this.store.findApiKeyById(id);
    if (!record || record.revokedAt != null) return undefined;
    const key = generateApiKey();
    await this.store.updateApiKey(id, { hash: this.hasher.hash(key), hashKind: this.hasher.kind, hint: hintOf(key) });
    this.cache.clear();
    return { id, key, webhookSecret: null, label: record.label };
  }

  /**
   * Gives a key a new webhook secret. The old one is kept beside it for
   * `WEBHOOK_SECRET_OVERLAP_MS`, so receivers can switch without losing a delivery.
   */
  async rotateWebhookSecret(id: string): Promise<IssuedKey | undefined> {
    const record = await this.store.findApiKeyById(id);
    if (!record || record.revokedAt != null) return undefined;
    const webhookSecret = generateWebhookSecret();
    await this.store.updateApiKey(id, {
      webhookSecret,
      previousWebhookSecret: record.webhookSecret,
      previousWebhookSecretUntil: record.webhookSecret === null ? null : this.clock.now() + WEBHOOK_SECRET_OVERLAP_MS,
    });
    return { id, key: '', webhookSecret, label: record.label };
  }

  /** The secrets a key's webhooks are signed with: the current one, and the previous one during its overlap. */
  async webhookSecrets(apiKeyId: string): Promise<string[]> {
    const record = await this.store.findApiKeyById(apiKeyId);
    if (!record) return [];
    const secrets = record.webhookSecret === null ? [] : [record.webhookSecret];
    const until = record.previousWebhookSecretUntil ?? 0;
    if (record.previousWebhookSecret && until > this.clock.now()) secrets.push(record.previousWebhookSecret);
    return secrets;
  }

  /**
   * Makes the store match KILN_API_KEYS: listed keys are added (with `webhookSecret`, which also
   * replaces the secret of listed keys that have another one), and keys an earlier start added
   * from the list but that it no longer names are revoked. Keys made with the CLI are untouched.
   */
  async reconcile(configured: readonly string[], webhookSecret: string | null): Promise<{ added: number; revoked: number }> {
    const listed = new Set<string>();
    let added = 0;
    for (const key of configured) {
      const hash = this.hasher.hash(key);
      let record = await this.find(key, hash);
      if (!record) {
        await this.add(key, 'configured (KILN_API_KEYS)', webhookSecret, 'config');
        record = await this.store.findApiKeyByHash(hash);
        added++;
      } else if (webhookSecret !== null && record.webhookSecret !== webhookSecret && record.source === 'config') {
        await this.store.updateApiKey(record.id, { webhookSecret });
      }
      if (record) listed.add(record.id);
    }
    let revoked = 0;
    for (const record of await this.store.listApiKeys()) {
      if (record.source !== 'config' || record.revokedAt != null || listed.has(record.id)) continue;
      if (await this.store.revokeApiKey(record.id, this.clock.now())) revoked++;
    }
    this.cache.clear();
    return { added, revoked };
  }

  /** Keys that are not revoked. */
  async count(): Promise<number> {
    return (await this.store.listApiKeys()).filter((record) => record.revokedAt == null).length;
  }
}
