"""List cleaning end to end, against the physical floor and a naive per-row pipeline, in one run.

    python bench/clean.py [--rows 5000000] [--blacklist N] [--naive-sample 200000] [--seed 7] [--workdir DIR]
                          [--fresh]

Data (seeded, cached in --workdir between runs; --fresh rebuilds it):
- a CSV of `--rows` rows: name, phone, email, signup_date, source. Phones are drawn from ten countries
  (half British) and written in mixed formats: E.164, national with trunk 0 and spaces, int-converted
  (447...), 00-prefixed, "+44 (0)...", dashes, tel: URIs, spaced international. 5% of the rows repeat an
  earlier number (often in another writing), 10% are invalid (junk text, placeholders, truncated numbers).
  Some names and sources are spreadsheet formulas (the outputs must neutralise them).
- a blacklist of `--blacklist` numbers (default 2 x rows: 10,000,000 for 5M rows) stored as the platform
  stores numbers (phone_numbers: HMAC blind index + AES-GCM sealed number, status), 10% of the file's
  numbers among them; 2% of the file's numbers on the monitor list and 1% in the main database.

Measured (the same process, SQLite database, the machine's cores):
- ours: the real job end to end — the stored upload becomes a cleaned file, a rejected file and the run's
  stats (filters: blacklist, monitor, main database), through `cleaning.service.start_clean` and the
  `cleaning.run` job handler run inline (a thread pool overlaps batches; see cleaning/pipeline.py).
- floor: polars reading the same CSV with every cell a string (no cleaning at all).
- naive: a per-row pipeline on the first `--naive-sample` rows: phonenumbers parse + is_valid + format,
  a Python set for duplicates, the blind index per row and Python set lookups for the lists (sets held
  in memory, their loading not timed), csv.writer for the outputs.
Each measured job runs in a fresh process on a fresh copy of the lists (so its peak RSS, the process's
VmHWM, is its own; the hashing worker processes hold a key and one batch's numbers, not counted). The job
runs `--repeat` times (default 2) and the better is reported, with every run's rate and the load average
before and after each, so a noisy neighbour shows. CPU seconds and rows per CPU-second are printed too:
other processes slow the wall clock, not the CPU time. `--peak-rows` (default 1M) runs the job on the
file's first rows too and prints that peak, to show how memory grows with rows. The sha256 of the cleaned
and rejected files is kept per data set (outputs-<tag>.json in the work folder): the first run records it
(run the previous implementation first, e.g. with PYTHONPATH pointing at its src/), later runs print
"identical" or "DIFFERENT". Each measured run is followed by one with the line_type column (in turn, so a
change of load hits both); `line_type_overhead` is the fraction of end-to-end time the column adds, better
run against better run (`line_type_cpu_overhead` the same in CPU seconds).

START HERE: the current profile and figures are in the last section ("Issue 20, session 14"); the sections
before it are the history of how the pipeline got there.

Profile (py-spy record --subprocesses, 300,000 rows against 600,000, this machine with a load average of
~25 on 2 cores, so shares, not times, are what to read; busy samples of the job, its threads and its
hashing workers):

    53.6%  normalize_column: _lookup -> _resolve_many -> _decide -> _replica, mostly the validity regexes
           over "LLL:nsn" keys (str.contains with per-row patterns, normalize.py _replica's region walk)
     9.4%  blind indexes in the hashing worker processes (numbers.crypto.blind_index_block)
     8.5%  matching (_outcomes: joins on k1, k2; FilterSet.outcomes)
     5.7%  list scans (filters.SourceLookup)
     5.0%  storage: sha256 of the stored outputs (core/storage.file_digest) and their rows
     3.1%  writing (neutralise + write_csv);  1.8% reading batches;  11.7% other (imports, session)

The line_type column (issue 16: at most 15% of the end-to-end time). It cost 20-35% when the type patterns
ran once per distinct number and the result met the rows through three extra joins on E.164 strings (a
unique, a partition and a join inside `line_types`, then a unique and a join in `prepare_numbers`): the
profile showed the string joins, not the regexes, on top. Now the patterns run once per prefix range (the
digits they read, `numbers/prefixes.py`: ~81,000 ranges for ~846,000 distinct numbers of the 1M-row file),
ranges meet numbers on one integer join, and the column rides the match keys' existing join. Measured
2026-12-06 on this machine at a load average of 15-24 (so wall clocks are noisy; CPU seconds less so):
- the per-batch step alone (normalise + blind index + type, 1M rows in 250k batches, CPU seconds, better of
  3): before 4.23 -> 5.53 s with the column (+31%), now 4.30 -> 4.81 s (+11.9%);
- `python bench/clean.py --rows 1000000 --blacklist 1000000 --peak-rows 0 --repeat 3`, end to end, better of
  3 each, in turn: before `"line_type_overhead": 0.162` (CPU 0.050); now `"line_type_overhead": 0.0` in two
  runs (the better run with the column was the faster one both times; CPU 0.058 and 0.078). At this load a
  run varies by ±30%, so the CPU figures and the per-batch step are the steadier evidence. Outputs identical
  to the previous implementation.

Issue 20, session 5 (2026-12-06), measured per stage on a quiet moment (CPU seconds of one process, a
250,000-row batch of this bench's data, 215,209 distinct candidates): normalize_column 0.67 s CPU, of which
_clean 0.09, the replica (_replica, first reading) 0.31, the second reading and the per-row rest
(_decide/_resolve_many) 0.10, joins back to the rows ~0.1. The validity regexes themselves are NOT the cost:
str.contains of GB's general pattern over 100,000 "LLL:nsn" keys takes 2.5 ms (literal pattern) to 4 ms (the
per-row pattern column), GB's 2,121-character type pattern 3-14 ms. The time is spread over ~60 polars
operations per batch on string columns of every distinct candidate (the costliest single one: the join of
the rows to their answers on the key string in normalize_column, 0.066 s; then with_columns/joins of 10-40
ms each in _replica, _strip and _clean). A profiler that samples the Python stack charges all of that to
the line of _replica that is running, which is why the profile above names the regexes.

Tried and not kept: one replica run per "range" of candidates (same length, same digits up to what the
patterns read: numbers/prefixes.py on the walk, the national-prefix and IDD patterns, a reading's own
count of the digits it read to keep the result exact). Outputs stayed identical, but GB's patterns read 7 of
its 10 national digits, so on this data a 250,000-row batch makes ~73,000 ranges of ~3 candidates and the
grouping cost what the replica saved (0.68 s vs 0.67 s CPU). What would pay: fewer passes over string
columns per distinct candidate (e.g. the candidate as an integer with its length from _clean on, so joins
and dedup run on integers), not a faster regex.

Baseline of main (7c62627) at 1M rows vs 2M, load average 4.1 -> 5.7 (others' tests running): 17.6 s wall,
8.5 CPU s, 56,966 rows/s, 117,265 rows per CPU-second, peak RSS 674 MB, naive 13,048 rows/s (ratio 4.4x);
timings normalise 9.8 s, match 3.7 s, write 2.8 s. Main at 5M rows vs 10M (the issue's size; runs end to
end), load average 3.2 -> 5.0: 45.0 s, 111,194 rows/s, 38.0 CPU s (131,493 rows per CPU-second), peak RSS
2,229 MB (744 MB on the first 1M rows, against the same 10M list), naive 20,809 rows/s (ratio 5.3x); timings
normalise 30.9 s, match 7.2 s, write 5.2 s. The targets (400,000 rows/s, 2,048 MB, 15x) are not met.

Issue 20, session 6 (2026-12-06, a shared machine: load averages 5-18 on 2 cores, so CPU seconds are the
figures to compare). `python bench/clean.py --rows 5000000 --workdir DIR --peak-rows 0 --repeat 1`:
- main before (f14346c), load 18.7 -> 17.7: 221.7 s, 22,553 rows/s, CPU 46.9 s (106,595 rows per CPU-second),
  peak RSS 2,259 MB (2,340 MB with the line_type column), naive 6,936 rows/s (ratio 3.3x);
- now (37eafc5), load 6.5 -> 6.2: 36.8 s, 135,820 rows/s, CPU 30.3 s (165,079 rows per CPU-second), peak RSS
  1,463 MB (1,574 MB with the line_type column), naive 16,639 rows/s (ratio 8.2x); timings normalise 26.4 s,
  match 5.2 s, write 4.4 s. Outputs identical (and with the line_type column: the same sha256 as f14346c's).
- the job alone, before and now in turn at the same load (~6): f14346c 49.9 s, CPU 38.3 s, peak 2,320 MB
  (2,388 MB with the line_type column, CPU 40.5 s); now 43.4 s / 35.8 s in two runs, CPU 33.0 s / 29.1 s,
  peak 1,460 / 1,455 MB (1,531 MB with the line_type column).
What changed: the SQLite list scan reads raw fixed-width records instead of hex text (~1 -> ~0.45 CPU-s per
million list rows); the replica applies each region's patterns as literal regexes to that region's rows
(no join of pattern columns to every candidate, no sort, no per-row regex-cache lookup by pattern text:
_lookup of a 250k-row batch 0.50 -> 0.33 CPU-s); rows meet their distinct key's answer, and their number's
match keys, on a 64-bit hash of the key (integer join + gather, checked against the text; `normalize.meet`);
the list matching joins on k1 alone then compares k2 (a join on both columns encodes the pair per row:
+1.1 GB of peak memory for 4.3M numbers against 10M); the rows' outcomes join only their keys; reason,
country, line type and outcome are categories until written.
Left: rows/s and the ratio to naive are far from 400,000 and 15x (peak memory is met). Per 250k-row batch,
normalize_column is ~0.55 CPU-s (the walk's validity regexes ~0.07, the gather of the answers ~0.04, _clean
~0.09, the anti-join and join on candidate text in _resolve_many/_decide ~0.04), the blind indexes ~0.2
CPU-s in the hashing processes; the 10M-row list scan ~4.5 CPU-s; and the file is read twice (stage 1 and
the writing).

Issue 20, session 7 (2026-12-06 23:00-01:30 UTC). The pipeline's shape changed: worker processes (one per
core, polars on one thread each) read, prepare and later write byte ranges of the file; this process scans
the lists and matches (cleaning/pipeline.py's docstring). Same data, outputs identical to the recorded
sha256 in every run below.
- main before (008ea77), load 3.8 -> 7.8: 62.6 s, 79,841 rows/s, CPU 36.5 s, peak RSS 1,309 MB, naive 36,885
  rows/s (2.2x); timings normalise 44.7 s, match 8.8 s, write 7.3 s. The threads kept about one core busy.
- worker processes for the ranges (b3e1a01), load 3.1 -> 3.2: 15.7 s, 319,426 rows/s, CPU 26.9 s (186,053
  rows per CPU-second), peak RSS 1,464 MB, naive 33,129 rows/s (9.6x); timings normalise 10.1, match 2.0,
  write 2.7 s.
- final (this session's last commit), `python bench/clean.py --rows 5000000` at 00:41 UTC, load 0.5 -> 2.3:
  best of 2 17.3 s, 289,044 rows/s (runs 249,376 and 289,044), CPU 31.4 s (159,441 rows per CPU-second),
  peak RSS 1,387 MB (this process; a worker 359 MB; the job's processes summed, sampled every 50 ms: 1,710
  MB), 564 MB at 1M rows; naive 37,566 rows/s: ratio 7.7x; line_type column +4.4% (CPU +4.1%). The machine
  was slower than at 23:10: b3e1a01 (the ranges' first commit) run right after, same data, in turn with
  the final code, load 1.5-1.9: 20.1 s / CPU 35.8 s against 17.3 s / CPU 31.7 s for the final code (it
  was 15.7 s / CPU 26.9 s at 23:10). Targets: peak memory met (under 2 GB summed over the processes, and
  it grows less than linearly: 1,124 MB summed at 1M rows); 400,000 rows/s and 15x NOT met.
Profile of this state (start from here). CPU of one 255k-row range in a worker, polars on one thread:
read 0.07 s, prepare 0.9 s = normalize_column 0.63 (_clean 0.09; _lookup 0.42: the replica's first reading
0.22 and its second reading, for the ~18% of candidates written without "+" that fail as national numbers,
0.07 of which ~0.055 is fixed cost per call; meet's hash/join/gather 0.10) + blind indexes 0.17 (a Python
loop over hashlib states: ~0.8 us per number, SHA-NI makes the hashing itself ~0.14 us) + keys and
categories 0.08; the write of a range 0.22 (read again 0.07, formula check + write_csv 0.15). Callgrind of
the prepare (deterministic, 7.4G instructions): libcrypto ~20% (valgrind hides SHA-NI, so less in reality),
polars' regex engine ~16% (the validity and cleaning patterns), the interpreter ~10%, then dozens of string
column operations of 1-3% each. This process: the 10M-row SQLite list scan 3.8 CPU-s (in a thread, during
step 1; reading the table's rows is 0.13 s per million of it, group_concat the rest), the match ~1.5 s
(first occurrences, the list join, the rows' outcomes), the writes ~0.4 s.
What would pay next: the replica with candidates as integers (fewer string columns per distinct
candidate), a compiled batch HMAC (none on PyPI that we found: hashlib's per-call overhead is most of the
0.17 s), and overlapping the match (~1.5 s during which the workers wait) with the last ranges' work.
Tried and not kept: 32 MB ranges (fewer fixed costs per call, but no CPU gain measured: 15.0-19.3 s for
the whole file either way at this load); a hash-set probe of the 10M-row list before its join (0.75 ->
0.5 s in one micro-bench, 1.2 s in another at a higher load: not clearly better).

Issue 20, session 8 (2026-12-07 01:48-04:45 UTC; a faster machine than in session 7: session 7's last code
measured 13.3 s / CPU 24.5 s here at 01:51, load 1.2 -> 1.4, 376,449 rows/s, naive 35,349: 10.6x). What
changed, each checked against the recorded sha256 (outputs identical in every run):
- list scan (SQLite), 3.5 -> 1.65 CPU-s for 10M rows: group_concat's separator written in the statement (bound,
  SQLite reads it again per row: 2.1 -> 1.45 s); whole 32-byte indexes, no per-row substr/CASE/concat; the rarer
  tag (monitor) read apart through the status index and given only to the numbers a run finds; no count of
  the whole list when max(rowid) already says to scan;
- matching 1.26 -> 0.8 s: first_seen checks only the repeated k1s' first rows (peak +296 -> +127 MB); a
  number's list outcome goes back to its first row by position (no second probe of the 5M rows); outcomes
  built as an Enum (0.25 -> 0.05 s);
- worker processes: what they run is in cleaning/ranges.py, without the database layer (start 0.46 -> 0.2
  CPU-s each), warm-up builds the normalisation tables; no OpenBLAS idle threads; ranges sized to a
  multiple of the workers;
- blind indexes: the interpreter's own SHA-256 (lower per-call cost than OpenSSL 3's context handling):
  215k indexes 0.146 -> 0.112 CPU-s; every valid row hashed instead of a meet with its distinct numbers;
- normalisation: a calling code's region walk leaves its last few unclaimed candidates to the per-row path
  (+1's walk of 25 regions for ~20 invalid numbers: 82 -> 28 steps per range); a national prefix's validity
  tests run only on rows it starts, a region's own calling code only on bare digits that start with it;
  "LLL:" keys from a length lookup; candidates told from texts by _clean: normalize_column per 255k-row range
  0.356 -> 0.285 CPU-s, old and new in turn;
- the output files' sha256 follows the writes (no second read) and the run's counts are taken in a thread
  while the workers write.
Final (the session's last code), `python bench/clean.py --rows 5000000` at 03:10 UTC, load 1.8 -> 2.4: better
of 2 10.4 s, 482,913 rows/s (runs 469,807 and 482,913), CPU 19.2 s (260,335 rows per CPU-second); peak RSS
1,438 MB in the job's process, a worker 375 MB, the job's processes together 1,997 MB; 542 MB at 1M rows (1,115
MB together; the 1M run takes 7.6 s as the 10M-row list scan does not shrink with the file); naive 34,335
rows/s: ratio 14.1x; line_type column +8.3% (CPU +8.8%; its runs peak at 2,076-2,160 MB summed over the
processes). Other runs of the same code: 489,495 / 490,997 rows/s (14.0x), and 499,198 / 502,019 (14.1x) one
commit before. Targets: 400,000 rows/s met, peak <= 2 GB met (also summed, without the line_type column), 15x
NOT met (~520,000-535,000 rows/s depending on the naive run: ~9.5 s, ~17.5 CPU-s on 2 cores).
After that run, SCAN_FACTOR 4 -> 25 (cleaning/filters.py): the 1M-row run had probed the 10M-row list (860k
numbers, 4.8 s in the match step) instead of scanning it (0.2 s, the scan overlapped with reading): 1M rows
7.6 -> 3.2 s (309,535 rows/s), peak 542 -> 682 MB in the job's process (1,253 MB together); 5M unchanged (it
already scanned; 473,448 rows/s in one run, outputs identical).
Profile of this state (start from here), CPU of one 255k-row range in a worker: read 0.06, normalize_column
0.29 (_clean 0.07, the replica's first reading ~0.13 and second ~0.035, meet and the rest ~0.05), blind
indexes 0.14 (the hashing loop ~0.1, its regex check 0.01), write 0.17 (read again 0.06). This process:
scan 1.65 (during step 1), match ~1.2 (0.8 s wall, the workers idle), counts 0.3 and digests 0.2 (during
step 3). The passes: step 1 6.9 s, match 0.85 s, step 3 2.4 s; the cores are busy ~93% of the run, so only
less CPU makes it faster.
What would pay next: fewer string columns per candidate in the replica (the candidate as an integer with
its length), the write without a second parse of the range. (The blind indexes' own meet of the rows with their
distinct numbers is gone: every valid row is hashed, 0.160 -> 0.143 CPU-s per range.)
Tried and not kept: the lists met in a thread while first_seen runs (match 0.86 -> 0.71 s, but the peak rose
over 2 GB summed and the run was no faster); ADBC for the scan (2.4-3.2 CPU-s against 1.45 for group_concat);
a covering (status, blind_index) index (SQLite's per-row work, not the pages, is the cost: 2.36 vs 2.58 s);
neutralising each range's cells once for both files (0.11 -> 0.13 s: the phone cell of every row is then
checked); map() over hash objects instead of the loop (slower); gc.freeze in the workers (no change).

Issue 20, session 9 (2026-12-07 04:16-07:00 UTC). A slower machine than session 8's: a pure-Python loop
(`sum(i*i for i in range(10**6))`) takes 102 ms, the naive pipeline ran at 12,139-14,172 rows/s (34,335 in
session 8), and CPU seconds of one run varied by 30% between identical runs. Polars 2.1 (1.44.2 measured in
turn: the same within the noise). Per 198k-row range in a worker (best of 5, CPU-s): read 0.065 (+0.03 for the
line-break check, now ~0.005), normalize_column 0.63 (a fixed ~0.12 s per call: ~415 polars operations at
~0.27 ms each, then ~3.5 us a row), blind indexes 0.12, write 0.15 (+0.07 for reading the range again).
What changed: a range's line breaks in cells are told by counting lines against records (only when it holds
a quote character), and the writing pass does not check again (the first pass read the same bytes); the
run's counts on a lazy frame (each count reads its columns only). Tried and not kept: the HLR estimate's
normalisation in these worker processes (1M varied rows: 7.0 s against 7.9 s wall, 12.5 against 9.8 CPU-s:
normalisation costs ~1 s per call on many countries, and the main process already runs polars on both
cores); 32 MB ranges (normalisation ~6% cheaper per row, but a worker's memory doubles).
`python bench/clean.py --rows 5000000` at 06:06 UTC, load 2.2 -> 2.6: better of 2 24.8 s, 201,647 rows/s
(runs 165,044 and 201,647), CPU 45.5 s; peak RSS 1,153 MB in the job's process, 1,476 MB over its processes
(611 MB at 1M rows); naive 12,139 rows/s: ratio 16.6x; line_type column +8.0%; outputs identical. At the
session's start (before these changes), on the same machine: 216,788 / 175,201 rows/s, 15.3x, CPU 43.4 s.
On this machine 400,000 rows/s would need about twice the throughput; the ratio to naive holds above 15x.

Issue 20, session 10 (2026-12-07 11:08-12:20 UTC). A fast machine again (the pure-Python loop 41 ms, naive
34,600-34,800 rows/s), yet session 9's code took 24-26 CPU-s here (19.2 in session 8): `perf record` showed
37% of the samples in the kernel, ~9.5% zeroing fresh pages (clear_page_erms under page faults). Measured with
the job run in one process and the kernel's share (now printed as "system"): the workers faulted ~680,000
pages (2.3-3.0 s of kernel time), the job's own process ~430,000 (2.4-3.5 s, part of it SQLite's reads of the
3.2 GB list database). The cause in the workers: polars sets jemalloc to give freed pages back within 0.5-1 s
(`_RJEM_MALLOC_CONF`, its defaults first, ours appended and winning), and a worker allocates and frees ~350
MB per range. Workers now keep freed pages 3 s (pipeline.WORKER_MALLOC_CONF): ~480,000 faults, ~1.5 s.
Per 251k-row range in a worker (CPU-s, best of 5, this machine): read 0.047, normalize_column 0.367 (_clean
0.079, _lookup 0.228 = replica 0.158 + second reading 0.058, meet's hash/join/gather ~0.06-0.08), blind
indexes 0.162 (0.137 of it the hashing loop: CPython's SHA-256 and OpenSSL's cost the same here), write 0.103
+ reading again 0.034. The job's process: scan ~2.1-2.5 CPU-s (a thread, during step 1), match ~2 CPU-s in
1.2-1.7 s (the workers wait), writing ~1 CPU-s.
Tried and not kept: huge pages (POLARS_THP=1; in the workers the faults fell to ~136,000 but not the time, in
the job's process the kernel time rose 2.5 -> 4 s); freed pages kept for good in the workers (~220,000 faults,
1.3 s, but the processes together peaked at 1.9-2.04 GB); 100,000-row scan chunks (the scan thread 3.0 -> 2.45
CPU-s and 120,000 -> 46,000 faults, but the job's process faulted 250,000 pages more in all, rechunked once or
not: SQLite grows each chunk's group_concat buffer by doubling, and glibc hands 3 MB blocks of a thread's arena
back to the system between chunks where it kept 32 MB ones); polars-hash's vectorised SHA-256 composed into
HMAC (hex in and out: 0.27-0.44 s per 225k numbers against 0.17 s for our loop); a larger malloc mmap
threshold in the job's process (no change).
Kernel time is the noisy part on this machine: the bench's measured runs show 4.3-7.2 s of it for the same job
(runs after the first in one bench invocation mostly 6.3-7.2 s; the job run directly in one process: ~4.1 s;
no reclaim or compaction in /proc/vmstat), so the wall clock moves with it. A likely cause: the machine is a VM
whose balloon device has free page reporting on (virtio0's feature bit 5; /sys/module/page_reporting/
parameters/reported_kib ~93 GB), so memory the guest freed (an earlier run's processes, the 3.2 GB database
copy's page cache) goes back to the host and costs more to fault in again; it is also why keeping freed pages
inside a process pays here. `python bench/clean.py --rows
5000000 --repeat 3` at 11:53 UTC, load 1.3 -> 2.2: better of 3 13.0 s, 383,755 rows/s (runs 356,700,
359,836, 383,755), CPU 23.1 s (system 4.3 s), peak RSS 1,234 MB in the job's process, 1,696 MB over its
processes (673 MB at 1M rows), naive 34,830 rows/s: 11.0x; line_type column +1.4% (CPU +4.6%); outputs
identical. Before the change, the same bench: 355,969 / 350,228 rows/s (10.3x), CPU 25.7 s. Its best run
here reached 428,638 rows/s (CPU 21.8 s, system 3.4 s; 12.8x). Targets on this machine: peak met; 400,000
rows/s reached in some runs, not as the better of every invocation; 15x NOT met (it needs ~520,000 rows/s,
~17.5 CPU-s: the kernel's 4-7 s and the hashing's 3.3 s are the largest parts left besides normalisation's 7.3).
What would pay next: the job's own page faults (its polars allocator is set up before the run; only the
workers' can be chosen), a compiled batch HMAC with SHA-NI, meet's string gathers in normalize_column.

Issue 20, session 11 (2026-12-07 13:33-16:30 UTC; a fast machine again: the pure-Python loop 41-47 ms, naive
30,600-34,100 rows/s; the same code took 11.9 to 18.4 s between runs minutes apart, user CPU 19-26 s, so only
alternated runs compare). At the start (952d8ef), `python bench/clean.py --rows 5000000` at 13:38: 325,377 and
356,427 rows/s, CPU 28.1 / 25.5 s (system 7.3 / 6.1), peak 1,205-1,213 MB (1,659-1,668 together), 11.6x.
The job's own process, per pass (getrusage around each, two runs): step 1 user 1.9-2.3 s, system 1.1-2.3 s,
~193,000 page faults (the list scan ~137,000: SQLite's 32 MB group_concat buffers and their bytes copies are
mapped fresh per chunk); match 2.0-2.6 s wall, user 1.7-2.1, system 1.0-1.7, ~196,000 faults (first_seen alone
~72,000); step 3 user 0.7, system 0.7-0.9, 31,000-40,000 faults. A fault costs ~8-10 us of kernel time here
(~426,000 for 3.3-4.3 s), so memory touched for the first time is what the kernel time measures. One finding:
a 250k-row range's prepared frame pickled in ~35 ms with its E.164 column and ~5 ms without (its columns one by
one: 6.5 ms in all; the 13.5 MB pickle buffer, faulted in fresh, is the cost), and the job pickled the E.164
texts again for every range it handed back to be written.
What changed: the numbers go between the job and its workers as one bytes block per range (`ranges.Prepared`:
the valid rows' E.164 numbers joined by newlines, the very block the blind indexes were hashed from), handed
back with the range to write; the job matches and dedups on k1, k2 alone (first_seen's check of a repeated k1
compares k2: 128 bits, as the list matching does) and builds the texts only when a lookup probes the database
(`FilterSet.needs_text`; a small file against a big list). Alternated with 952d8ef, same data, outputs
identical: the match 1.48-2.6 s (952d8ef's runs today) -> 0.94-1.6 s (most runs 1.0-1.2), its faults
~196,000 -> ~154,000; step 3's faults in the job ~35,000 -> ~16,000; peak 1,202-1,241 -> 1,041-1,122 MB; CPU
in pairs 22.4 -> 21.6, 26.0 -> 22.1, 27.2 -> 27.1 s.
`python bench/clean.py --rows 5000000 --repeat 3` at 14:13 UTC, load 1.2 -> 2.6 (a slow spell): better of 3
13.7 s, 365,408 rows/s (runs 284,681, 361,474, 365,408), CPU 25.0 s (system 4.7), peak 1,067 MB in the job's
process (1,560 MB together), 565 MB at 1M rows, naive 34,104 rows/s: 10.7x; line_type +5.3%; outputs identical.
Single runs of the same code at 14:20 in a fast spell: 11.87 s (421,236 rows/s, CPU 21.8, system 3.2) and
13.14 s, with the workers' allocator variants below in between.
Tried and not kept: the scan through SQLite's mmap (system 0.9 -> 0.7 s, user +0.4 s: the same CPU); 16 KB
pages (a 10M-row scan 2.3-2.5 -> 1.6-2.3 s, system -0.4 s: only a new database would get them, and a random
write then logs 16 KB pages instead of 4: not changed); mallopt in the job's process (a fixed 32 MB mmap
threshold, 2 GB trim threshold) with 500,000-row scan chunks (step 1's faults 193,000 -> 145,000, the run time
within the noise, and a process-wide setting for a long-lived worker process); 250,000-row scan chunks alone
(faults +86,000 in step 1 and +150,000 in step 3); GLIBC_TUNABLES for the workers (their kernel time
unchanged); the workers' jemalloc keeping dirty or muzzy pages for good (system 2.8-3.5 s either way, the
processes together 1.8-1.92 GB); first_seen over 8-64 partitions of k1 (0.51-0.60 s against arg_unique's 0.26 s);
an is_in filter of the list before its join (0.53 against 0.30 s); the formula check by starts_with (36 against
25 ms per range). A batch HMAC with SHA-NI is still the largest single saving in sight (sha_transform is the
hottest symbol in the workers, ~2 CPU-s; OpenSSL's per-call cost is higher than the builtin's, 1.19 against
0.74 us a number measured here); no maintained package offers one.
The session's last code (with the HLR fix beside it), `python bench/clean.py --rows 5000000 --repeat 3` at 14:57
UTC, load 1.9 -> 2.2 (a fast spell): better of 3 11.2 s, 444,462 rows/s (runs 396,952, 408,508, 444,462), CPU
20.6 s (system 3.3), peak RSS 1,124 MB in the job's process (1,591 MB together), 594 MB at 1M rows, naive 35,322
rows/s: 12.6x; line_type +7.0%; outputs identical. `bench/hlr_estimate.py --rows 1000000` right after: 4.37 s
(4.61 s the first run), 7.9x naive. Targets here: 400,000 rows/s and the peak met in this invocation, 15x not
(~530,000 rows/s: ~9.4 s, ~17.5 CPU-s).
Per 252k-row range now (one process, polars on one thread, best of 5): normalize_column 374 ms (_clean 82,
meet's own work 64, the replica's first and second readings 213 of which the region walk 49, the national
prefix 34, the calling code 31), blind indexes ~165, the write 166 (reading again 33, the numbers block back
to a column 9, neutralise and write_csv of both files ~120).

Issue 20, session 12 (2026-12-07 16:25-19:25 UTC; a slower machine than session 11's fast spell: naive 25,600-
34,500 rows/s between invocations, the same code 12.1-16.0 s). What changed: blind indexes in bulk come from
a native module, `phoneops.numbers._blindhash` (C, built by setup.py; OpenSSL's SHA-256, which uses the CPU's
SHA instructions here, from the keyed inner and outer states prepared once, the GIL released): 252,000
numbers in 28 ms against 194 ms for the interpreter's loop (~0.11 against ~0.77 us a number), the same bytes
(tests: every path against `hmac`, hypothesis over random keys). Per range, prepare_numbers is now
normalize_column (349 ms) plus ~12 ms; the block's shape check (a regex over it) is 10 ms of the 38 ms that
hashing a block costs in all. Measured and not kept (the same numbers, this machine): HMAC composed in polars
from polars-hash's vectorised SHA-256 (its hex output decoded and fed back: ~0.9 us a number; its own
hmac_sha256 takes the key as a text, which a random 32-byte key is not), OpenSSL one call per number
(`hmac.digest`: 1.7 us; `_hashlib.hmac_digest` through `map`: 1.4 us).
Old (73d7476, PYTHONPATH at its src) and new alternated on the same data, `--repeat 1 --no-line-type`, outputs
identical: old 14.4 s and 14.2 s (CPU 26.1, 25.7 s), new 14.0 s and 12.5 s (CPU 25.3, 22.5 s). The bench now
prints the job's own process's user and system CPU beside the total: in a 12.1 s run, 3.2 s user and 3.6 s
system in the job's process (its ~1 GB peak faulted in at ~9 us a page), the workers the rest (15.7 s).
`python bench/clean.py --rows 5000000 --repeat 3` at 16:45 UTC (load 1.1 -> 2.7): better of 3 12.2 s,
408,467 rows/s (runs 311,979, 358,482, 408,467), CPU 22.0 s (system 4.4), peak 1,075 MB (1,497 MB together),
558 MB at 1M rows, naive 25,643 rows/s: 15.9x, outputs identical. Every "done when" figure held in that
invocation, but its naive rate was the lowest measured here (a slow spell while the naive ran), so the ratio
owes part of its size to the machine. The next invocation at 16:51 (load 0.5 -> 1.9): better of 3 12.8 s,
392,014 rows/s (runs 392,014, 317,024, 381,826), CPU 23.1 s, peak 1,014 MB, naive 32,437 rows/s: 12.1x.
Where the CPU goes now (a 5M-row run of ~22-23 CPU-s): the workers ~15.7 CPU-s, i.e. ~800 ms a 252k-row
range with polars on one thread as they run it (prepare_range 635: reading 58, normalize_column ~560, the
hashing ~40; write_range 164), the job's process ~6.5 (scan ~2, match ~1.3, the rest receiving and sending
the ranges' frames and writing the files), 4-7 s of all of it kernel time, mostly first touches of fresh
memory. (Measured on two polars threads, as an earlier section's profile was, normalize_column takes ~350 ms
of wall time for about the same CPU.) normalize_column at one thread, line by line (line_profiler, best of
4): _clean 92 ms, meet's hash join and gather ~97, the first reading (_replica over 227k distinct
candidates) ~233 of which the calling code and region staging ~46, the national prefix ~39, the region walk
~65 (its two validity regexes per step ~51), the final columns ~20; the second reading of the 40k candidates
written as digits without "+" ~56-84. Reading both readings in one _replica call (the second speculatively
for the 52k bare candidates not starting with 0) measured 208 ms against 167 + 56: ~15 ms a range, not
done. The next large saving is in the replica's per-row regex work and its many small polars steps; it
must keep agreeing with phonenumbers (tests/numbers).

Issue 20, session 13 (2026-12-07 19:14-22:14 UTC, a fresh machine of the same kind). A fresh install pulled
polars 2.2.0 (a major release; every install was unpinned) and this bench's data generator failed on
`Expr.get` with a column index (now `Expr.gather`); installs are now pinned (constraints.txt). On the data the
fixed generator makes (outputs recorded by the main of the session's start, 6323855, and identical in every
run since): `--repeat 3` at 19:47 UTC, load 1.6 -> 2.1: better of 3 14.2 s, 351,721 rows/s (runs 339,998,
323,377, 351,721), CPU 25.7 s (system 6.4), peak 1,040 MB (1,505 MB together; 583 MB at 1M rows), naive
18,422 rows/s: 19.1x. The naive per-row pipeline runs at 17,700-18,700 rows/s here (25,600-34,800 on the
machines of sessions 10-12), so the ratio holds; rows/s does not. Single runs of the same code that hour:
13.0-16.7 s. The second and later runs of an invocation are mostly the slower ones (CPU 27-35 s against
23.5-26 s, system 6.9-9.4 s against 3.5-4.7 s): the same work costs more once earlier runs have freed their
memory (see session 10 on the VM's free page reporting; this kernel also runs a DAMON thread, kdamond).
Tried, not kept: polars' jemalloc with `thp:always` in the job's process (system time 3.3 vs 2.1-4.0 s,
inside the noise), freed pages kept 5 s in the job's process (3.7 vs 3.8 s of system time). The match step,
1.46 s of wall time (2.06 CPU-s), was first_seen 0.66 s (one core: a hash of the 4.5M valid rows' k1,
`arg_unique`, then the k2 check) and the list joins 0.70 s (1.19 CPU-s); first_seen now sorts the k1s with
numpy (0.08 s for 4.5M) and tells apart on both keys only the rows of repeated k1s: 0.63 -> 0.30-0.42 s alone.
End to end that is inside the noise (old and new alternated, `--repeat 1`: old 14.4 and 13.2 s, new 14.2 and
14.6 s; match 1.52/1.26 against 1.25/1.58 s). Per range at one polars thread (255k rows): read 49 ms,
normalize_column 480-590 ms, joining and hashing the block 63 ms, writing 132 ms. The lists' scan in SQLite
(10M rows, `status IN (...)`, a chunk of 1M rowids per query) costs ~3.9 CPU-s alone (2.95 user, 1.0
system); without the status test 2.75, and through the blind-index index (471 MB against the table's 2.17 GB)
2.4. A covering index on (status, blind_index), tried on a copy of this data (13.6 s to create, +516 MB):
read through it in 16 chunks of the first byte (`status = 'blacklist' AND blind_index >= ? AND < ?`), the
scan took 2.2-2.8 CPU-s user and 0.2-0.35 system against 2.95 and 1.0, i.e. ~1-1.4 CPU-s less in the step
where the processes compete (~0.6 s of wall time). Beware: with that index present, today's rowid-chunk query
is planned through it (its `status IN (...)`) and took 11.7 s instead of 4; the index needs its own query.
Not done: a migration, a second copy of every blind index, and upkeep on every status change, for ~4%.

Issue 20, session 14 (2026-12-07 22:27 UTC-, the same machine kind; naive 16,400-20,800 rows/s). At the
start (93a21ec) `--repeat 3` at 22:39 UTC: better of 3 13.3 s, 374,802 rows/s (runs 372,568, 364,822,
374,802), CPU 24.6 s (system 6.7), 18.0x. perf (`perf record -a -g` over one run, the samples of the job's
window): the job's process 7.6 CPU-s, 3.0 of them in the kernel: the scan thread 2.9 s (SQLite 1.3 s user;
copying the table's pages out of the page cache, pread, 0.33 s), the main thread 2.0 s (writing the outputs
into the page cache 0.64 s, their SHA-256 0.24 s, Python's collector 0.16 s), polars' threads 1.2 s (the
match's joins). A worker 8.5 CPU-s, 1.0 in the kernel; its regexes ~1.5 s (the replica's walk and national
prefix, `_clean`'s separator class), the collector 80 ms.
What changed: (1) the lists are scanned from a new index of (status, blind_index) (migration 0017), a range
of keys per chunk (`keys.key_ranges`; a 32-byte index compares above a two-byte bound it starts with), never
from the table's rows: 2.4 CPU-s against 3.1-3.6 for 10M listed numbers (session 13's trap is tested: every
scan query's plan reads that index, none cuts by rowid); its upkeep costs manual list imports ~3-5%
(`bench/list_import.py --rows 200000`, alternated: 25.3/25.7 s -> 26.4/26.9 s). (2) `_clean` drops the
separators with `str.replace_many` (17.5 against 31 ms a range) and reads "tel:" without a regex (21 against
24 ms). (3) The workers freeze what exists after their warm-up (`gc.freeze`), so a full collection stops
walking every module's objects.
Old (93a21ec) and new alternated, `--repeat 1 --no-line-type`, outputs identical: old 13.8 and 13.1 s (CPU
25.1, 23.5), new 12.9 and 12.6 s (CPU 23.1, 22.5); step 1 9.3/9.05 -> 8.5/8.3 s.
`python bench/clean.py --rows 5000000 --repeat 3` at 23:02 UTC on 3a5f0da, load 1.2 -> 2.7 over its runs:
better of 3 11.6 s, 430,609 rows/s (runs 424,672, 430,609, 417,662: each over 400,000), CPU 20.9 s (system
4.2), peak 1,059 MB (1,543 MB together), 553 MB at 1M rows, naive 20,508 rows/s: 21.0x; line_type +11%;
outputs identical. The same invocation on 55f9503 (before the index) at 22:52: 370,977, 384,828 and
402,166 rows/s. `bench/hlr_estimate.py --rows 1000000` at 23:06: 4.85 s, 11.6x naive.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import multiprocessing
import os
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_ENV = {
    "SESSION_SECRET": "bench-session-secret-" + "b" * 32,
    "AES_KEYS": "b1:" + base64.urlsafe_b64encode(b"\x11" * 32).decode(),
    "BLIND_INDEX_KEY": base64.urlsafe_b64encode(b"\x12" * 32).decode(),
    "LOG_LEVEL": "WARNING",
    "LOG_JSON": "true",
}
REGION = "GB"
COUNTRIES = [  # calling code, leading digits of the national number, digits after them, weight
    ("44", ["7400", "7825", "7956", "7533", "7722", "7496", "7412", "7851", "7903", "7575", "7312", "7888"], 6, 50),
    ("1", ["4155", "2127", "3104", "6462", "9175", "3125", "6175"], 6, 12),
    ("49", ["151", "160", "170", "176"], 8, 8),
    ("33", ["61", "66", "67", "68"], 7, 8),
    ("91", ["98", "99", "70", "81"], 8, 8),
    ("55", ["119", "219"], 8, 5),
    ("234", ["803", "806", "813"], 7, 4),
    ("27", ["82", "83", "72"], 7, 3),
    ("39", ["31", "33", "34"], 7, 1),
    ("34", ["6"], 8, 1),
]
JUNK = ["", "n/a", "unknown", "call me", "{{phone}}", "+", "123", "0000", "tel:", "NULL"]
NAMES = ["Olivia", "Liam", "Amelia", "Noah", "Isla", "Oliver", "Ava", "Elijah", "Mia", "James", "=1+2", "@SUM(A1)"]
SOURCES = ["facebook", "google", "tiktok", "affiliate-12", '=HYPERLINK("http://x")', "organic"]


def generate(rows: int, seed: int):  # type: ignore[no-untyped-def]
    """The list as a polars frame, plus `e164` (the number behind each row, null for junk)."""
    import polars as pl

    i = pl.int_range(rows, dtype=pl.UInt64)

    def h(k: int) -> pl.Expr:
        return i.hash(seed * 1000 + k)

    total = sum(c[3] for c in COUNTRIES)
    bucket = h(1) % total
    lo = 0
    cc = pre = nd = None
    for code, prefixes, digits, weight in COUNTRIES:
        cond = (bucket >= lo) & (bucket < lo + weight)
        lo += weight
        pick = pl.lit(pl.Series(prefixes)).gather(h(2) % len(prefixes))
        cc = (pl.when(cond) if cc is None else cc.when(cond)).then(pl.lit(code))
        pre = (pl.when(cond) if pre is None else pre.when(cond)).then(pick)
        nd = (pl.when(cond) if nd is None else nd.when(cond)).then(pl.lit(digits))
    df = pl.select(i=i, cc=cc, pre=pre, nd=nd, r=h(3), f=h(4) % 100, kind=h(5) % 1000, d=h(6) % 100)
    df = df.with_columns(tail=(pl.col("r") % (10**8)).cast(pl.String).str.zfill(8).str.slice(pl.lit(8) - pl.col("nd")))
    df = df.with_columns(nsn=pl.concat_str("pre", "tail"))
    nsn, code, f = pl.col("nsn"), pl.col("cc"), pl.col("f")
    gb = code == "44"
    written = (
        pl.when(f < 30).then(pl.concat_str(pl.lit("+"), code, nsn))
        .when(gb & (f < 55)).then(pl.concat_str(pl.lit("0"), nsn.str.slice(0, 4), pl.lit(" "), nsn.str.slice(4)))
        .when(f < 65).then(pl.concat_str(code, nsn))
        .when(f < 75).then(pl.concat_str(pl.lit("00"), code, pl.lit(" "), nsn.str.slice(0, 3), pl.lit(" "),
                                         nsn.str.slice(3)))
        .when(gb & (f < 85)).then(pl.concat_str(pl.lit("+44 (0)"), nsn.str.slice(0, 4), pl.lit(" "),
                                                nsn.str.slice(4, 3), pl.lit("-"), nsn.str.slice(7)))
        .when(gb & (f < 92)).then(pl.concat_str(pl.lit("0"), nsn.str.slice(0, 4), pl.lit("-"), nsn.str.slice(4, 3),
                                                pl.lit("-"), nsn.str.slice(7)))
        .when(f < 96).then(pl.concat_str(pl.lit("tel:+"), code, nsn))
        .otherwise(pl.concat_str(pl.lit("+"), code, pl.lit(" "), nsn.str.slice(0, 3), pl.lit(" "), nsn.str.slice(3)))
    )
    df = df.with_columns(written=written, e164=pl.concat_str(pl.lit("+"), code, nsn))
    kind = pl.col("kind")  # 0-49: repeat of an earlier row (5%); 50-149: invalid (10%)
    earlier = pl.col("r") % pl.max_horizontal(pl.col("i"), pl.lit(1, pl.UInt64))
    df = df.with_columns(
        phone=pl.when(kind < 50).then(pl.col("written").gather(earlier))
        .when(kind < 100).then(pl.lit(pl.Series(JUNK)).gather(pl.col("r") % len(JUNK)))
        .when(kind < 150).then(pl.col("written").str.slice(0, 6))
        .otherwise("written"),
        e164=pl.when(kind < 50).then(pl.col("e164").gather(earlier)).when(kind < 150).then(None)
        .otherwise("e164"),
    )
    return df.select(
        name=pl.lit(pl.Series(NAMES)).gather(h(7) % len(NAMES)),
        phone="phone",
        email=pl.concat_str(pl.lit("user"), pl.col("i").cast(pl.String), pl.lit("@example.com")),
        signup_date=pl.concat_str(pl.lit("2024-"), ((pl.col("d") % 12) + 1).cast(pl.String).str.zfill(2),
                                  pl.lit("-"), ((pl.col("d") % 28) + 1).cast(pl.String).str.zfill(2)),
        source=pl.lit(pl.Series(SOURCES)).gather(h(8) % len(SOURCES)),
        e164="e164",
    )


def _seal_chunk(values: list[str]) -> list[tuple[bytes, bytes]]:
    from phoneops.numbers.vault import get_vault

    vault = get_vault()
    indexes = vault.index_many(values)
    return [(index, vault.seal(value, index)) for value, index in zip(values, indexes, strict=True)]


def migrate(db_path: Path) -> None:
    """Bring a database prepared by an earlier version of the code to the current migrations (a new index is
    built once here, not in a measured run)."""
    from phoneops.core.migrate import upgrade

    def applied() -> set[str]:
        with sqlite3.connect(db_path) as con:
            return {row[0] for row in con.execute("SELECT version_num FROM alembic_version")}

    before = applied()
    started = time.perf_counter()
    upgrade(f"sqlite:///{db_path}")
    if applied() != before:
        print(f"  migrated {db_path.name} to the current schema ({time.perf_counter() - started:.1f}s)", flush=True)


def prepare(args: argparse.Namespace, csv_path: Path, db_path: Path, lists_path: Path) -> None:
    """Write the CSV and a migrated SQLite database with the lists (run in a separate process)."""
    import polars as pl

    from phoneops.core.migrate import upgrade

    started = time.perf_counter()
    frame = generate(args.rows, args.seed)
    frame.drop("e164").write_csv(csv_path)
    numbers = frame["e164"].drop_nulls().unique().sort()
    pick = numbers.to_frame().with_columns(k=pl.col("e164").hash(args.seed) % 100)
    on_black = pick.filter(pl.col("k") < 10)["e164"]
    on_monitor = pick.filter(pl.col("k").is_between(10, 11))["e164"]
    used = pick.filter(pl.col("k") == 12)["e164"]
    filler_n = max(0, args.blacklist - on_black.len())
    filler = pl.select(e164=pl.concat_str(pl.lit("+447"), (pl.int_range(filler_n, dtype=pl.UInt64)
                                                           .hash(args.seed + 99) % 10**9).cast(pl.String)
                                          .str.zfill(9)))["e164"]
    blacklist = pl.concat([on_black, filler]).unique().to_frame()
    blacklist = blacklist.join(on_monitor.to_frame(), on="e164", how="anti")["e164"]
    pl.DataFrame({"list": ["blacklist"] * on_black.len() + ["monitor"] * on_monitor.len() + ["used"] * used.len(),
                  "e164": pl.concat([on_black, on_monitor, used])}).write_parquet(lists_path)
    print(f"  generated {args.rows:,} rows and lists in {time.perf_counter() - started:.1f}s", flush=True)

    building = db_path.with_suffix(".building")
    building.unlink(missing_ok=True)
    upgrade(f"sqlite:///{building}")
    con = sqlite3.connect(building)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    ctx = multiprocessing.get_context("spawn")
    todo = [("blacklist", blacklist), ("monitor", on_monitor)]
    with ctx.Pool(max(1, os.cpu_count() or 1)) as pool:
        for status, values in todo:
            chunks = [values.slice(o, 250_000).to_list() for o in range(0, values.len(), 250_000)]
            rows = []
            for part in pool.imap(_seal_chunk, chunks):
                rows.extend(part)
            print(f"  sealed {len(rows):,} numbers ({time.perf_counter() - started:.0f}s)", flush=True)
            rows.sort()
            con.executemany(
                "INSERT INTO phone_numbers (blind_index, sealed, country, status, authority, reason, source, "
                "listed_at, first_seen_at, updated_at) VALUES (?, ?, ?, ?, 'manual', 'bench', 'BENCH', ?, ?, ?)",
                ((bi, sealed, None, status, now, now, now) for bi, sealed in rows),
            )
            con.commit()
            print(f"  stored {len(rows):,} numbers on the {status} list ({time.perf_counter() - started:.0f}s)",
                  flush=True)
        used_rows = sorted(index for index, _ in pool.apply(_seal_chunk, (used.to_list(),)))
    con.executemany("INSERT INTO used_numbers (blind_index, added_at) VALUES (?, ?)", ((b, now) for b in used_rows))
    con.commit()
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    building.replace(db_path)  # complete data only: a cache interrupted half-way is rebuilt
    print(f"  prepared in {time.perf_counter() - started:.0f}s", flush=True)


def _rss_tree_mb() -> float:
    """Resident memory of this process and its children (the job's worker processes), now."""
    me = os.getpid()
    pids = [me]
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            pids += [int(p) for p in Path(f"/proc/{me}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


class TreePeak:
    """The largest `_rss_tree_mb` seen while it runs (sampled every 50 ms in a thread)."""

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss_tree_mb())

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _hwm_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and its reaped children, and the kernel's part of them (page faults of fresh
    memory, reads and writes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    kernel = own.ru_stime + children.ru_stime
    return own.ru_utime + children.ru_utime + kernel, kernel


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_ours(csv_path: Path, workers: str, line_type: bool = False) -> dict[str, object]:
    """One cleaning job end to end in this (fresh) process: seconds, upload seconds, stats, peak RSS, CPU
    seconds and the sha256 of the cleaned and rejected files."""
    from phoneops.cleaning import pipeline, service, upload
    from phoneops.core import db, jobs
    from phoneops.core.security import SYSTEM
    from phoneops.core.storage import get_storage
    from phoneops.registry import load_domains

    if workers != "auto":
        pipeline.POOL_MIN_ROWS = 0 if workers == "on" else 10**15
    db.configure(os.environ["DATABASE_URL"])
    load_domains()
    jobs.set_enqueue_hook(lambda job_id, delay: None)
    started = time.perf_counter()
    with db.session_scope() as session:
        record = upload.upload_path(session, SYSTEM, csv_path, region=REGION)
        file_id = record.id
    uploaded = time.perf_counter()
    extra = {"line_type": True} if line_type else {}
    with db.session_scope() as session:
        run = service.start_clean(session, SYSTEM, file_id, filters=["monitor", "used"], **extra)
        job_id, run_id = run.job_id, run.id
    assert job_id is not None
    cpu, kernel = _cpu()
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    with TreePeak() as tree:
        status = jobs.run_job(job_id)
    finished = time.perf_counter()
    for child in multiprocessing.active_children():  # the job's workers exit after it; their CPU time counts
        child.join()
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    cpu_after, kernel_after = _cpu()
    cpu, kernel = cpu_after - cpu, kernel_after - kernel
    own = resource.getrusage(resource.RUSAGE_SELF)
    job_user, job_sys = own.ru_utime - own_before.ru_utime, own.ru_stime - own_before.ru_stime
    peak = _hwm_mb()
    with db.session_scope() as session:
        done = service.get_run(session, run_id)
        if status != "succeeded":
            raise SystemExit(f"the cleaning job ended {status}: {done.error}")
        stats = dict(done.stats)
        storage = get_storage()
        hashes = {name: _sha256(storage.path_for(stored)) for name, stored in
                  (("cleaned", done.output_file_id), ("rejected", done.rejected_file_id)) if stored}
    return {"seconds": finished - uploaded, "upload_seconds": uploaded - started, "stats": stats, "peak": peak,
            "cpu": cpu, "sys": kernel, "hashes": hashes, "workers_peak": workers_peak,
            "job_user": job_user, "job_sys": job_sys,
            "tree_peak": tree.peak}


def _measure(csv_path: Path, workers: str, line_type: bool, result: Any) -> None:
    result.update(run_ours(csv_path, workers, line_type))


def measure(csv_path: Path, db_path: Path, work: Path, workers: str, line_type: bool = False) -> dict[str, Any]:
    """`run_ours` in a fresh process on a fresh copy of the lists (so peak RSS is this job's own), with the
    load average before and after."""
    import shutil

    run_db = work / "run.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{run_db}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(db_path) as src, sqlite3.connect(run_db) as dest:
        src.backup(dest)  # every run starts from the same lists, with no earlier run's files
    os.sync()  # the copy written out before the run starts: its write-back is not the run's time
    shutil.rmtree(work / "files", ignore_errors=True)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        shared = manager.dict()
        load_before = os.getloadavg()[0]
        process = ctx.Process(target=_measure, args=(csv_path, workers, line_type, shared))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise SystemExit("the measured run failed")
        out = dict(shared)
    out.update(load_before=load_before, load_after=os.getloadavg()[0])
    return out


def run_floor(csv_path: Path) -> float:
    import polars as pl

    started = time.perf_counter()
    frame = pl.read_csv(csv_path, infer_schema=False)
    return frame.height / (time.perf_counter() - started)


def run_naive(csv_path: Path, lists_path: Path, sample: int) -> float:
    import hmac

    import phonenumbers
    import polars as pl
    from phonenumbers import NumberParseException, PhoneNumberFormat

    from phoneops.core.csvio import neutralise
    from phoneops.settings import get_settings

    key = get_settings().blind_key()
    lists = pl.read_parquet(lists_path)

    def indexes(name: str) -> set[bytes]:
        values = lists.filter(pl.col("list") == name)["e164"].to_list()
        return {hmac.digest(key, v.encode(), "sha256") for v in values}

    black, monitor, used = indexes("blacklist"), indexes("monitor"), indexes("used")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for _, row in zip(range(sample), reader, strict=False)]
    phone = header.index("phone")
    clean, rejected = io.StringIO(), io.StringIO()
    clean_writer, rejected_writer = csv.writer(clean), csv.writer(rejected)
    seen: set[str] = set()
    started = time.perf_counter()
    for row in rows:
        reason = None
        try:
            number = phonenumbers.parse(row[phone], REGION)
            e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164) \
                if phonenumbers.is_valid_number(number) else None
        except NumberParseException:
            e164 = None
        if e164 is None:
            reason = "invalid"
        elif e164 in seen:
            reason = "duplicate"
        else:
            seen.add(e164)
            index = hmac.digest(key, e164.encode(), "sha256")
            if index in black:
                reason = "blacklisted"
            elif index in monitor:
                reason = "monitored"
            elif index in used:
                reason = "already_used"
        if reason is None:
            clean_writer.writerow([neutralise(v) for v in [*row[:phone], e164, *row[phone + 1:]]])
        else:
            rejected_writer.writerow([neutralise(v) for v in [*row, reason]])
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--blacklist", type=int, default=None, help="numbers on the blacklist (default 2 x rows)")
    parser.add_argument("--naive-sample", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "phoneops-bench-clean")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached data")
    parser.add_argument("--workers", choices=["auto", "on", "off"], default="auto",
                        help="threads and hashing processes (auto: by file size)")
    parser.add_argument("--repeat", type=int, default=2, help="measured runs (the better is reported)")
    parser.add_argument("--peak-rows", type=int, default=1_000_000,
                        help="also run on the file's first N rows and print that peak RSS (0: skip)")
    parser.add_argument("--no-line-type", dest="line_type", action="store_false",
                        help="skip the run with the line_type column")
    args = parser.parse_args()
    args.blacklist = args.blacklist if args.blacklist is not None else 2 * args.rows
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{args.rows}-{args.blacklist}-{args.seed}"
    csv_path, db_path, lists_path = work / f"list-{tag}.csv", work / f"db-{tag}.sqlite", work / f"lists-{tag}.parquet"
    run_db = work / "run.sqlite"
    os.environ.update(BENCH_ENV)
    os.environ.update({"DATA_DIR": str(work / "data"), "STORAGE_ROOT": str(work / "files"),
                       "DATABASE_URL": f"sqlite:///{run_db}", "MAX_UPLOAD_MB": "4096"})
    if args.fresh or not (csv_path.exists() and db_path.exists() and lists_path.exists()):
        print(f"preparing {args.rows:,} rows and a {args.blacklist:,}-number blacklist in {work} ...", flush=True)
        process = multiprocessing.get_context("spawn").Process(target=prepare, args=(args, csv_path, db_path,
                                                                                       lists_path))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise SystemExit("preparing the data failed")
    process = multiprocessing.get_context("spawn").Process(target=migrate, args=(db_path,))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit("migrating the prepared database failed")
    reference_path = work / f"outputs-{tag}.json"
    reference = json.loads(reference_path.read_text()) if reference_path.exists() else None

    def line(name: str, run: dict[str, Any]) -> str:
        rows = int(run["stats"]["rows"])
        return (f"{name}: {run['seconds']:7.1f}s {rows / run['seconds']:>10,.0f} rows/s, CPU {run['cpu']:.1f}s "
                f"(system {run['sys']:.1f}s; {rows / run['cpu']:,.0f} rows per CPU-second; the job's own process user "
                f"{run['job_user']:.1f}s, system {run['job_sys']:.1f}s, its workers the rest), "
                f"peak RSS {run['peak']:,.0f} MB (a worker process "
                f"{run['workers_peak']:,.0f} MB; the job's processes together {run['tree_peak']:,.0f} MB), "
                f"load average {run['load_before']:.1f} -> {run['load_after']:.1f}")

    peak_small = None
    if args.peak_rows and args.peak_rows < args.rows:
        head = work / f"list-{tag}-head{args.peak_rows}.csv"
        if not head.exists():
            with csv_path.open("rb") as src_file, head.open("wb") as dest_file:
                for _, text in zip(range(args.peak_rows + 1), src_file, strict=False):
                    dest_file.write(text)
        small = measure(head, db_path, work, args.workers)
        peak_small = small["peak"]
        print(line(f"ours on the first {args.peak_rows:,} rows", small), flush=True)

    runs, typed_runs = [], []
    for attempt in range(args.repeat):  # with and without the column in turn, so a load change hits both
        runs.append(measure(csv_path, db_path, work, args.workers))
        print(line(f"ours, run {attempt + 1}", runs[-1]), flush=True)
        if args.line_type:
            typed_runs.append(measure(csv_path, db_path, work, args.workers, line_type=True))
            print(line(f"ours with the line_type column, run {attempt + 1}", typed_runs[-1]), flush=True)
    best = min(runs, key=lambda r: r["seconds"])
    typed = min(typed_runs, key=lambda r: r["seconds"]) if typed_runs else None
    stats, seconds, peak, cpu = best["stats"], best["seconds"], best["peak"], best["cpu"]
    hashes = best["hashes"]
    if reference is None:
        reference_path.write_text(json.dumps(hashes))
        identical = "recorded now (first run on this data)"
    else:
        identical = "identical" if all(r["hashes"] == reference for r in runs) else "DIFFERENT"
    rows = int(stats["rows"])
    ours = rows / seconds
    floor = run_floor(csv_path)
    naive = run_naive(csv_path, lists_path, args.naive_sample)
    print(f"rows {rows:,} (file {csv_path.stat().st_size / 1e6:,.0f} MB), blacklist {args.blacklist:,}")
    print(f"outcomes {stats['outcomes']}")
    print(f"timings {stats['timings']}, matching {stats['match_modes']}")
    print(f"upload (copy into storage + inspection): {best['upload_seconds']:.1f}s")
    rates = ", ".join(f"{rows / r['seconds']:,.0f}" for r in runs)
    print(f"ours  : {seconds:8.1f}s {ours:>12,.0f} rows/s (end to end: stored upload -> files + stats; better of "
          f"{len(runs)}: {rates})")
    print(f"floor : {rows / floor:8.1f}s {floor:>12,.0f} rows/s (polars read_csv only)  ours/floor {ours / floor:.2f}")
    print(f"naive : {rows / naive:8.1f}s {naive:>12,.0f} rows/s (per row, timed on {args.naive_sample:,} rows)"
          f"  ours/naive {ours / naive:.1f}x")
    print(f"peak RSS {peak:,.0f} MB at {rows:,} rows (the job's processes together: {best['tree_peak']:,.0f} MB)"
          + (f", {peak_small:,.0f} MB at {args.peak_rows:,} rows"
                                                          if peak_small else ""))
    print(f"outputs (sha256 of the cleaned and rejected files) vs {reference_path.name}: {identical}")
    overhead = cpu_overhead = None
    if typed is not None:
        overhead = max(0.0, typed["seconds"] / seconds - 1)
        cpu_overhead = max(0.0, typed["cpu"] / cpu - 1)
        print(f"line_type column: {rows / typed['seconds']:,.0f} rows/s with it vs {ours:,.0f} without, better of "
              f"{len(typed_runs)} each, run in turn (overhead {overhead:.1%} of the end-to-end time, "
              f"{cpu_overhead:.1%} of the CPU time); with it: {typed['stats'].get('line_types')}")
    print(json.dumps({
        "bench": "clean", "rows": rows, "rows_per_s": round(ours), "peak_rss_mb": round(peak),
        "peak_rss_mb_small": round(peak_small) if peak_small else None, "small_rows": args.peak_rows,
        "worker_peak_rss_mb": round(best["workers_peak"]), "processes_peak_rss_mb": round(best["tree_peak"]),
        "ratio_vs_naive": round(ours / naive, 1), "ratio_vs_floor": round(ours / floor, 3),
        "naive_rows_per_s": round(naive), "floor_rows_per_s": round(floor), "blacklist": args.blacklist,
        "seconds": round(seconds, 2), "runs_rows_per_s": [round(rows / r["seconds"]) for r in runs],
        "cpus": os.cpu_count(), "cpu_seconds": round(cpu, 1),
        "sys_seconds": round(best["sys"], 1), "rows_per_cpu_s": round(rows / cpu),
        "load_before": round(best["load_before"], 1), "load_after": round(best["load_after"], 1),
        "outputs": identical, "line_type_overhead": round(overhead, 3) if overhead is not None else None,
        "line_type_cpu_overhead": round(cpu_overhead, 3) if cpu_overhead is not None else None,
        "line_type_rows_per_s": round(rows / typed["seconds"]) if typed is not None else None,
    }))


if __name__ == "__main__":
    sys.exit(main())
