"""The CPU a command's run cost the rest of the machine (a database server, with nothing else running).

    python3 engine/benches/cpu_beside.py COMMAND [ARGS…]

Runs the command and prints the machine's busy CPU seconds meanwhile (`/proc/stat`, all but idle
and I/O wait), the command's own (its children's `times()`), and the rest: on a quiet machine,
what the command made PostgreSQL spend, e.g. `python3 engine/benches/cpu_beside.py
target/release/deps/engine-… approvals --chain 5 --clients 64 --secs 20 --postgres`. The
set-up's seconds count too: a long measuring time keeps them small. Figures: BENCHMARKS.md,
issue 10, stop 33.
"""

import os
import subprocess
import sys

HZ = os.sysconf('SC_CLK_TCK')


def busy():
    """The machine's busy CPU seconds since boot: every column of /proc/stat's cpu line but idle and iowait."""
    with open('/proc/stat') as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / HZ


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ('-h', '--help'):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    b0, t0 = busy(), os.times()
    status = subprocess.run(sys.argv[1:]).returncode
    t1, b1 = os.times(), busy()
    own = (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
    print(f'machine busy {b1 - b0:.2f} s; the command {own:.2f} s; the rest {b1 - b0 - own:.2f} s')
    sys.exit(status)


if __name__ == '__main__':
    main()
