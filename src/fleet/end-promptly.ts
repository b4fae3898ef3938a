import type { Duplex } from 'node:stream';
import type pg from 'pg';

/**
 * End one connection opened outside the fleet without waiting for the server to hang up (as
 * src/cli/prompt-exit.ts does for the fleet's at a command's end): pg's `end()` sends Terminate,
 * half-closes the socket and resolves only once the server has closed its side, 50-120 ms under
 * load and as long as a slow server likes. Once our side is written, the socket is unref'd and
 * the server ends its backend on the Terminate it read.
 */
export async function endPromptly(c: pg.Client): Promise<void> {
  const ending = c.end().catch(() => undefined);
  const socket = (c as unknown as { connection?: { stream?: Duplex } }).connection?.stream;
  if (!socket) return void (await ending);
  await Promise.race([ending, finishedWriting(socket).then(() => (socket as Duplex & { unref?: () => void }).unref?.())]);
}

/** Resolves once our side of the socket is written and closed ('finish'), or the socket is gone. */
export function finishedWriting(socket: Duplex): Promise<void> {
  if (socket.writableFinished || socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('finish', resolve);
    socket.once('close', resolve);
  });
}
