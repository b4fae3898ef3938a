import type { Duplex } from 'node:stream';
import { liveClients } from '../connection-loss.js';
import { finishedWriting } from '../fleet/end-promptly.js';

/**
 * A command's end should not wait for each server to hang up. pg's `end()` writes Terminate,
 * half-closes the socket, and resolves only when the server closes its side, which it does after
 * its backend has exited: a few ms on a quiet shard, 50-120 ms under load (measured on `usage`),
 * and node stays up for each socket until then. Once every connection has sent its Terminate and
 * closed its own side (the socket's 'finish'), nothing of ours is left to say: the sockets are
 * unref'd so that node exits, and the server ends its backend on the Terminate it has read.
 *
 * Every pg client goes through `watchConnection` (src/connection-loss.ts), so the catalog's pool
 * and each shard's connections are covered alike. A connection that close() does not end (one a
 * command left checked out) never finishes, and then the ordinary close decides, as before.
 */
export async function closePromptly(close: () => Promise<unknown>): Promise<void> {
  const closing = close();
  // The late rejection of a close that lost the race is nobody's error.
  closing.catch(() => undefined);
  const sockets = liveClients().map((c) => c.connection.stream);
  const finished = Promise.all(sockets.map(finishedWriting)).then(() => {
    for (const socket of sockets) (socket as Duplex & { unref?: () => void }).unref?.();
  });
  await Promise.race([closing, finished]);
}
