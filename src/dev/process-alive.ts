/**
 * Whether a process id is alive on this machine: `kill(pid, 0)` succeeds, or fails only because
 * the process is someone else's (EPERM).
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
