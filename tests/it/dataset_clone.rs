//! `cloner-worker clone A,B,C --out DIR/` end to end: many simulated Binance pairs cloned into
//! one Parquet dataset through a `serve` child process and the broker `scripts/kafka-up`
//! started, the dataset read back by pyarrow (`scripts/readback.py`) and compared with the
//! simulator's ground truth.
//!
//! What is proved: pairs of very different activity cloned in one run give a file per pair and
//! UTC day, listed in their manifests, equal to the ground truth trade for trade (decimals
//! exact), for about one call per page of trades and no 429; the same command again costs no
//! call and changes no file, and with a later `--until` costs only the new day's pages, the ids
//! going on across the day boundary; a run SIGKILLed at random moments and run again ends in
//! the same files, byte for byte, as an uninterrupted run, for few more calls; a pair the
//! exchange does not know is reported incomplete with the exchange's message while the others
//! complete, and the run exits non-zero; `--until now` writes yesterday, not today, and the same
//! command a few seconds later asks only for those seconds.
//!
//! The readback needs python3 (`scripts/py-env` installs pyarrow into `.run/py`); without it
//! the comparisons through pyarrow are skipped, saying so, and the rest still runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use cloner_worker::config::{Settings, VenueName};
use cloner_worker::dev::simulator::{agg_market, SimulatorConfig, SimulatorHandle, Venue};

use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

const DAY_SECS: i64 = 86_400;

/// A busy pair, a medium one (a tenth of the busy one's trades) and one of a few trades a day.
const BUSY: &str = "BTCUSDT";
const MEDIUM: &str = "ETHBTC";
const QUIET: &str = "XMRBTC";

/// The simulated Binance with `activity` per pair (the pairs are the default ones: BTCUSDT,
/// ETHBTC, XMRBTC, LTCBTC, ETHUSDT), at Binance's own weight limit (6000 a minute).
fn binance(activity: &[(&str, f64)]) -> SimulatorConfig {
    SimulatorConfig {
        venue: Venue::Binance,
        activity: activity
            .iter()
            .map(|&(pair, a)| (pair.to_string(), a))
            .collect(),
        ..SimulatorConfig::default()
    }
}

/// BUSY as it is (about 30 000 trades a day), MEDIUM at about 2 600, QUIET at about 5.
fn three_pairs() -> SimulatorConfig {
    binance(&[(MEDIUM, 0.3), (QUIET, 0.002)])
}

/// A service (4 workers) on the Binance venue at the whole budget (100 weight a second: 25
/// calls), windows planned by the clone, on topics of `test`'s own; started, holding its
/// partitions.
async fn binance_service(sim: &SimulatorHandle, test: &str) -> (Settings, ServiceProcess) {
    let mut base = settings(sim, 4, 100.0);
    base.upstream.venue = VenueName::Binance;
    base.clone.window_secs = None;
    let settings = kafka_settings(base, test).await;
    let service = ServiceProcess::start_assigned(&settings);
    (settings, service)
}

/// A temporary directory of this test's own (removed at its start if a run left it).
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("dataset-clone-{test}")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `clone A,B,… --from FROM --until UNTIL --out DIR/`.
fn dataset_args(pairs: &[&str], from: &str, until: &str, out: &Path) -> Vec<String> {
    [
        pairs.join(","),
        "--from".into(),
        from.into(),
        "--until".into(),
        until.into(),
        "--out".into(),
        format!("{}/", out.display()),
    ]
    .to_vec()
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `YYYY-MM-DD` of a unix second.
fn date_text(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string()
}

/// One pair's line of the dataset summary:
/// `  PAIR  D days written,  H held before,  T trades,  C calls  STATE`.
#[derive(Debug)]
struct PairLine {
    written: u64,
    held: u64,
    trades: u64,
    calls: u64,
    state: String,
}

/// The number just before `label` in `line`.
fn count_before(line: &str, label: &str) -> u64 {
    line.split(label)
        .next()
        .and_then(|before| before.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of {label:?} in {line:?}"))
}

/// `pair`'s line of the summary in `log` (the last one, the summary being at the end).
fn pair_line(log: &str, pair: &str) -> PairLine {
    let line = log
        .lines()
        .rev()
        .find(|l| {
            l.starts_with("  ")
                && l.trim_start()
                    .strip_prefix(pair)
                    .is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no summary line of {pair} in:\n{log}"));
    PairLine {
        written: count_before(line, " days written"),
        held: count_before(line, " held before"),
        trades: count_before(line, " trades"),
        calls: count_before(line, " calls"),
        state: line.split(" calls  ").nth(1).unwrap_or("").to_string(),
    }
}

/// The summary's total line: `  total: N pairs (K complete), D days written, T trades, C calls`.
fn total_line(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.trim_start().starts_with("total: "))
        .unwrap_or_else(|| panic!("no total line in:\n{log}"))
        .to_string()
}

/// A decimal string at `scale` digits, as an integer of units of 10^-scale.
fn units(decimal: &str, scale: u32) -> u128 {
    let (int, frac) = decimal.split_once('.').unwrap_or((decimal, ""));
    assert!(
        frac.len() <= scale as usize,
        "{decimal} has more than {scale} decimals"
    );
    let frac = format!("{frac:0<width$}", width = scale as usize);
    format!("{int}{frac}").parse().unwrap()
}

/// Units of 10^-scale as a decimal string with every digit of the scale.
fn decimal_text(units: u128, scale: u32) -> String {
    let ten = 10u128.pow(scale);
    format!(
        "{}.{:0width$}",
        units / ten,
        units % ten,
        width = scale as usize
    )
}

/// The simulator's aggregate trades of `pair` on the UTC day starting at `day`.
fn truth_of_day(sim: &SimulatorConfig, pair: &str, day: i64) -> Vec<agg_market::AggTrade> {
    agg_market::agg_trades_in_window(sim, pair, day * 1000, (day + DAY_SECS) * 1000 - 1)
}

/// The ground truth of `pairs` over the days `[first, first + days)`, as `readback.py` writes
/// rows (pairs in path order, then days, then trades): prices and amounts with Binance's 8
/// decimals, totals computed exactly at 16, times in milliseconds.
fn truth_rows(sim: &SimulatorConfig, pairs: &[&str], first: i64, days: i64) -> Vec<Value> {
    let mut sorted = pairs.to_vec();
    sorted.sort_unstable();
    let mut rows = Vec::new();
    for pair in sorted {
        for d in 0..days {
            let day = first + d * DAY_SECS;
            for t in truth_of_day(sim, pair, day) {
                let (price, qty) = (units(&t.price, 8), units(&t.qty, 8));
                let time = jiff::Timestamp::from_millisecond(t.time_ms).unwrap();
                rows.push(json!({
                    "venue": "binance",
                    "pair": pair,
                    "date": date_text(day),
                    "trade_id": t.id,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                    "side": if t.buyer_is_maker { "sell" } else { "buy" },
                    "price": decimal_text(price, 8),
                    "amount": decimal_text(qty, 8),
                    "total": decimal_text(price * qty, 16),
                    "first_trade_id": t.first_trade_id,
                    "last_trade_id": t.last_trade_id,
                }));
            }
        }
    }
    rows
}

/// Calls one pair's days take at best: one per page of 1000 trades, counted per run of days
/// cloned together (`days` from `first`), at least one.
fn pages(sim: &SimulatorConfig, pair: &str, first: i64, days: i64) -> u64 {
    let trades: usize = (0..days)
        .map(|d| truth_of_day(sim, pair, first + d * DAY_SECS).len())
        .sum();
    (trades as u64).div_ceil(1000).max(1)
}

/// Checks the dataset at `root` against `expected` with `readback.py --expect` (pyarrow); a
/// note and nothing else when there is no python3.
fn assert_reads_back(root: &Path, expected: &[Value], test: &str) {
    let Some(python) = crate::dataset::python() else {
        eprintln!(
            "dataset_clone::{test}: the pyarrow readback is skipped, python3 is not installed"
        );
        return;
    };
    let expect = root.with_extension("expected.jsonl");
    let mut text = String::new();
    for row in expected {
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(&expect, text).unwrap();
    let out = std::process::Command::new(python)
        .arg(crate::dataset::repo("scripts/readback.py"))
        .arg(root)
        .arg("--expect")
        .arg(&expect)
        .output()
        .expect("readback.py runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the dataset read back by pyarrow is not the ground truth:\n{said}"
    );
    assert!(
        said.contains(&format!("{} rows, as expected", expected.len())),
        "{said}"
    );
    std::fs::remove_file(&expect).unwrap();
}

/// Every file under `root`, by its path relative to it (hidden ones too): its bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The names of `files` that readers skip (a name starting with `.` or `_`) other than the
/// manifests: what a run leaves behind (spills, temporary files).
fn leftovers(files: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
    files
        .keys()
        .filter(|name| {
            let file = Path::new(name.as_str())
                .file_name()
                .unwrap()
                .to_string_lossy();
            file.starts_with('.') || (file.starts_with('_') && file != "_manifest.json")
        })
        .map(String::as_str)
        .collect()
}

/// Checks that every day of `pairs` in `[first, first + days)` has its file and that each
/// pair's manifest lists exactly those, with the ground truth's trades and ids and the file's
/// size and SHA-256.
fn assert_days_listed(sim: &SimulatorConfig, root: &Path, pairs: &[&str], first: i64, days: i64) {
    use cloner_worker::clone::dataset::{Manifest, Partition};
    for pair in pairs {
        let dir = root.join("venue=binance").join(format!("pair={pair}"));
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("_manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["venue"], "binance");
        assert_eq!(manifest["pair"], *pair);
        let listed: Vec<&str> = manifest["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["file"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (0..days)
            .map(|d| format!("date={}/trades.parquet", date_text(first + d * DAY_SECS)))
            .collect();
        assert_eq!(listed, expected, "{pair}'s manifest");
        let partition = Partition::new("binance", pair).unwrap();
        let loaded = Manifest::load(root, &partition).unwrap();
        for (d, record) in loaded.days().enumerate() {
            let day = first + d as i64 * DAY_SECS;
            assert!(dir.join(&record.file).is_file(), "{pair} {}", record.file);
            loaded.verify(root, record.date).unwrap();
            let truth = truth_of_day(sim, pair, day);
            assert_eq!(record.trades, truth.len() as u64, "{pair} {}", record.date);
            assert_eq!(record.first_trade_id, truth.first().map(|t| t.id));
            assert_eq!(record.last_trade_id, truth.last().map(|t| t.id));
        }
    }
}

/// Runs `clone ARGS` to its end; the output, and the simulator's calls meanwhile.
async fn clone_counting(
    sim: &SimulatorHandle,
    settings: &Settings,
    args: &[String],
    extra: &[(&str, &str)],
) -> (Output, u64) {
    let before = sim.stats().calls;
    let output = run_clone(settings, &as_strs(args), extra).await;
    (output, sim.stats().calls - before)
}

#[actix_rt::test]
async fn many_pairs_in_one_run_are_the_ground_truth_for_about_a_call_per_page() {
    let sim = start_simulator(three_pairs()).await;
    let (settings, mut service) = binance_service(&sim, "dataset-many").await;
    let root = temp_dir("many");
    let pairs = [BUSY, MEDIUM, QUIET];
    let until = (DAY + 3 * DAY_SECS).to_string();
    let args = dataset_args(&pairs, &DAY.to_string(), &until, &root);
    let started = Instant::now();
    sim.reset_stats();
    let (output, calls) = clone_counting(&sim, &settings, &args, &[]).await;
    let log = stderr(&output);
    assert!(output.status.success(), "the clone failed:\n{log}");
    let stats = sim.stats();
    let summary: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with("dataset "))
        .collect();
    eprintln!("{}", summary.join("\n"));

    // Activities very different: tens of thousands, a few thousand, a few trades a day.
    let per_day = |pair| truth_of_day(sim.config(), pair, DAY).len();
    assert!(per_day(BUSY) > 20_000, "{}", per_day(BUSY));
    assert!(
        (1_000..10_000).contains(&per_day(MEDIUM)),
        "{}",
        per_day(MEDIUM)
    );
    assert!((1..50).contains(&per_day(QUIET)), "{}", per_day(QUIET));

    // A line per pair, and the total.
    let mut trades_all = 0;
    let mut calls_all = 0;
    for pair in pairs {
        let line = pair_line(&log, pair);
        let truth: u64 = (0..3)
            .map(|d| truth_of_day(sim.config(), pair, DAY + d * DAY_SECS).len() as u64)
            .sum();
        assert_eq!(
            (line.written, line.held, line.trades),
            (3, 0, truth),
            "{pair}:\n{log}"
        );
        assert_eq!(line.state, "complete", "{pair}:\n{log}");
        trades_all += line.trades;
        calls_all += line.calls;
    }
    let total = total_line(&log);
    assert_eq!(
        total.trim(),
        format!(
            "total: 3 pairs (3 complete), 9 days written, {trades_all} trades, {calls_all} calls"
        ),
        "{log}"
    );
    // Every upstream call is an answer the clone counted.
    assert_eq!(calls_all, calls, "{log}");

    assert_days_listed(sim.config(), &root, &pairs, DAY, 3);
    let all = files(&root);
    assert!(leftovers(&all).is_empty(), "{:?}", leftovers(&all));
    assert_reads_back(
        &root,
        &truth_rows(sim.config(), &pairs, DAY, 3),
        "many_pairs",
    );

    // About one call per page of each pair's trades, and none refused.
    let best: u64 = pairs.iter().map(|p| pages(sim.config(), p, DAY, 3)).sum();
    eprintln!(
        "3 pairs × 3 days: {calls} calls for {best} pages ({:.3}×) in {:.1} s",
        calls as f64 / best as f64,
        started.elapsed().as_secs_f64()
    );
    assert!(calls >= best, "{calls} calls for {best} pages");
    assert!(
        calls as f64 <= 1.05 * best as f64 + 3.0,
        "{calls} calls for {best} pages:\n{log}"
    );
    assert_eq!(stats.rate_limited, 0, "no 429: {stats:?}");
    assert!(stats.peak_weight_per_minute <= 6000, "{stats:?}");
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Modification times of every file under `root`.
fn mtimes(root: &Path) -> BTreeMap<String, SystemTime> {
    files(root)
        .into_keys()
        .map(|name| {
            let time = std::fs::metadata(root.join(&name))
                .unwrap()
                .modified()
                .unwrap();
            (name, time)
        })
        .collect()
}

#[actix_rt::test]
async fn the_same_command_again_costs_nothing_and_a_day_later_only_that_day() {
    let sim = start_simulator(three_pairs()).await;
    let (settings, mut service) = binance_service(&sim, "dataset-current").await;
    let root = temp_dir("current");
    let pairs = [BUSY, MEDIUM, QUIET];
    let three = dataset_args(
        &pairs,
        &DAY.to_string(),
        &(DAY + 3 * DAY_SECS).to_string(),
        &root,
    );
    let (output, _) = clone_counting(&sim, &settings, &three, &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let before = files(&root);
    let times = mtimes(&root);

    // Again: every day is held, no call, no file touched.
    let (output, calls) = clone_counting(&sim, &settings, &three, &[]).await;
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert_eq!(calls, 0, "{log}");
    for pair in pairs {
        let line = pair_line(&log, pair);
        assert_eq!((line.written, line.held, line.calls), (0, 3, 0), "{log}");
        assert_eq!(line.state, "complete", "{log}");
    }
    assert!(before == files(&root), "a file changed");
    assert_eq!(times, mtimes(&root), "a file was written again");

    // One day later: that day's own pages, one more file per pair.
    let day4 = DAY + 3 * DAY_SECS;
    let four = dataset_args(
        &pairs,
        &DAY.to_string(),
        &(day4 + DAY_SECS).to_string(),
        &root,
    );
    let (output, calls) = clone_counting(&sim, &settings, &four, &[]).await;
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let mut calls_all = 0;
    for pair in pairs {
        let line = pair_line(&log, pair);
        let own = pages(sim.config(), pair, day4, 1);
        eprintln!("{pair}: {} calls for the new day's {own} pages", line.calls);
        assert_eq!((line.written, line.held), (1, 3), "{pair}:\n{log}");
        assert!(
            line.calls.abs_diff(own) <= 1,
            "{pair}: {} calls for the new day's {own} pages:\n{log}",
            line.calls
        );
        assert_eq!(line.state, "complete", "{log}");
        calls_all += line.calls;
    }
    assert_eq!(calls, calls_all, "{log}");
    let after = files(&root);
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let mut expected_added: Vec<String> = pairs
        .iter()
        .map(|p| {
            format!(
                "venue=binance/pair={p}/date={}/trades.parquet",
                date_text(day4)
            )
        })
        .collect();
    expected_added.sort();
    assert_eq!(added, expected_added.iter().collect::<Vec<_>>());
    for (name, bytes) in &before {
        if !name.ends_with("_manifest.json") {
            assert!(after.get(name) == Some(bytes), "{name} changed");
        }
    }
    assert!(leftovers(&after).is_empty(), "{:?}", leftovers(&after));
    assert_days_listed(sim.config(), &root, &pairs, DAY, 4);
    // The new day's ids go on from the day before's.
    use cloner_worker::clone::dataset::{Manifest, Partition};
    for pair in pairs {
        let m = Manifest::load(&root, &Partition::new("binance", pair).unwrap()).unwrap();
        let days: Vec<_> = m.days().collect();
        if let (Some(last), Some(first)) = (days[2].last_trade_id, days[3].first_trade_id) {
            assert_eq!(first, last + 1, "{pair}: ids across the day boundary");
        }
    }
    assert_reads_back(
        &root,
        &truth_rows(sim.config(), &pairs, DAY, 4),
        "kept_current",
    );
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Kill points drawn per run; `DATASET_KILL_SEED` replays a run's draws.
fn kill_seed() -> u64 {
    std::env::var("DATASET_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Waits until the service's group has committed the todo topic to its end: every request
/// published so far (a killed clone's too) is answered, and no call of the service is pending.
async fn wait_all_answered(settings: &Settings) {
    let deadline = Instant::now() + TEST_DEADLINE;
    loop {
        let offsets = committed_and_end(settings, &settings.topics.todo);
        if offsets.values().all(|&(committed, end)| committed >= end) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not answer every request within {TEST_DEADLINE:?}: {offsets:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The upstream calls a clone's requests in flight may take at most, with the test's service
/// (25 calls a second, 2 partitions): [`cloner_worker::clone::window::lanes`] requests, each
/// going on by id through up to `MAX_GATHER_PAGES` pages.
fn in_flight_calls() -> u64 {
    use cloner_worker::task::venue::binance::{GATHER_PAGES, MAX_GATHER_PAGES};
    let lanes = cloner_worker::clone::window::lanes(2, Some(25.0), GATHER_PAGES);
    (lanes * MAX_GATHER_PAGES) as u64
}

/// Every day a manifest under `root` lists is whole on disk: its file there, of the size and
/// SHA-256 recorded (whatever moment a kill came at).
fn assert_held_days_whole(root: &Path, pairs: &[&str]) {
    use cloner_worker::clone::dataset::{Manifest, Partition};
    for pair in pairs {
        let manifest = Manifest::load(root, &Partition::new("binance", pair).unwrap()).unwrap();
        for day in manifest.days() {
            manifest.verify(root, day.date).unwrap();
        }
    }
}

/// The day files under `root`.
fn day_files(root: &Path) -> usize {
    files(root)
        .keys()
        .filter(|k| k.ends_with("/trades.parquet"))
        .count()
}

#[actix_rt::test]
async fn a_dataset_clone_killed_at_random_moments_ends_in_the_same_files_for_few_more_calls() {
    let sim = start_simulator(three_pairs()).await;
    let (settings, mut service) = binance_service(&sim, "dataset-kill").await;
    let base = temp_dir("kill");
    let pairs = [BUSY, MEDIUM, QUIET];
    let (from, until) = (DAY.to_string(), (DAY + 3 * DAY_SECS).to_string());

    // An uninterrupted run: the files and the calls to compare with.
    let whole = base.join("whole");
    let (output, calls_whole) = clone_counting(
        &sim,
        &settings,
        &dataset_args(&pairs, &from, &until, &whole),
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = files(&whole);
    assert!(
        leftovers(&expected).is_empty(),
        "{:?}",
        leftovers(&expected)
    );
    wait_all_answered(&settings).await;

    let killed = base.join("killed");
    let args = dataset_args(&pairs, &from, &until, &killed);
    let seed = kill_seed();
    eprintln!("kill points drawn with DATASET_KILL_SEED={seed}");
    let mut draw = fastrand::Rng::with_seed(seed);
    let mut calls_killed = 0;
    let kills = 3;
    for trial in 0..kills {
        // Killed once the exchange has served a random number of this run's calls: in the
        // middle of an answer, a spill, a day's write or the manifest's, whichever it is at.
        let kill_after = draw.u64(1..=calls_whole / 3);
        let before = sim.stats().calls;
        let mut child = spawn_clone(&settings, &as_strs(&args), &[]);
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
        {
            // Read, so that the clone never blocks on a full pipe.
            use tokio::io::AsyncBufReadExt as _;
            let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
            let log = log.clone();
            actix_rt::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    log.borrow_mut().push(line);
                }
            });
        }
        let reached = async {
            loop {
                if sim.stats().calls - before >= kill_after {
                    return true;
                }
                if child.try_wait().unwrap().is_some() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        let reached = tokio::time::timeout(TEST_DEADLINE, reached)
            .await
            .expect("the calls before the kill");
        if reached {
            child.kill().await.unwrap();
        }
        // Counted once it is dead: what comes after are the answers to the requests it had in
        // flight, at most its lanes.
        let at_kill = sim.stats().calls - before;
        let days = day_files(&killed);
        assert_held_days_whole(&killed, &pairs);
        // What the killed run had asked for is answered still: counted, and done before the
        // next run starts.
        wait_all_answered(&settings).await;
        let calls = sim.stats().calls - before;
        calls_killed += calls;
        assert!(
            calls - at_kill <= in_flight_calls(),
            "trial {trial} (DATASET_KILL_SEED={seed}): {} calls after the kill, more than the {} its requests in flight may take",
            calls - at_kill,
            in_flight_calls()
        );
        let continued = log.borrow().iter().any(|l| l.contains("continuing"));
        eprintln!(
            "trial {trial}: {} after {at_kill} calls (drawn {kill_after}), {days} day files; {calls} calls with the answers to what it asked; continued a stopped run: {continued}",
            if reached { "killed" } else { "finished" }
        );
    }
    let (output, calls) = clone_counting(&sim, &settings, &args, &[]).await;
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    for pair in pairs {
        assert_eq!(pair_line(&log, pair).state, "complete", "{log}");
    }
    calls_killed += calls;

    let got = files(&killed);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same files (DATASET_KILL_SEED={seed})"
    );
    for (name, bytes) in &expected {
        assert!(
            got[name] == *bytes,
            "{name} differs from the uninterrupted run's (DATASET_KILL_SEED={seed})"
        );
    }
    eprintln!(
        "{kills} kills: {calls_killed} calls in all the runs, {calls_whole} uninterrupted ({:.3}×)",
        calls_killed as f64 / calls_whole as f64
    );
    // What a kill may cost again: the requests in flight then (at most the clone's lanes, each
    // through up to MAX_GATHER_PAGES pages, answered to nobody), and per pair one more partial
    // page (the window it was in is cut in two).
    let allowed =
        1.05 * calls_whole as f64 + (kills * (in_flight_calls() + pairs.len() as u64)) as f64;
    assert!(
        calls_killed as f64 <= allowed,
        "DATASET_KILL_SEED={seed}: {calls_killed} calls in all the runs, {calls_whole} uninterrupted; {allowed:.0} allowed"
    );
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&base).unwrap();
}

#[actix_rt::test]
async fn a_pair_the_exchange_does_not_know_is_reported_with_its_message_and_the_others_complete() {
    let sim = start_simulator(three_pairs()).await;
    let (settings, mut service) = binance_service(&sim, "dataset-unknown").await;
    let root = temp_dir("unknown");
    let unknown = "DOGEUSDT";
    assert!(!agg_market::is_listed(sim.config(), unknown));
    let good = [MEDIUM, QUIET];
    let pairs = [MEDIUM, unknown, QUIET];
    let args = dataset_args(
        &pairs,
        &DAY.to_string(),
        &(DAY + 2 * DAY_SECS).to_string(),
        &root,
    );
    let (output, calls) = clone_counting(&sim, &settings, &args, &[]).await;
    let log = stderr(&output);
    assert!(
        !output.status.success(),
        "a dataset with a pair incomplete must fail:\n{log}"
    );
    for pair in good {
        let line = pair_line(&log, pair);
        assert_eq!(
            (line.written, line.state.as_str()),
            (2, "complete"),
            "{log}"
        );
    }
    let line = pair_line(&log, unknown);
    assert_eq!((line.written, line.trades), (0, 0), "{log}");
    assert!(
        line.state.starts_with("INCOMPLETE: ") && line.state.contains("Invalid symbol."),
        "the unknown pair is incomplete with the exchange's message: {:?}\n{log}",
        line.state
    );
    assert!(
        total_line(&log).contains("3 pairs (2 complete), 4 days written"),
        "{log}"
    );
    assert!(
        log.contains("the dataset is incomplete: DOGEUSDT; run the same command again"),
        "{log}"
    );
    let stats = sim.stats();
    eprintln!(
        "{calls} calls, {} for the unknown symbol",
        stats.invalid_pair
    );
    assert!(stats.invalid_pair >= 1, "{stats:?}");
    assert_days_listed(sim.config(), &root, &good, DAY, 2);
    let unknown_dir = root.join("venue=binance").join(format!("pair={unknown}"));
    assert!(
        !unknown_dir.join("_manifest.json").exists(),
        "no day of the unknown pair is held"
    );
    assert_reads_back(
        &root,
        &truth_rows(sim.config(), &good, DAY, 2),
        "unknown_pair",
    );
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Waits, on the system clock, until it reads `unix` or later.
async fn wait_for_clock(unix: i64) {
    tokio::time::timeout(
        Duration::from_secs((unix - now_secs()).max(0) as u64 + 5),
        async {
            while now_secs() < unix {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await
    .expect("the clock moves on");
}

#[actix_rt::test]
async fn until_now_writes_yesterday_not_today_and_again_asks_only_for_the_new_seconds() {
    // The simulator goes by the system clock, as `--until now` does, and serves no trade
    // after it.
    let sim = start_simulator(binance(&[(MEDIUM, 0.3)])).await;
    let (settings, mut service) = binance_service(&sim, "dataset-now").await;
    // Not across a midnight: today stays today for the whole test.
    let left_today = DAY_SECS - now_secs().rem_euclid(DAY_SECS);
    if left_today < 120 {
        eprintln!("dataset_clone::until_now: waiting {left_today} s for the UTC day to turn");
        wait_for_clock(now_secs() + left_today + 1).await;
    }
    let today = now_secs() - now_secs().rem_euclid(DAY_SECS);
    let yesterday = today - DAY_SECS;
    let root = temp_dir("now");
    let pairs = [BUSY, MEDIUM];
    let args = dataset_args(&pairs, &date_text(yesterday), "now", &root);
    let today_file = |pair: &str| {
        root.join("venue=binance")
            .join(format!("pair={pair}"))
            .join(format!("date={}/trades.parquet", date_text(today)))
    };

    let (output, calls) = clone_counting(&sim, &settings, &args, &[]).await;
    let first_ended = now_secs();
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    for pair in pairs {
        let line = pair_line(&log, pair);
        assert_eq!((line.written, line.held), (1, 0), "{pair}:\n{log}");
        assert_eq!(line.state, "complete", "{log}");
        assert!(!today_file(pair).exists(), "{pair}: today is not whole yet");
    }
    assert_days_listed(sim.config(), &root, &pairs, yesterday, 1);
    assert_reads_back(
        &root,
        &truth_rows(sim.config(), &pairs, yesterday, 1),
        "until_now",
    );
    let held = files(&root);
    eprintln!("yesterday and today until now: {calls} calls");

    // A few seconds later, the same command: the new seconds only, and still no file today.
    wait_for_clock(first_ended + 3).await;
    let (output, calls) = clone_counting(&sim, &settings, &args, &[]).await;
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let mut calls_all = 0;
    for pair in pairs {
        let line = pair_line(&log, pair);
        eprintln!("{pair}: {} calls for the seconds since", line.calls);
        assert_eq!((line.written, line.held), (0, 1), "{pair}:\n{log}");
        assert_eq!(line.state, "complete", "{log}");
        assert!(
            line.calls <= 3,
            "{pair}: {} calls for a few seconds:\n{log}",
            line.calls
        );
        assert!(!today_file(pair).exists(), "{pair}: today is not whole yet");
        calls_all += line.calls;
    }
    assert_eq!(calls, calls_all, "{log}");
    assert!(
        log.contains("continuing"),
        "today's answers are kept:\n{log}"
    );
    let now = files(&root);
    for (name, bytes) in held.iter().filter(|(n, _)| n.ends_with(".parquet")) {
        assert!(now.get(name) == Some(bytes), "{name} changed");
    }
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&root).unwrap();
}
