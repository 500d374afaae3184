import dns from 'node:dns/promises';
import { checkAddress, isIpLiteral } from '../net/address-guard.ts';

/**
 * Checks, at validation time, that a webhook or upload URL may be delivered to: http(s), and a
 * host whose every address is public (unless private targets are allowed). Returns the problem
 * in words, or `undefined` when the target is fine. The connect-time check in `net/` still runs
 * on every attempt; this one only lets the client hear about a bad target at once.
 */
export async function checkDeliveryTarget(url: string, allowPrivate: boolean, timeoutMs = 3_000): Promise<string | undefined> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'It must be an absolute http:// or https:// URL.';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'It must be an http:// or https:// URL.';
  if (parsed.username || parsed.password) return 'Credentials in the URL are not allowed.';
  const host = parsed.hostname;
  let addresses: string[];
  if (isIpLiteral(host)) addresses = [host];
  else {
    try {
      const answer = await Promise.race([
        dns.lookup(host, { all: true }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), timeoutMs).unref()),
      ]);
      addresses = answer.map((a) => a.address);
    } catch {
      return `The host ${host} could not be resolved.`;
    }
  }
  for (const address of addresses) {
    const verdict = checkAddress(address, allowPrivate);
    if (!verdict.allowed) {
      return `The host ${host} is a ${verdict.range} address (${address}); only public addresses are allowed.`;
    }
  }
  return undefined;
}
