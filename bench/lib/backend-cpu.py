"""CPU-seconds of a PostgreSQL cluster's backends, by database, over one command.

    python3 bench/lib/backend-cpu.py POSTMASTER_PID OUT &   # then run the command
    touch OUT.stop; wait                                    # OUT: "<cpu-s> postgres <database>" per line

Every child of the postmaster is read from /proc every 20 ms; a backend's last reading is its CPU
(user + system) for its whole life, so backends that start and end during the command are counted
whole. Long-lived processes (checkpointer, walwriter, ...) show their lifetime totals: ignore them.
"""
import os
import sys
import time

pm = int(sys.argv[1])
out = sys.argv[2]
tick = os.sysconf('SC_CLK_TCK')
seen = {}
stop = out + '.stop'
while not os.path.exists(stop):
    try:
        kids = open(f'/proc/{pm}/task/{pm}/children').read().split()
    except OSError:
        kids = []
    for k in kids:
        try:
            st = open(f'/proc/{k}/stat').read().split(') ')[1].split()
            cpu = (int(st[11]) + int(st[12])) / tick
            cmd = open(f'/proc/{k}/cmdline').read().replace('\0', ' ').strip()
            name = seen.get(k, (0, cmd))[1]
            if cmd.startswith('postgres:') and not name.startswith('postgres:'):
                name = cmd
            seen[k] = (cpu, name)
        except (OSError, IndexError, ValueError):
            pass
    time.sleep(0.02)
totals = {}
for cpu, cmd in seen.values():
    parts = cmd.split()
    # "postgres: <user> <database> <client> <state>" for a backend
    key = ' '.join(parts[1:3]) if '(' in cmd else ' '.join(parts[:3])
    totals[key] = totals.get(key, 0) + cpu
with open(out, 'w') as f:
    for k, v in sorted(totals.items(), key=lambda x: -x[1]):
        f.write(f'{v:.2f} {k}\n')
