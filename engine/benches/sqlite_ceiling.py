"""What SQLite itself costs for the rows of an approval, without civicflow.

Issue 10 asks whether the SQLite driver (sqlx: a worker thread per connection, a hand-off per
statement, every argument copied) is what bounds the engine. This writes the same rows as a
64-client batch of the engine bench's approvals (`batch.rs`: the version's compare-and-set, the
previous hash read, three events and their leaves, the old deadline cancelled and the next
created, the open step replaced, a packed snapshot every few events), with the store's own
migrations, 2 kB pages, WAL, `synchronous=FULL`, from one thread with prepared statements
(Python's `sqlite3`, `executemany`): a ceiling for a synchronous writer on today's layout.

    python3 engine/benches/sqlite_ceiling.py [--clients 64] [--secs 5] [--events now|log]

`--events log` puts `events` in log order (a rowid table with a unique `(instance, seq)` index)
instead of clustered by instance, to price that layout. Figures: BENCHMARKS.md, issue 10, stop 28.
"""

import argparse
import glob
import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ACTED = ('{"act":{"action":"approve","actor":{"office":"科室","principal":"科室-1","role":"科室"},'
         '"at":"2025-03-03T01:00:00Z","text":null},"event":"acted","node":"s0"}')
COMPLETED = '{"event":"completed","node":"s0","outcome":"approved"}'
OPENED = '{"due_at":"2025-03-10T16:00:00Z","event":"opened","min_until":null,"node":"s1","window":null}'
LOG_ORDERED_EVENTS = """
DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; DROP TABLE events;
CREATE TABLE events (id INTEGER PRIMARY KEY, instance TEXT NOT NULL, seq INTEGER NOT NULL,
    at INTEGER NOT NULL, actor TEXT NOT NULL, role TEXT, kind TEXT NOT NULL, payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL, log_index INTEGER);
CREATE UNIQUE INDEX events_by_instance ON events (instance, seq);
"""


def chain_hash(text):
    return hashlib.sha256(text.encode()).hexdigest()


def main():
    args = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    args.add_argument('--clients', type=int, default=64, help='clients, half of them in each transaction (default 64)')
    args.add_argument('--chain', type=int, default=5, help='approvals per instance (default 5)')
    args.add_argument('--secs', type=float, default=5, help='measuring time (default 5)')
    args.add_argument('--instances', type=int, default=10_000, help='instances alive besides (default 10,000)')
    args.add_argument('--events', choices=['now', 'log'], default='now', help="events' layout (default now)")
    args.add_argument('--keep', metavar='DIR', help='write the database in DIR and leave it (for wal_pages.py)')
    a = args.parse_args()

    d = tempfile.mkdtemp(dir=a.keep)
    try:
        c = sqlite3.connect(os.path.join(d, 'ceiling.db'), isolation_level=None)
        c.execute('PRAGMA page_size = 2048')
        c.execute('PRAGMA journal_mode = WAL')
        c.execute('PRAGMA synchronous = FULL')
        c.execute('PRAGMA temp_store = MEMORY')
        c.execute('PRAGMA wal_autocheckpoint = 20000')
        for m in sorted(glob.glob(os.path.join(HERE, '..', 'migrations', 'sqlite', '*.sql'))):
            c.executescript(open(m, encoding='utf-8').read())
        if a.events == 'log':
            c.executescript(LOG_ORDERED_EVENTS)
        c.execute("INSERT INTO policies (name, hash, version_label, source, ir, published_at) "
                  "VALUES ('chain', 'h', '1', 's', '{}', 0)")
        snapshot = os.urandom(440)  # a packed five-step snapshot's size
        state = {'leaf': 0, 'due': 10**15, 'next_id': 0}

        def start(rows):
            """A new instance as a start commits it: its row, snapshot, two events, deadline, open step."""
            iid = 'i-%012x%016x' % (state['next_id'], random.getrandbits(64))
            state['next_id'] += 1
            rows['created'].append((iid,))
            rows['snapshots'].append((iid, snapshot))
            for seq in (1, 2):
                rows['events'].append((iid, seq, 0, '科室-1', '科室', 'opened', OPENED, chain_hash(iid + str(seq - 1)),
                                       chain_hash(iid + str(seq)), state['leaf']))
                rows['leaves'].append((state['leaf'], iid, seq, os.urandom(32), os.urandom(160) if seq == 2 else None))
                state['leaf'] += 1
            rows['timers'].append((iid, 's0', state['due']))
            rows['opened'].append((iid, 's0', state['due']))
            state['due'] += 1
            return [iid, 2, 0]

        def approve(rows, live):
            """The next approval of `live` = [id, version, step]: as `batch.rs` writes it."""
            iid, v, step = live
            node, following = 's%d' % step, 's%d' % (step + 1)
            writes_snapshot = (v + 3) % 16 < 3
            rows['cas'].append((v + 3, 'running', writes_snapshot, v + 3, 1, iid, v))
            rows['prev'].append((iid, v))
            for k, payload in enumerate((ACTED, COMPLETED, OPENED)):
                rows['events'].append((iid, v + 1 + k, 1, '科室-1', '科室', 'acted', payload,
                                       chain_hash(iid + str(v + k)), chain_hash(iid + str(v + 1 + k)), state['leaf']))
                rows['leaves'].append((state['leaf'], iid, v + 1 + k, os.urandom(32), os.urandom(160) if k == 2 else None))
                state['leaf'] += 1
            rows['cancel'].append((iid, node))
            rows['timers'].append((iid, following, state['due']))
            rows['closed'].append((iid, node))
            rows['opened'].append((iid, following, state['due']))
            state['due'] += 1
            if writes_snapshot:
                rows['snapshots'].append((iid, snapshot))
            live[1], live[2] = v + 3, step + 1

        def write(rows):
            c.execute('BEGIN IMMEDIATE')
            c.executemany("INSERT INTO instances (id, policy_name, policy_hash, version, status, created_at, "
                          "updated_at, snapshot_version) VALUES (?, 'chain', 'h', 2, 'running', 0, 0, 2)", rows['created'])
            c.executemany('UPDATE instances SET version = ?, status = ?, snapshot_version = CASE WHEN ? THEN ? '
                          'ELSE snapshot_version END, updated_at = ? WHERE id = ? AND version = ?', rows['cas'])
            for p in rows['prev']:
                c.execute('SELECT hash FROM events WHERE instance = ? AND seq = ?', p).fetchone()
            c.executemany('INSERT INTO audit_leaves (idx, instance, seq, leaf, peaks) VALUES (?, ?, ?, ?, ?)',
                          rows['leaves'])
            c.executemany('INSERT INTO events (instance, seq, at, actor, role, kind, payload, prev_hash, hash, '
                          'log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', rows['events'])
            c.executemany("UPDATE timers SET state = 'cancelled' WHERE instance = ? AND node = ? "
                          "AND state IN ('pending', 'claimed')", rows['cancel'])
            c.executemany("INSERT INTO timers (instance, node, kind, due_at, state, fence, payload) "
                          "VALUES (?, ?, 'deadline', ?, 'pending', 0, '{\"kind\":\"deadline\"}')", rows['timers'])
            c.executemany('DELETE FROM open_steps WHERE instance = ? AND node = ?', rows['closed'])
            c.executemany("INSERT INTO open_steps (instance, node, reader, due_key, overdue) "
                          "VALUES (?, ?, 'a:科室', ?, 0)", rows['opened'])
            c.executemany('INSERT INTO snapshots (instance, body) VALUES (?, ?) '
                          'ON CONFLICT (instance) DO UPDATE SET body = excluded.body', rows['snapshots'])

        def new_rows():
            return {k: [] for k in ('created', 'cas', 'prev', 'events', 'leaves', 'cancel', 'timers', 'closed',
                                    'opened', 'snapshots')}

        # The instances alive besides the clients' (`--instances`), then one instance per client.
        rows = new_rows()
        for _ in range(a.instances):
            start(rows)
        write(rows)
        c.execute('COMMIT')
        rows = new_rows()
        live = [start(rows) for _ in range(a.clients)]
        write(rows)
        c.execute('COMMIT')

        # Each batch: half the clients (the engine's batches alternate halves at 64 clients), each
        # approving its instance's next step, or starting a new instance after the last.
        done, statements, commits, half = 0, 0.0, 0.0, 0
        began = time.perf_counter()
        while time.perf_counter() - began < a.secs:
            rows = new_rows()
            for k in range(half, a.clients, 2):
                if live[k][2] == a.chain:
                    live[k] = start(rows)
                else:
                    approve(rows, live[k])
                    done += 1
            half = 1 - half
            t0 = time.perf_counter()
            write(rows)
            t1 = time.perf_counter()
            c.execute('COMMIT')
            t2 = time.perf_counter()
            statements += t1 - t0
            commits += t2 - t1
        elapsed = time.perf_counter() - began
        print(f'events {a.events}, {a.clients} clients: {done} approvals in {elapsed:.2f} s = {done / elapsed:.0f} '
              f'approvals/s; per approval: statements {statements / done * 1e6:.0f} µs, '
              f'COMMIT (WAL frames + fsync) {commits / done * 1e6:.0f} µs')
        if a.keep is not None:
            print(f'kept {d}/ceiling.db')
            os._exit(0)  # leaves the WAL as it is, not checkpointed by a close
        c.close()
    finally:
        if a.keep is None:
            shutil.rmtree(d)


if __name__ == '__main__':
    main()
