#!/usr/bin/env python3
"""Generate the bundled Chinese working-day calendar, one file per year: cn/YYYY.json.

Source: the npm package chinese-days (MIT), which transcribes each State Council notice
(国务院办公厅关于YYYY年部分节假日安排的通知) into holidays and make-up working days (调休上班),
and keeps the notice's address and text in comments of src/holidays/generate.ts.

Three checks run before anything is written, and the generator stops on any failure:
  1. the PyPI package chinesecalendar (MIT, maintained separately) gives the same working /
     non-working status for every day of every generated year;
  2. every date that the notice text (as the package quotes it) names as off (放假, 补休) is a
     holiday entry, every date it names as worked (上班) is a working day, and every weekday the
     text names beside a date (（星期六）, （周日）) is that date's weekday;
  3. both packages declare the MIT license and the pinned version.
Corrections to the package are listed in CORRECTIONS with the reason, and written into the
file's checks.

Usage:
    python3 engine/calendars/generate.py            # fetches both packages with npm and pip
    python3 engine/calendars/generate.py --chinese-days DIR --chinesecalendar DIR
        (DIR: an unpacked package: the folder holding package.json, or the unpacked wheel)

Each entry is a date, a kind (holiday: a day of a holiday period, weekends inside it included;
makeup_workday: a weekend day worked in exchange, 调休上班) and the festival's name. A file covers
every date of its calendar year; a year without a file is not covered at all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "chinese-days"
VERSION = "1.5.7"
CHECK_PACKAGE = "chinesecalendar"
CHECK_VERSION = "1.11.0"

# Every year both packages cover: 2004 (the first year chinese-days has) to 2026 (the last year
# whose notice is published). 2027 is not guessed: it is added when its notice is out.
YEARS = list(range(2004, 2027))

OUT = Path(__file__).resolve().parent / "cn"

# The package's short names, mapped to the names the notices use.
NAMES = {
    "元旦": "元旦",
    "春节": "春节",
    "清明": "清明节",
    "劳动节": "劳动节",
    "端午": "端午节",
    "中秋": "中秋节",
    "国庆节": "国庆节",
    # 2015-09-03 … 09-05, by its own notice (see EXTRA_NOTICE_TITLES).
    "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}

# Notices other than the annual one, by address, with their titles.
EXTRA_NOTICE_TITLES = {
    "http://www.gov.cn/zhengce/content/2020-01/27/content_5472352.htm": "国务院办公厅关于延长2020年春节假期的通知",
    # Named in the package's own remark above the address (参见《…》).
    "http://www.gov.cn/zhengce/content/2015-05/13/content_9742.htm": "国务院关于中国人民抗日战争暨世界反法西斯战争胜利"
    "70周年纪念日调休放假的通知",
    # The 2019 Labour Day holiday, made four days by a second notice (the package's text: 调整2019年劳动节放假安排).
    "http://www.gov.cn/zhengce/content/2019-03/22/content_5375877.htm": "国务院办公厅关于调整2019年劳动节假期安排的通知",
}

# Fixes to the package's data: date -> (kind, name, reason). None so far changes a working day.
CORRECTIONS = {
    "2015-09-05": (
        "holiday",
        "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
        "the notice says 9月3日至5日调休放假，共3天; chinese-days 1.5.7 lists 3 and 4 but not "
        "Saturday 5; added. No working day changes.",
    ),
    "2011-06-05": (
        "holiday",
        "端午节",
        "the notice says 端午节：6月4日至6日放假公休; chinese-days 1.5.7 lists 4 and 6 but not "
        "Sunday 5; added (chinesecalendar 1.11.0 has it as a holiday too). No working day changes.",
    ),
    "2012-06-23": (
        "holiday",
        "端午节",
        "the notice says 端午节：6月22日至24日放假公休; chinese-days 1.5.7 lists 22 and 24 but "
        "not Saturday 23 (the festival day itself); added. No working day changes.",
    ),
}

# Checks made by hand against the notice text; written into the file of that year.
HAND_CHECKS = {
    2026: "Checked by hand on 2026-11-25 against the notice text as republished by Xinhua on "
    "2025-11-04 (国务院办公厅关于2026年部分节假日安排的通知): 国庆节 10月1日（周四）至7日（周三）放假调休, "
    "9月20日（周日）、10月10日（周六）上班; 中秋节 9月25日至27日; 春节 2月15日至23日, 2月14日、2月28日"
    "（周六）上班; 劳动节 5月1日至5日, 5月9日（周六）上班; 元旦 1月1日至3日, 1月4日（周日）上班 — all "
    "match the entries below. The republications give no document number.",
    2012: "Checked by hand on 2026-11-25 against republications of the notice (they give 国办发明电"
    "〔2011〕45号, which the package does not): 清明节 4月2日至4日放假调休, 3月31日（星期六）、4月1日"
    "（星期日）上班; 劳动节 4月29日至5月1日, 4月28日（星期六）上班; 中秋节、国庆节 9月30日至10月7日, "
    "9月29日（星期六）上班 — all match. The notice's 2011年12月31日（星期六）上班 lies in 2011, "
    "which this calendar does not cover.",
    2008: "Checked by hand on 2026-11-25: 国庆节 9月29日至10月5日 off with 9月27日、28日 worked; "
    "劳动节 5月1日至3日 off with 5月4日（星期日）worked — match. The notice's 2007年12月29日"
    "（星期六）上班 and 12月30日至31日 off lie in 2007, which this calendar does not cover.",
    2020: "Checked by hand on 2026-11-25: the extension notice moved the end of the 春节 holiday to "
    "2月2日, so Saturday 2月1日, a make-up working day in the annual notice, is a holiday here.",
}

WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}


def fetch(workdir: Path) -> tuple[Path, Path]:
    """Fetch both packages with their ordinary clients and unpack them."""
    subprocess.run(
        ["npm", "pack", "--loglevel", "error", f"{PACKAGE}@{VERSION}", "--pack-destination", str(workdir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with tarfile.open(workdir / f"{PACKAGE}-{VERSION}.tgz") as tar:
        tar.extractall(workdir / "npm", filter="data")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(workdir),
         f"{CHECK_PACKAGE}=={CHECK_VERSION}"],
        check=True,
    )
    wheel = next(workdir.glob(f"{CHECK_PACKAGE}-{CHECK_VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(workdir / "wheel")
    return workdir / "npm" / "package", workdir / "wheel"


def check_packages(cd_dir: Path, cc_dir: Path) -> None:
    meta = json.loads((cd_dir / "package.json").read_text(encoding="utf-8"))
    if (meta["name"], meta["version"], meta["license"]) != (PACKAGE, VERSION, "MIT"):
        sys.exit(f"unexpected package: {meta['name']} {meta['version']} {meta['license']}")
    metadata = next(cc_dir.glob("*.dist-info/METADATA")).read_text(encoding="utf-8")
    if f"Version: {CHECK_VERSION}\n" not in metadata or "License: MIT License" not in metadata:
        sys.exit(f"unexpected {CHECK_PACKAGE} metadata")


def parse_notices(cd_dir: Path) -> dict[int, list[dict]]:
    """The notices of each year from the comments in src/holidays/generate.ts."""
    src = (cd_dir / "src" / "holidays" / "generate.ts").read_text(encoding="utf-8")
    notices: dict[int, list[dict]] = {}
    for block, year in re.findall(r"/\*\*(.*?)\*/\s*arrangement\s*\.y\((\d{4})\)", src, re.S):
        year = int(year)
        lines = [re.sub(r"^\s*\*\s?", "", l).strip() for l in block.splitlines()]
        lines = [l for l in lines if l]
        if lines[0] != str(year):
            sys.exit(f"{year}: comment block starts with {lines[0]!r}")
        current = None
        found = []
        for line in lines[1:]:
            if line.startswith("http"):
                title = (
                    f"国务院办公厅关于{year}年部分节假日安排的通知"
                    if not found
                    else EXTRA_NOTICE_TITLES.get(line)
                )
                current = {"title": title, "document_number": None, "url": line, "summary": []}
                found.append(current)
            elif line.startswith("注意"):
                current = None  # the package author's remark, not the notice
            elif current is not None:
                current["summary"].append(line)
        for notice in found:
            numbers = re.findall(r"国办发明电〔\d{4}〕\d+号", "".join(notice["summary"]))
            if numbers:
                notice["document_number"] = numbers[0]
        notices[year] = found
    return notices


def entries_of(cd_dir: Path, year: int) -> list[dict]:
    data = json.loads((cd_dir / "dist" / "years" / f"{year}.json").read_text(encoding="utf-8"))
    entries = {}
    for key, kind in (("holidays", "holiday"), ("workdays", "makeup_workday")):
        for date, value in data[key].items():
            short = value.split(",")[1]
            if not date.startswith(f"{year}-"):
                sys.exit(f"{year}: entry {date} outside the year")
            if date in entries:
                sys.exit(f"{year}: {date} is both a holiday and a make-up working day")
            entries[date] = {"date": date, "kind": kind, "name": NAMES[short]}
    for date, (kind, name, _) in CORRECTIONS.items():
        if date.startswith(f"{year}-"):
            entries[date] = {"date": date, "kind": kind, "name": name}
    for e in entries.values():
        day = dt.date.fromisoformat(e["date"])
        if e["kind"] == "makeup_workday" and day.weekday() < 5:
            sys.exit(f"{year}: make-up working day {day} is not a weekend day")
    return [entries[d] for d in sorted(entries)]


def working(entries: dict[str, dict], day: dt.date) -> bool:
    e = entries.get(day.isoformat())
    if e is None:
        return day.weekday() < 5
    return e["kind"] == "makeup_workday"


def days_of(year: int):
    day = dt.date(year, 1, 1)
    while day.year == year:
        yield day
        day += dt.timedelta(days=1)


def cross_check_package(cc_dir: Path, year: int, entries: list[dict]) -> str:
    if str(cc_dir) not in sys.path:
        sys.path.insert(0, str(cc_dir))
    import chinese_calendar  # the unpacked wheel

    by_date = {e["date"]: e for e in entries}
    diffs = [d for d in days_of(year) if working(by_date, d) != chinese_calendar.is_workday(d)]
    if diffs:
        sys.exit(f"{year}: {CHECK_PACKAGE} disagrees on {[d.isoformat() for d in diffs]}")
    n = sum(1 for _ in days_of(year))
    return (
        f"{CHECK_PACKAGE} {CHECK_VERSION} (PyPI, MIT) gives the same working / non-working status "
        f"for all {n} days of {year}."
    )


# The start of one festival's clause: "一、元旦：", "2. 春节：", "四、“五一”国际劳动节：", "春节：".
HEAD = (
    r"(?:[一二三四五六七八九]、|\d\.\s*)?(?:“五一”国际)?"
    r"(元旦|春节|清明节|劳动节|端午节|中秋节|国庆节|“五一”|“十一”)(?:、(?:中秋节|国庆节))?[：:]"
)
# The older notices (2004–2007) head the May and October holidays “五一” and “十一”.
HEAD_NAMES = {"“五一”": "劳动节", "“十一”": "国庆节"}
DATE = r"(?:(\d{4})年)?(?:(\d{1,2})月)?(\d{1,2})日(?:（([^）]*)）)?"


def text_dates(
    year: int,
    text: str,
    month_hint: list[int],
    festival: str | None,
    period: tuple[dt.date, dt.date] | None = None,
) -> list[tuple[dt.date, str | None]]:
    """Dates named in a piece of notice text, in order, with the weekday note in brackets.

    A date without a year is in the notice's year, except a December date under 元旦: the
    New Year holiday can start in, or borrow a working day from, the year before.

    A date without a month takes the month of the date before it, except inside the festival's
    holiday period just named: the older notices (2005–2007) write "春节：1月29日—2月4日放假 …
    其中，29日、30日、31日为法定假日", where the days without a month are January's, the first
    month of the period, not February's. Such a day is read in the month of the period that
    holds it.
    """
    out = []
    for y, m, d, note in re.findall(DATE, text):
        if m:
            month_hint[0] = int(m)
        if y:
            in_year = int(y)
        elif festival == "元旦" and month_hint[0] == 12:
            in_year = year - 1
        else:
            in_year = year
        month = month_hint[0]
        if not m and period is not None:
            inside = [
                mo
                for mo in dict.fromkeys((period[0].month, period[1].month))
                if valid(in_year, mo, int(d)) and period[0] <= dt.date(in_year, mo, int(d)) <= period[1]
            ]
            if inside and not (valid(in_year, month, int(d)) and dt.date(in_year, month, int(d)) in range_of(period)):
                month = inside[0]
        if not valid(in_year, month, int(d)):
            sys.exit(f"{year}: the notice text names day {d} of month {month}, which does not exist")
        out.append((dt.date(in_year, month, int(d)), note or None))
    return out


def valid(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
        return True
    except ValueError:
        return False


def range_of(period: tuple[dt.date, dt.date]) -> set[dt.date]:
    return {dt.date.fromordinal(d) for d in range(period[0].toordinal(), period[1].toordinal() + 1)}


def cross_check_text(year: int, notices: list[dict], entries: list[dict]) -> str:
    """Compare the dates named in the notice text with the entries."""
    by_date = {e["date"]: e for e in entries}
    off: dict[dt.date, str] = {}  # date -> festival; later notices override earlier ones
    worked: set[dt.date] = set()
    last_range: dict[str, tuple[dt.date, dt.date]] = {}
    weekday_notes = 0
    for notice in notices:
        # The older notices (2004–2007) write half-width brackets and "～", "－" for "to".
        text = "".join(notice["summary"]).replace("(", "（").replace(")", "）")
        text = text.replace("～", "至").replace("－", "至").replace("~", "至")
        heads = list(re.finditer(HEAD, text))
        clauses = [text[: heads[0].start()] if heads else text]
        clauses += [text[h.start() : n.start()] for h, n in zip(heads, heads[1:] + [None]) if n]
        clauses += [text[heads[-1].start() :]] if heads else []
        for clause in clauses:
            head = re.match(HEAD, clause)
            festival = HEAD_NAMES.get(head.group(1), head.group(1)) if head else None
            month = [1]
            period = None  # the holiday period this clause names, for days written without a month
            for sentence in re.split(r"[。；]", clause):
                ext = re.search(r"延长\d{4}年(\S+?)假期至" + DATE, sentence)
                if ext:
                    name = ext.group(1)
                    end = dt.date(year, int(ext.group(3)), int(ext.group(4)))
                    start = last_range[name][1] + dt.timedelta(days=1)
                    for d in range(start.toordinal(), end.toordinal() + 1):
                        day = dt.date.fromordinal(d)
                        off[day] = name
                        worked.discard(day)
                    continue
                for part in re.split(r"，", sentence):
                    dates = text_dates(year, part, month, festival, period)
                    for day, note in dates:
                        wd = re.search(r"(?:星期|周)([一二三四五六日天])", note or "")
                        if wd:
                            weekday_notes += 1
                            if WEEKDAYS[wd.group(1)] != day.weekday():
                                sys.exit(f"{year}: the text calls {day} {wd.group(0)}")
                    if re.search(r"(?:至|—)", part) and "放假" in part and len(dates) == 2:
                        (a, _), (b, _) = dates
                        for d in range(a.toordinal(), b.toordinal() + 1):
                            off[dt.date.fromordinal(d)] = festival
                        period = (a, b)
                        if festival:
                            last_range[festival] = (a, b)
                    elif "放假" in part or part.endswith("补休"):
                        for day, _ in dates:
                            off[day] = festival
                    elif part.endswith("上班") and "起正常上班" not in part:
                        worked.update(day for day, _ in dates)
    off = {d: f for d, f in off.items() if d.year == year}
    worked = {d for d in worked if d.year == year}
    problems = [d for d in off if by_date.get(d.isoformat(), {}).get("kind") != "holiday"]
    problems += [d for d in worked if not working(by_date, d)]
    if problems:
        sys.exit(f"{year}: the notice text disagrees on {sorted(set(problems))}")
    return (
        f"The notice text quoted in source.notices names {len(off)} days off and {len(worked)} "
        f"days worked in {year}; each matches the entries, and its {weekday_notes} weekday notes "
        f"(（星期六）, （周日）…) match the dates."
    )


def render(doc: dict) -> str:
    """Pretty JSON with one entry a line, so a diff of a regenerated file reads by date."""
    text = json.dumps({**doc, "entries": []}, ensure_ascii=False, indent=2)
    lines = ",\n".join("    " + json.dumps(e, ensure_ascii=False) for e in doc["entries"])
    return text.replace('"entries": []', '"entries": [\n' + lines + "\n  ]") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chinese-days", type=Path, help="unpacked npm package folder")
    parser.add_argument("--chinesecalendar", type=Path, help="unpacked wheel folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cd_dir, cc_dir = args.chinese_days, args.chinesecalendar
        if cd_dir is None or cc_dir is None:
            cd_dir, cc_dir = fetch(Path(tmp))
        check_packages(cd_dir, cc_dir)
        notices = parse_notices(cd_dir)
        OUT.mkdir(exist_ok=True)
        for year in YEARS:
            for notice in notices[year]:
                if notice["title"] is None:
                    sys.exit(f"{year}: no title known for the notice at {notice['url']}")
            entries = entries_of(cd_dir, year)
            checks = [
                cross_check_package(cc_dir, year, entries),
                cross_check_text(year, notices[year], entries),
            ]
            checks += [
                f"Correction to {PACKAGE} {VERSION}: {date}: {reason}"
                for date, (_, _, reason) in CORRECTIONS.items()
                if date.startswith(f"{year}-")
            ]
            if year in HAND_CHECKS:
                checks.append(HAND_CHECKS[year])
            doc = {
                "year": year,
                "source": {
                    "notices": notices[year],
                    "package": {
                        "name": PACKAGE,
                        "version": VERSION,
                        "registry": "npm",
                        "license": "MIT",
                        "file": f"dist/years/{year}.json",
                    },
                    "generated_by": "engine/calendars/generate.py",
                },
                "checks": checks,
                "entries": entries,
            }
            path = OUT / f"{year}.json"
            path.write_text(render(doc), encoding="utf-8")
            print(f"{path.name}: {len(entries)} entries; " + " ".join(checks[:2]))


if __name__ == "__main__":
    main()
