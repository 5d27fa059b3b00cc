// MAC address helpers. Everything inside the switch uses the canonical form
// "aa:bb:cc:dd:ee:ff" (lowercase, colons); parseMac is the single door through
// which operator input (config, CLI) gets into that form.

import type { Mac } from '../types.js';

const MAC_RE = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;

/** Parse "AA-BB-CC-DD-EE-FF" or "aa:bb:cc:dd:ee:ff" (one separator kind throughout) into canonical form. */
export function parseMac(s: string): Mac {
  if (typeof s !== 'string' || !MAC_RE.test(s)) {
    throw new Error(
      `invalid MAC address ${JSON.stringify(s)}: expected six two-digit hex octets separated by ':' or '-', like 02:00:00:00:00:01`,
    );
  }
  return s.toLowerCase().replaceAll('-', ':');
}

/** True for multicast and broadcast addresses: the I/G bit (low bit of the first octet) is set. */
export function isMulticastMac(mac: Mac): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

/** A MAC a station can send from: not multicast or broadcast, not all-zero (the kernel's is_valid_ether_addr). */
export function isStationMac(mac: Mac): boolean {
  return !isMulticastMac(mac) && mac !== '00:00:00:00:00:00';
}

export function macToBytes(mac: Mac): Uint8Array {
  const canonical = parseMac(mac);
  return Uint8Array.from(canonical.split(':'), (octet) => parseInt(octet, 16));
}

/** Read six bytes starting at offset (e.g. a frame's destination or source field). */
export function bytesToMac(bytes: Uint8Array, offset = 0): Mac {
  if (offset < 0 || bytes.length < offset + 6) {
    throw new Error(`bytesToMac: need 6 bytes at offset ${offset}, buffer has ${bytes.length}`);
  }
  const octets: string[] = [];
  for (let i = 0; i < 6; i++) {
    octets.push(bytes[offset + i]!.toString(16).padStart(2, '0'));
  }
  return octets.join(':');
}
