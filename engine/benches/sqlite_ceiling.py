"""What SQLite itself costs for the rows of an approval, without civicflow.

Issue 10 asks whether the SQLite driver (sqlx: a worker thread per connection, a hand-off per
statement, every argument copied) is what bounds the engine, and what a layout would need to reach
its targets. This writes the rows of a 64-client batch of the engine bench's approvals from one
thread with prepared statements (Python's `sqlite3`, `executemany`), 2 kB pages, WAL,
`synchronous=FULL`: a ceiling for a synchronous writer, nothing of civicflow's core, hashing or
driver. `--layout` says which rows:

- `now`: today's, with the store's own migrations (`batch.rs`: the version's compare-and-set, the
  previous hash read, three events and their leaves, the old deadline cancelled and the next
  created, the open step replaced and counted, a packed snapshot every few events).
- `clustered`: the same with the migrations before 0017, where `events` was clustered by
  `(instance, seq)` (`WITHOUT ROWID`) instead of kept in log order (stop 33's `now`).
- `lean`: what the issue's own design writes in each commit (10.1: events, timer changes and the
  version; 10.6: the open steps kept at commit), every table cut to what that needs and keeps
  doing: the instance row one B-tree (its listing indexes kept; an approval changes none of their
  keys), events in log order with their hash, leaf and the tree's peaks as blobs (no leaves table,
  no previous-hash read: the runtime holds it), a deadline deleted by id (the core knows its
  timer) and the next inserted with its due index (the lease index kept), the open step replaced
  with its reader's index, the readers' counts raised and lowered once a batch instead of by a
  trigger each row, a snapshot every 16 events. `--put-back` restores the store's choices (as
  of stop 33, before 0017) one by one to weigh each: `clustered` (events keyed by `(instance, seq)`), `leaves` (the leaf and peaks in
  a row of their own), `prev` (the previous hash read), `timers` (`AUTOINCREMENT`, the live-by-node
  index, cancelled by instance and node), `counts` (a trigger per open-step row), `hex` (hashes as
  text, the previous one stored), `instances` and `snapshots` (rowid tables, a key index each).
- `projected`: events are the only write of a commit (the version, the events, the snapshot every
  16 events); timers and open steps are projected behind the commits by the same writer, one
  transaction every `--window` batches writing only what changed since the last (a deadline opened
  and closed within a window is never written).

    python3 engine/benches/sqlite_ceiling.py [--clients 64] [--secs 5] [--layout now|clustered|lean|projected]
                                             [--put-back clustered,leaves,…]

It prints approvals/s (this script's own Python included) and SQLite's time per approval — the
statements, the `COMMIT` (WAL frames + fsync) and, for `projected`, the projection: the serial
work a writer with no overhead at all would still do, so `1e6 / SQLite's µs` bounds a single
writer's approvals/s on that layout. Figures: BENCHMARKS.md, issue 10, stops 28 and 33.
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
LEAN_SCHEMA = """
CREATE TABLE instances (id TEXT PRIMARY KEY, policy_name TEXT NOT NULL, version INTEGER NOT NULL,
    status TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances (created_at, id);
CREATE INDEX instances_by_policy ON instances (policy_name, status, created_at, id);
CREATE INDEX instances_by_status ON instances (status, created_at, id);
CREATE TABLE events (log_index INTEGER PRIMARY KEY, instance TEXT NOT NULL, seq INTEGER NOT NULL,
    at INTEGER NOT NULL, actor TEXT NOT NULL, role TEXT, kind TEXT NOT NULL, payload TEXT NOT NULL,
    hash BLOB NOT NULL, leaf BLOB NOT NULL, peaks BLOB);
CREATE UNIQUE INDEX events_by_instance ON events (instance, seq);
CREATE TABLE timers (id INTEGER PRIMARY KEY, instance TEXT NOT NULL, node TEXT NOT NULL,
    due_at INTEGER NOT NULL, state TEXT NOT NULL, lease_owner TEXT, lease_until INTEGER,
    fence INTEGER NOT NULL);
CREATE INDEX timers_due ON timers (due_at, id) WHERE state = 'pending';
CREATE INDEX timers_lease ON timers (lease_until, id) WHERE state = 'claimed';
CREATE TABLE open_steps (instance TEXT NOT NULL, node TEXT NOT NULL, reader TEXT NOT NULL,
    due_key INTEGER NOT NULL, PRIMARY KEY (instance, node, reader)) WITHOUT ROWID;
CREATE INDEX open_steps_by_reader ON open_steps (reader, due_key, instance, node);
CREATE TABLE open_step_counts (reader TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE snapshots (instance TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;
"""
# How `--put-back X` changes `LEAN_SCHEMA` back to today's choice: texts replaced, text appended.
SCHEMA_PUT_BACK = {
    'clustered': ([('log_index INTEGER PRIMARY KEY, instance', 'log_index INTEGER, instance'),
                   ('peaks BLOB);', 'peaks BLOB, PRIMARY KEY (instance, seq)) WITHOUT ROWID;'),
                   ('CREATE UNIQUE INDEX events_by_instance ON events (instance, seq);', '')], ''),
    'hex': ([('hash BLOB NOT NULL,', 'prev_hash TEXT NOT NULL, hash TEXT NOT NULL,')], ''),
    'timers': ([('CREATE TABLE timers (id INTEGER PRIMARY KEY,', 'CREATE TABLE timers (id INTEGER PRIMARY KEY AUTOINCREMENT,')],
               "CREATE INDEX timers_live_by_node ON timers (instance, node) WHERE state IN ('pending', 'claimed');"),
    'instances': ([('created_at INTEGER NOT NULL) WITHOUT ROWID;',
                    'created_at INTEGER NOT NULL, updated_at INTEGER, snapshot_version INTEGER);')], ''),
    'snapshots': ([('body BLOB NOT NULL) WITHOUT ROWID;', 'body BLOB NOT NULL);')], ''),
    'leaves': ([], 'CREATE TABLE audit_leaves (idx INTEGER PRIMARY KEY, instance TEXT NOT NULL, '
                   'seq INTEGER NOT NULL, leaf BLOB NOT NULL, peaks BLOB);'),
    'counts': ([], """CREATE TRIGGER open_steps_counted_in AFTER INSERT ON open_steps BEGIN
    INSERT INTO open_step_counts (reader, n) VALUES (NEW.reader, 1) ON CONFLICT (reader) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER open_steps_counted_out AFTER DELETE ON open_steps BEGIN
    UPDATE open_step_counts SET n = n - 1 WHERE reader = OLD.reader;
END;"""),
    'prev': ([], ''),
}
# Today's choices that `lean` cuts, each of which `--put-back` restores alone or with others.
PUT_BACK = ('clustered', 'leaves', 'prev', 'timers', 'counts', 'hex', 'instances', 'snapshots')
TABLES = ('created', 'cas', 'prev', 'events', 'leaves', 'cancel', 'timers', 'closed', 'opened', 'snapshots')


def disk_written():
    """Bytes this process has caused to be written to disk so far (`/proc/self/io`)."""
    with open('/proc/self/io') as io:
        return next(int(line.split()[1]) for line in io if line.startswith('write_bytes:'))


def chain_hash(text):
    return hashlib.sha256(text.encode()).hexdigest()


class Today:
    """`now` and `clustered`: the store's migrations (those before `before`, if given) and the
    statements of `batch.rs`."""

    def __init__(self, c, before=None):
        for m in sorted(glob.glob(os.path.join(HERE, '..', 'migrations', 'sqlite', '*.sql'))):
            if before is None or int(os.path.basename(m).split('_')[0]) < before:
                c.executescript(open(m, encoding='utf-8').read())
        c.execute("INSERT INTO policies (name, hash, version_label, source, ir, published_at) "
                  "VALUES ('chain', 'h', '1', 's', '{}', 0)")
        self.c = c

    def event(self, rows, iid, seq, payload, leaf, peaks):
        rows['events'].append((iid, seq, 0, '科室-1', '科室', 'acted', payload, chain_hash(iid + str(seq - 1)),
                               chain_hash(iid + str(seq)), leaf))
        rows['leaves'].append((leaf, iid, seq, os.urandom(32), os.urandom(160) if peaks else None))

    def write(self, rows):
        c = self.c
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
                      "AND state IN ('pending', 'claimed')", [(i, n) for i, n, _, _ in rows['cancel']])
        c.executemany("INSERT INTO timers (instance, node, kind, due_at, state, fence, payload) "
                      "VALUES (?, ?, 'deadline', ?, 'pending', 0, '{\"kind\":\"deadline\"}')",
                      [(i, n, due) for i, n, due, _ in rows['timers']])
        c.executemany('DELETE FROM open_steps WHERE instance = ? AND node = ?', rows['closed'])
        c.executemany("INSERT INTO open_steps (instance, node, reader, due_key, overdue) "
                      "VALUES (?, ?, 'a:科室', ?, 0)", rows['opened'])
        c.executemany('INSERT INTO snapshots (instance, body) VALUES (?, ?) '
                      'ON CONFLICT (instance) DO UPDATE SET body = excluded.body', rows['snapshots'])


class Lean:
    """`lean` (everything in the commit) and `projected` (timers and open steps behind it)."""

    def __init__(self, c, projected, put_back):
        self.on = put_back
        schema = LEAN_SCHEMA
        for choice in sorted(put_back):
            replaced, appended = SCHEMA_PUT_BACK[choice]
            for old, new in replaced:
                assert old in schema, (choice, old)
                schema = schema.replace(old, new)
            schema += appended
        c.executescript(schema)
        self.c, self.projected = c, projected
        # What the derived tables hold (by instance: its open node, due key and timer id), and
        # what the commits since the last projection changed them to (None: closed).
        self.written, self.pending = {}, {}

    def event(self, rows, iid, seq, payload, leaf, peaks):
        h = (chain_hash(iid + str(seq - 1)), chain_hash(iid + str(seq))) if 'hex' in self.on else (os.urandom(32),)
        if 'leaves' in self.on:
            rows['events'].append((leaf, iid, seq, 0, '科室-1', '科室', 'acted', payload) + h + (b'', None))
            rows['leaves'].append((leaf, iid, seq, os.urandom(32), os.urandom(160) if peaks else None))
        else:
            rows['events'].append((leaf, iid, seq, 0, '科室-1', '科室', 'acted', payload) + h + (os.urandom(32),
                               os.urandom(160) if peaks else None))

    def write(self, rows):
        c = self.c
        c.executemany("INSERT INTO instances (id, policy_name, version, status, created_at) "
                      "VALUES (?, 'chain', 2, 'running', 0)", rows['created'])
        if 'instances' in self.on:
            c.executemany('UPDATE instances SET version = ?, status = ?, snapshot_version = CASE WHEN ? THEN ? '
                          'ELSE snapshot_version END, updated_at = ? WHERE id = ? AND version = ?', rows['cas'])
        else:
            c.executemany('UPDATE instances SET version = ?, status = ? WHERE id = ? AND version = ?',
                      [(v, status, iid, old) for v, status, _, _, _, iid, old in rows['cas']])
        if 'prev' in self.on:
            for p in rows['prev']:
                c.execute('SELECT hash FROM events WHERE instance = ? AND seq = ?', p).fetchone()
        if 'leaves' in self.on:
            c.executemany('INSERT INTO audit_leaves (idx, instance, seq, leaf, peaks) VALUES (?, ?, ?, ?, ?)', rows['leaves'])
        hx = 'prev_hash, hash' if 'hex' in self.on else 'hash'
        q = ', ?' if 'hex' in self.on else ''
        c.executemany(f'INSERT INTO events (log_index, instance, seq, at, actor, role, kind, payload, {hx}, leaf, '
                      f'peaks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?{q}, ?, ?)', rows['events'])
        c.executemany('INSERT INTO snapshots (instance, body) VALUES (?, ?) '
                      'ON CONFLICT (instance) DO UPDATE SET body = excluded.body', rows['snapshots'])
        if self.projected:
            for iid, _node, _due, _id in rows['cancel']:
                self.pending[iid] = None
            for iid, node, due, tid in rows['timers']:
                self.pending[iid] = (node, due, tid)
            return
        self.derived(rows['cancel'], rows['timers'])

    def derived(self, closed, opened):
        c = self.c
        if 'timers' in self.on:
            c.executemany("UPDATE timers SET state = 'cancelled' WHERE instance = ? AND node = ? AND state IN ('pending', 'claimed')",
                          [(i, n) for i, n, _, _ in closed])
            c.executemany("INSERT INTO timers (instance, node, due_at, state, fence) VALUES (?, ?, ?, 'pending', 0)",
                          [(iid, node, due) for iid, node, due, tid in opened])
        else:
            c.executemany('DELETE FROM timers WHERE id = ?', [(tid,) for _, _, _, tid in closed])
            c.executemany("INSERT INTO timers (id, instance, node, due_at, state, fence) VALUES (?, ?, ?, ?, 'pending', 0)",
                          [(tid, iid, node, due) for iid, node, due, tid in opened])
        c.executemany('DELETE FROM open_steps WHERE instance = ? AND node = ?', [(i, n) for i, n, _, _ in closed])
        c.executemany("INSERT INTO open_steps (instance, node, reader, due_key) VALUES (?, ?, 'a:科室', ?)",
                      [(iid, node, due) for iid, node, due, _ in opened])
        if (opened or closed) and 'counts' not in self.on:  # every step here has the one reader
            c.execute("INSERT INTO open_step_counts (reader, n) VALUES ('a:科室', ?) "
                      'ON CONFLICT (reader) DO UPDATE SET n = n + excluded.n', (len(opened) - len(closed),))

    def project(self):
        """One transaction: the derived tables brought to what the commits since the last say."""
        closed, opened = [], []
        for iid, now in self.pending.items():
            was = self.written.get(iid)
            if was == now:
                continue
            if was is not None:
                closed.append((iid,) + was)
            if now is not None:
                opened.append((iid,) + now)
                self.written[iid] = now
            else:
                self.written.pop(iid, None)
        self.pending = {}
        self.c.execute('BEGIN IMMEDIATE')
        self.derived(closed, opened)
        self.c.execute('COMMIT')


def main():
    args = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    args.add_argument('--clients', type=int, default=64, help='clients, half of them in each transaction (default 64)')
    args.add_argument('--chain', type=int, default=5, help='approvals per instance (default 5)')
    args.add_argument('--secs', type=float, default=5, help='measuring time (default 5)')
    args.add_argument('--instances', type=int, default=10_000, help='instances alive besides (default 10,000)')
    args.add_argument('--layout', choices=['now', 'clustered', 'lean', 'projected'], default='now',
                      help='which rows a commit writes (default now; see above)')
    args.add_argument('--put-back', default='', metavar='CHOICE,…',
                      help='today\'s choices put back into lean or projected, to weigh each: ' + ', '.join(PUT_BACK))
    args.add_argument('--window', type=int, default=20, help='batches per projection, with --layout projected')
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
        put_back = set(filter(None, a.put_back.split(',')))
        if not put_back <= set(PUT_BACK):
            args.error(f'--put-back takes some of {",".join(PUT_BACK)}')
        if put_back and a.layout not in ('lean', 'projected'):
            args.error('--put-back is for --layout lean or projected')
        layout = (Today(c, 17 if a.layout == 'clustered' else None) if a.layout in ('now', 'clustered')
                  else Lean(c, a.layout == 'projected', put_back))
        snapshot = os.urandom(440)  # a packed five-step snapshot's size
        state = {'leaf': 0, 'due': 10**15, 'next_id': 0, 'timer': 0}

        def deadline(rows, iid, node):
            state['timer'] += 1
            rows['timers'].append((iid, node, state['due'], state['timer']))
            rows['opened'].append((iid, node, state['due']))
            state['due'] += 1
            return state['timer']

        def start(rows):
            """A new instance as a start commits it: its row, snapshot, two events, deadline, open step."""
            iid = 'i-%012x%016x' % (state['next_id'], random.getrandbits(64))
            state['next_id'] += 1
            rows['created'].append((iid,))
            rows['snapshots'].append((iid, snapshot))
            for seq in (1, 2):
                layout.event(rows, iid, seq, OPENED, state['leaf'], seq == 2)
                state['leaf'] += 1
            return [iid, 2, 0, deadline(rows, iid, 's0')]

        def approve(rows, live):
            """The next approval of `live` = [id, version, step, its deadline's id]."""
            iid, v, step, timer = live
            node, following = 's%d' % step, 's%d' % (step + 1)
            writes_snapshot = (v + 3) % 16 < 3
            rows['cas'].append((v + 3, 'running', writes_snapshot, v + 3, 1, iid, v))
            rows['prev'].append((iid, v))
            for k, payload in enumerate((ACTED, COMPLETED, OPENED)):
                layout.event(rows, iid, v + 1 + k, payload, state['leaf'], k == 2)
                state['leaf'] += 1
            rows['cancel'].append((iid, node, 0, timer))
            rows['closed'].append((iid, node))
            if writes_snapshot:
                rows['snapshots'].append((iid, snapshot))
            live[1], live[2], live[3] = v + 3, step + 1, deadline(rows, iid, following)

        def new_rows():
            return {k: [] for k in TABLES}

        def commit(rows):
            c.execute('BEGIN IMMEDIATE')
            layout.write(rows)
            c.execute('COMMIT')

        # The instances alive besides the clients' (`--instances`), then one instance per client.
        rows = new_rows()
        for _ in range(a.instances):
            start(rows)
        commit(rows)
        rows = new_rows()
        live = [start(rows) for _ in range(a.clients)]
        commit(rows)
        if a.layout == 'projected':
            layout.project()

        # Each batch: half the clients (the engine's batches alternate halves at 64 clients), each
        # approving its instance's next step, or starting a new instance after the last.
        done, statements, commits, projections, half, batches = 0, 0.0, 0.0, 0.0, 0, 0
        written = disk_written()
        began = time.perf_counter()
        while time.perf_counter() - began < a.secs:
            rows = new_rows()
            for k in range(half, a.clients, 2):
                if live[k][2] == a.chain:
                    live[k] = start(rows)
                else:
                    approve(rows, live[k])
                    done += 1
            half = 1 - half if a.clients > 1 else 0
            t0 = time.perf_counter()
            c.execute('BEGIN IMMEDIATE')
            layout.write(rows)
            t1 = time.perf_counter()
            c.execute('COMMIT')
            t2 = time.perf_counter()
            statements += t1 - t0
            commits += t2 - t1
            batches += 1
            if a.layout == 'projected' and batches % a.window == 0:
                layout.project()
                projections += time.perf_counter() - t2
        elapsed = time.perf_counter() - began
        written = disk_written() - written
        sqlite_us = (statements + commits + projections) / done * 1e6
        name = a.layout + (f' + {a.put_back}' if put_back else '')
        print(f'{name}, {a.clients} clients: {done} approvals in {elapsed:.2f} s = {done / elapsed:.0f} '
              f'approvals/s; SQLite per approval {sqlite_us:.1f} µs (bound {1e6 / sqlite_us:.0f}/s): statements '
              f'{statements / done * 1e6:.1f}, COMMIT (WAL frames + fsync) {commits / done * 1e6:.1f}, '
              f'projection {projections / done * 1e6:.1f}; disk {written / done:.0f} B per approval')
        if a.keep is not None:
            print(f'kept {d}/ceiling.db')
            os._exit(0)  # leaves the WAL as it is, not checkpointed by a close
        c.close()
    finally:
        if a.keep is None:
            shutil.rmtree(d)


if __name__ == '__main__':
    main()
