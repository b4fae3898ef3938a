import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';

const config = inject('fleetConfigFile');
const tmp = mkdtempSync(join(tmpdir(), 'tenantctl-cli-exit-'));
/** How long the proxy holds each server's hang-up: far longer than any command here takes. */
const HOLD_MS = 20_000;
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

/**
 * A TCP proxy in front of one PostgreSQL server that forwards every byte both ways, passes the
 * client's end (Terminate, then its FIN) on at once, but holds the server's hang-up for HOLD_MS:
 * a server slow to close its side, as a loaded one is.
 */
interface Proxy {
  server: Server;
  port: number;
  /** Connections whose client sent its end (tenantctl said goodbye). */
  clientEnded: number;
  /** Of those, the ones whose last message was a Terminate ('X', length 4). */
  terminated: number;
  connections: number;
  /** Server hang-ups passed on to the client so far (after HOLD_MS each). */
  released: number;
  sockets: Socket[];
  timers: NodeJS.Timeout[];
}

function proxy(upstreamPort: number): Promise<Proxy> {
  const p: Proxy = {
    server: undefined as unknown as Server,
    port: 0,
    clientEnded: 0,
    terminated: 0,
    connections: 0,
    released: 0,
    sockets: [],
    timers: [],
  };
  p.server = createServer({ allowHalfOpen: true }, (client) => {
    p.connections++;
    const up = connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true });
    p.sockets.push(client, up);
    client.on('error', () => undefined);
    up.on('error', () => undefined);
    let last: Buffer = Buffer.alloc(0);
    client.on('data', (d: Buffer) => {
      last = d;
      up.write(d);
    });
    up.on('data', (d) => client.write(d));
    client.on('end', () => {
      p.clientEnded++;
      if (last.subarray(-5).equals(TERMINATE)) p.terminated++;
      up.end();
    });
    up.on('end', () => {
      p.timers.push(
        setTimeout(() => {
          p.released++;
          client.end();
        }, HOLD_MS),
      );
    });
  });
  return new Promise((resolve) =>
    p.server.listen(0, '127.0.0.1', () => {
      p.port = (p.server.address() as AddressInfo).port;
      resolve(p);
    }),
  );
}

const proxies: Proxy[] = [];
afterAll(() => {
  for (const p of proxies) {
    for (const t of p.timers) clearTimeout(t);
    for (const s of p.sockets) s.destroy();
    p.server.close();
  }
  rmSync(tmp, { recursive: true, force: true });
});

describe('the end of a command', () => {
  it('exits once every connection has sent its Terminate, without waiting for the servers to hang up', async () => {
    // The catalog made first, directly: its creation closes connections mid-command (awaited, as
    // they must be), and this test is about the end of a command.
    expect((await cli(['tenant', 'list', '--json'], { config })).code).toBe(0);
    // Every server of the fleet (the catalog's and each shard's) behind its own holding proxy.
    let text = readFileSync(config, 'utf8');
    const ports = [...new Set([...text.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])))];
    for (const port of ports) {
      const p = await proxy(port);
      proxies.push(p);
      text = text.replaceAll(`127.0.0.1:${port}/`, `127.0.0.1:${p.port}/`);
    }
    const file = join(tmp, 'proxied.yaml');
    writeFileSync(file, text);

    // doctor reaches the catalog and every shard; tenant list reads the catalog's pool.
    for (const args of [
      ['tenant', 'list', '--json'],
      ['doctor', '--json'],
    ]) {
      const started = Date.now();
      const r = await cli(args, { config: file });
      const took = Date.now() - started;
      if (args[0] === 'doctor') {
        // The fleet is shared: another file's tenant half-way through its create is a failed
        // check (exit 1) that says nothing about this test. What matters is that doctor reached
        // the catalog and every shard through the proxies and said so.
        expect([0, 1], `${args.join(' ')}: ${r.stderr}`).toContain(r.code);
        const doc = JSON.parse(r.stdout) as { command: string; checks: { check: string; ok: boolean; detail: string }[] };
        expect(doc.command).toBe('doctor');
        const reach = doc.checks.filter((c) => c.check === 'catalog' || /^shard [^ ]+$/.test(c.check));
        expect(reach.filter((c) => !c.ok)).toEqual([]);
        expect(reach.map((c) => c.check)).toContain('catalog');
        expect(reach.length).toBeGreaterThan(1);
      } else {
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        expect(() => JSON.parse(r.stdout)).not.toThrow();
      }
      // No server's hang-up was passed on yet, so none was waited for (the old close awaited each).
      expect(
        proxies.reduce((n, p) => n + p.released, 0),
        `${args.join(' ')} took ${took} ms`,
      ).toBe(0);
      expect(took).toBeLessThan(HOLD_MS);
    }
    // And every connection said goodbye: a Terminate and our end of the socket, none dropped.
    const connections = proxies.reduce((n, p) => n + p.connections, 0);
    expect(connections).toBeGreaterThan(1);
    expect(proxies.reduce((n, p) => n + p.clientEnded, 0)).toBe(connections);
    expect(proxies.reduce((n, p) => n + p.terminated, 0)).toBe(connections);
  }, 60_000);
});
