/**
 * Caller identities. Remote callers present a bearer token from the config; local callers read a
 * per-user token file that the agent keeps in the tokens directory, readable only by that user
 * (mode 0400, owned by the user), so the token proves the local user. Tokens survive restarts.
 * Over mutual TLS, the client certificate's common name is the identity.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import type { Identity } from './policy.js';

export interface LocalUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Users that get a token file: root and ordinary accounts (uid 1000–59999) from /etc/passwd. */
export function localUsers(passwd = '/etc/passwd'): LocalUser[] {
  const out: LocalUser[] = [];
  for (const line of readFileSync(passwd, 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    const u = Number(uid);
    if (name && (u === 0 || (u >= 1000 && u < 60000))) out.push({ name, uid: u, gid: Number(gid) });
  }
  return out;
}

export class Identities {
  private readonly byToken = new Map<string, Identity>();

  constructor(remote: Readonly<Record<string, { name: string; admin: boolean }>>, admins: readonly string[]) {
    for (const [token, who] of Object.entries(remote))
      this.byToken.set(token, { name: who.name, admin: who.admin || admins.includes(who.name) });
    this.admins = admins;
  }

  private readonly admins: readonly string[];

  /** Ensures a token file per local user (kept if valid), and learns them. */
  provisionLocal(dir: string, users: readonly LocalUser[]): void {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    for (const u of users) {
      const file = join(dir, u.name);
      let token = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
      if (!/^[\w-]{32,}$/.test(token)) {
        token = randomBytes(24).toString('base64url');
        writeFileSync(file, `${token}\n`, { mode: 0o400 });
      }
      chmodSync(file, 0o400);
      chownSync(file, u.uid, u.gid);
      this.byToken.set(token, { name: u.name, admin: this.admins.includes(u.name) });
    }
  }

  /**
   * The identity of a mutual-TLS caller: the common name of the certificate it presented, which
   * the handshake already checked against the client CA. Undefined on any other connection.
   */
  fromCertificate(socket: unknown): Identity | undefined {
    if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
    const cn = socket.getPeerCertificate().subject?.CN;
    const name = Array.isArray(cn) ? cn[0] : cn;
    if (typeof name !== 'string' || name === '') return undefined;
    return { name, admin: this.admins.includes(name) };
  }

  /** The identity behind an `Authorization: Bearer` header, or undefined. */
  resolve(header: string | undefined): Identity | undefined {
    const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!m) return undefined;
    const given = Buffer.from(m[1] as string);
    for (const [token, who] of this.byToken) {
      const t = Buffer.from(token);
      if (t.length === given.length && timingSafeEqual(t, given)) return who;
    }
    return undefined;
  }
}
