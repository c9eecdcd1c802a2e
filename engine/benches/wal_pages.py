"""Which tables and indexes the pages of a SQLite database's last transactions belong to.

Each commit writes every page it changed, whole, to the WAL; this reads the WAL's frames (the
current ones: those with the header's salt), groups them into transactions, and names each page's
B-tree with SQLite's `dbstat`, so what an approval costs on disk can be told table by table.

    CIVICFLOW_BENCH_DIR=/tmp/bd timeout -s KILL 3.5 \\
        target/release/deps/engine-* approvals --chain 5 --clients 64 --secs 4 --sqlite
    cp /tmp/bd/.tmp*/bench.db* /tmp/ && python3 engine/benches/wal_pages.py /tmp/bench.db

(killed, the bench leaves its database and WAL behind). Only transactions of more than
`--min-pages` pages (default 40: the 64-client batches, not the single commits) are counted, the
last `--last` of them (default 150). Figures: BENCHMARKS.md, issue 10, stop 28.
"""

import argparse
import collections
import sqlite3
import struct


def main():
    args = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    args.add_argument('database', help='the database file; its WAL is the file beside it, `-wal`')
    args.add_argument('--min-pages', type=int, default=40)
    args.add_argument('--last', type=int, default=150)
    a = args.parse_args()

    wal = open(a.database + '-wal', 'rb').read()
    _magic, _version, page_size, _checkpoint, salt1, salt2, _c1, _c2 = struct.unpack('>IIIIIIII', wal[:32])
    transactions, current, offset = [], [], 32
    while offset + 24 + page_size <= len(wal):
        page, commit, s1, s2, _k1, _k2 = struct.unpack('>IIIIII', wal[offset:offset + 24])
        if (s1, s2) != (salt1, salt2):
            break  # frames of the WAL before its last restart
        current.append(page)
        if commit:
            transactions.append(set(current))
            current = []
        offset += 24 + page_size

    db = sqlite3.connect(f'file:{a.database}?mode=ro', uri=True)
    owner = {page: name for name, page in db.execute('SELECT name, pageno FROM dbstat')}
    batches = [t for t in transactions if len(t) > a.min_pages][-a.last:]
    if not batches:
        raise SystemExit(f'no transaction of more than {a.min_pages} pages in the WAL')
    pages = collections.Counter(owner.get(p, '(not in the database file)') for t in batches for p in t)
    print(f'{len(batches)} transactions, {sum(map(len, batches)) / len(batches):.1f} pages each '
          f'({page_size} bytes a page); pages per transaction by B-tree:')
    for name, n in pages.most_common():
        print(f'{n / len(batches):8.1f}  {name}')


if __name__ == '__main__':
    main()
