/**
 * A `net.connect` lookup function that refuses forbidden addresses.
 *
 * It runs inside the socket's own connect, so the address that is checked is the address that
 * is connected to: a DNS answer that changes between a check and the connect (DNS rebinding)
 * cannot slip through. Every address of the answer must pass, not just the first, because the
 * socket may fall back to any of them (happy eyeballs).
 */
import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import { checkAddress } from './address-guard.ts';
import { FetchError } from './fetch-error.ts';

export function createGuardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    const lookupOptions: dns.LookupAllOptions = { all: true, family: options.family ?? 0 };
    if (options.hints !== undefined) lookupOptions.hints = options.hints;
    dns.lookup(hostname, lookupOptions, (error, addresses) => {
      if (error) {
        callback(error, '');
        return;
      }
      const first = addresses[0];
      if (first === undefined) {
        callback(Object.assign(new Error(`No address for ${hostname}`), { code: 'ENOTFOUND' }), '');
        return;
      }
      for (const { address } of addresses) {
        const verdict = checkAddress(address, allowPrivate);
        if (!verdict.allowed) {
          callback(blockedAddress(hostname, address, verdict.range), '');
          return;
        }
      }
      if (options.all) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

export function blockedAddress(host: string, address: string, range: string): FetchError {
  const what = host === address ? `The address ${address}` : `The host ${host} resolves to ${address}, which`;
  return new FetchError('blockedAddress', `${what} is a ${range} address; only public addresses may be fetched.`, {
    address,
  });
}
