// MAC address helpers. Everything inside the switch uses the canonical form
// "aa:bb:cc:dd:ee:ff" (lowercase, colons); parseMac is the single door through
// which operator input (config, CLI) gets into that form.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
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

/**
 * The internal port's MAC: `configured` (the config's bridge_mac) or, without one, a MAC
 * derived from the bridge name and the machine id, so it is the same at every start
 * (neighbours' ARP entries for the host stay right across a restart, as OVS keeps its
 * bridge-local MAC) and differs between bridges and machines. The derived MAC is
 * locally administered unicast: the first 6 bytes of SHA-256("vswitchd bridge\0" +
 * machine id + "\0" + bridge), with the I/G bit cleared and the U/L bit set.
 */
export function bridgeMac(bridge: string, configured?: string, machineId: string = readMachineId()): Mac {
  if (configured !== undefined) return parseMac(configured);
  const digest = createHash('sha256').update(`vswitchd bridge\0${machineId}\0${bridge}`).digest();
  digest[0] = (digest[0]! & 0xfe) | 0x02;
  return bytesToMac(digest);
}

/** systemd's machine id (the D-Bus copy on hosts without one); the hostname as a last resort. */
export function readMachineId(): string {
  for (const file of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (id !== '') return id;
    } catch {
      // try the next one
    }
  }
  return hostname();
}
