//! The Binance venue (`upstream.venue = "binance"`) against the simulator's Binance: the client
//! one call at a time against each kind of answer, and a day of a busy pair cloned end to end
//! through `serve` and `clone`, equal to the ground truth with ids past 2³¹ and a millisecond
//! of more than a page, within the weight budget and without a 429.

use std::time::Duration;

use cloner_worker::config::{Settings, VenueName};
use cloner_worker::dev::simulator::{
    self, agg_market, Clock, ManualClock, SimulatorConfig, SimulatorHandle, Venue,
};
use cloner_worker::domain::pair::{CurrencyPair, PairRule};
use cloner_worker::domain::utc::format_utc;
use cloner_worker::task::upstream::{Refusal, Upstream, UpstreamError, Window};
use cloner_worker::task::venue::Step;

use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

/// 05:00:00.123 of the test day: 2500 trades in one millisecond.
const BURST_MS: i64 = (DAY + 5 * 3600) * 1000 + 123;

fn binance(config: SimulatorConfig) -> SimulatorConfig {
    SimulatorConfig {
        venue: Venue::Binance,
        burst_ms: vec![BURST_MS],
        ..config
    }
}

fn client(sim: &SimulatorHandle) -> Upstream {
    client_with(sim, None)
}

/// A client of the simulated Binance whose longest window is `max_window_secs` (none: Binance's
/// own rule since 2022-12-05).
fn client_with(sim: &SimulatorHandle, max_window_secs: Option<i64>) -> Upstream {
    let mut settings = Settings::default().upstream;
    settings.venue = VenueName::Binance;
    settings.binance.max_window_secs = max_window_secs;
    settings.base_url = Some(sim.base_url());
    settings.request_timeout_ms = 2000;
    Upstream::new(
        &settings,
        cloner_worker::task::venue::from_settings(&settings),
    )
}

fn symbol(s: &str) -> CurrencyPair {
    CurrencyPair::parse_with(s, PairRule::JOINED).unwrap()
}

/// The ground truth of `[from, until]` (seconds): aggregate ids in time order.
fn truth_ids(sim: &SimulatorConfig, s: &str, from: i64, until: i64) -> Vec<i64> {
    agg_market::agg_trades_in_window(sim, s, from * 1000, until * 1000 + 999)
        .iter()
        .map(|t| t.id)
        .collect()
}

#[actix_rt::test]
async fn a_calm_hour_is_complete_with_ids_past_2_31_and_milliseconds() {
    let sim = simulator::start(binance(SimulatorConfig::default()))
        .await
        .unwrap();
    let up = client(&sim);
    let Ok(Window::Complete(entries)) = up.trade_history(&symbol("ETHBTC"), DAY, DAY + 3599).await
    else {
        panic!("complete expected");
    };
    let ids: Vec<i64> = entries.iter().map(|e| e.trade_id).collect();
    assert_eq!(ids, truth_ids(sim.config(), "ETHBTC", DAY, DAY + 3599));
    assert!(!ids.is_empty() && ids[0] > i64::from(i32::MAX), "{ids:?}");
    let e = &entries[0];
    assert_eq!(Some(e.date), e.time_ms.map(|ms| ms.div_euclid(1000)));
    assert_eq!(sim.stats().calls, 1);
}

#[actix_rt::test]
async fn a_full_page_keeps_the_seconds_before_its_newest_trade() {
    // Five times the trades: an hour of BTCUSDT holds more than a page.
    let sim = simulator::start(binance(SimulatorConfig {
        intensity: 5.0,
        ..SimulatorConfig::default()
    }))
    .await
    .unwrap();
    let up = client(&sim);
    let answer = up.trade_history(&symbol("BTCUSDT"), DAY, DAY + 3599).await;
    let Ok(Window::TooBig {
        kept: Some(kept), ..
    }) = answer
    else {
        panic!("a kept page: {answer:?}");
    };
    assert_eq!(
        kept.from, DAY,
        "oldest first: the window's start is covered"
    );
    assert!(kept.until < DAY + 3599);
    let ids: Vec<i64> = kept.entries.iter().map(|e| e.trade_id).collect();
    assert_eq!(ids, truth_ids(sim.config(), "BTCUSDT", DAY, kept.until));
}

#[actix_rt::test]
async fn a_millisecond_of_more_than_a_page_is_reached_by_id() {
    let sim = simulator::start(binance(SimulatorConfig::default()))
        .await
        .unwrap();
    let up = client(&sim);
    let second = BURST_MS.div_euclid(1000);
    let (pair, until) = (symbol("BTCUSDT"), second + 59);
    // The first call's page is all in that second: the client goes on by id, page by page.
    let first = up.call(&pair, second, until, vec![], None).await;
    let Ok(Step::More { entries, next }) = first.result else {
        panic!("a page to continue: {:?}", first.result);
    };
    assert_eq!(entries.len(), 1000);
    assert_eq!(next.from_id, entries.last().unwrap().trade_id + 1);
    let answer = up.trade_history(&pair, second, until).await;
    let got: Vec<i64> = match answer {
        Ok(Window::Complete(entries)) => entries,
        Ok(Window::TooBig {
            kept: Some(kept), ..
        }) => {
            assert!(kept.until >= second, "the busy second is covered");
            kept.entries
        }
        other => panic!("{other:?}"),
    }
    .iter()
    .filter(|e| e.time_ms == Some(BURST_MS))
    .map(|e| e.trade_id)
    .collect();
    let truth: Vec<i64> =
        agg_market::agg_trades_in_window(sim.config(), "BTCUSDT", BURST_MS, BURST_MS)
            .iter()
            .map(|t| t.id)
            .collect();
    assert!(
        truth.len() > 1000,
        "{} trades in the millisecond",
        truth.len()
    );
    assert_eq!(got, truth);
}

#[actix_rt::test]
async fn what_the_venue_refuses_is_classified() {
    let sim = simulator::start(binance(SimulatorConfig::default()))
        .await
        .unwrap();
    let up = client(&sim);
    // Longer than a longest window configured (a mirror that has one): too big without a call.
    let long = client_with(&sim, Some(3600))
        .trade_history(&symbol("BTCUSDT"), DAY, DAY + 3600)
        .await;
    assert!(
        matches!(long, Ok(Window::TooBig { kept: None, .. })),
        "{long:?}"
    );
    assert_eq!(sim.stats().calls, 0);
    // A symbol the venue does not list: final, with its message.
    let unknown = up.trade_history(&symbol("NOSUCHPAIR"), DAY, DAY + 10).await;
    match unknown {
        Err(UpstreamError::Permanent(message)) => {
            assert!(message.contains("-1121"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn the_weight_budget_is_reported_and_its_refusals_are_push_back() {
    // 8 a minute at 4 a call: the third call of a minute is refused, a ban after one refusal.
    let clock = ManualClock::new(DAY * 1000 + 10_000 * 1000);
    let sim = simulator::start_with_clock(
        binance(SimulatorConfig {
            weight_limit_per_minute: 8,
            ban_after: 1,
            ban_secs: 90,
            ..SimulatorConfig::default()
        }),
        Clock::Manual(clock.clone()),
    )
    .await
    .unwrap();
    let up = client(&sim);
    let pair = symbol("ETHBTC");
    let first = up.call(&pair, DAY, DAY + 59, vec![], None).await;
    assert!(first.result.is_ok());
    let spent = first.spent.expect("X-MBX-USED-WEIGHT-1M read");
    assert_eq!((spent.used, spent.limit), (4, 6000));
    let second = up.call(&pair, DAY, DAY + 59, vec![], None).await;
    assert_eq!(second.spent.map(|s| s.used), Some(8));
    let third = up.call(&pair, DAY, DAY + 59, vec![], None).await;
    match third.result {
        Err(UpstreamError::Refused(Refusal::TooMany { retry_after, .. })) => {
            assert!(
                retry_after.is_some_and(|d| d <= Duration::from_secs(60)),
                "{retry_after:?}"
            )
        }
        other => panic!("429 expected: {other:?}"),
    }
    let fourth = up.call(&pair, DAY, DAY + 59, vec![], None).await;
    match fourth.result {
        Err(UpstreamError::Refused(Refusal::Banned { status: 418, .. })) => {}
        other => panic!("418 expected: {other:?}"),
    }
    let stats = sim.stats();
    assert_eq!(
        (stats.rate_limited, stats.banned_calls),
        (1, 1),
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn another_clients_weight_on_the_address_pauses_every_call_before_a_refusal() {
    use cloner_worker::pool::app::{App, Hooks};
    use cloner_worker::pool::manager::AddTask;
    use cloner_worker::proto::{cloned_chunk, TodoChunk};
    use cloner_worker::task::rate_limiter::{GetLimiterStatus, PauseCause};
    // Another client spent 5984 of the address's 6000 this minute: after one call of 4, 12 are
    // left, fewer than the 4 workers' calls of 4 that may be on their way: the service pauses
    // every call until the next minute instead of running into 429s.
    let clock = ManualClock::new(DAY * 1000 + 30_000 * 1000 + 10_000);
    let sim = simulator::start_with_clock(
        binance(SimulatorConfig {
            foreign_weight_per_minute: 5984,
            ..SimulatorConfig::default()
        }),
        Clock::Manual(clock),
    )
    .await
    .unwrap();
    let mut settings = settings(&sim, 4, 100.0);
    settings.upstream.venue = VenueName::Binance;
    let app = App::start(&settings, Hooks::default());
    let chunk = TodoChunk {
        currency_pair: "ETHBTC".into(),
        from_unix_ts: DAY,
        until_unix_ts: DAY + 59,
        task_dbid: 1,
        ..Default::default()
    };
    let answer = tokio::time::timeout(TEST_DEADLINE, app.manager.send(AddTask(chunk)))
        .await
        .expect("answered in time")
        .expect("manager running")
        .expect("answered");
    assert_eq!(answer.chunk_result, cloned_chunk::Result::Complete as i32);
    let status = app.limiter.send(GetLimiterStatus).await.unwrap();
    let (left, cause) = status.paused.expect("every call paused");
    assert_eq!(cause, PauseCause::TooMany);
    // The simulator's minute is 10 s old: the budget renews in 50 s or less (the service reads
    // the minute from its own clock).
    assert!(left <= Duration::from_secs(60), "{left:?}");
    let stats = sim.stats();
    assert_eq!((stats.calls, stats.rate_limited), (1, 0), "{stats:?}");
}

/// `p × q` exactly, from the two 8-decimal strings, in integers: the total a Binance trade's
/// entry must carry (written without trailing zeros).
fn exact_total(p: &str, q: &str) -> String {
    let units = |s: &str| s.replace('.', "").parse::<u128>().unwrap();
    let digits = format!("{:017}", units(p) * units(q));
    let (int, frac) = digits.split_at(digits.len() - 16);
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    match frac.trim_end_matches('0') {
        "" => int.to_string(),
        frac => format!("{int}.{frac}"),
    }
}

#[actix_rt::test]
async fn a_busy_day_of_binance_through_the_service_is_the_ground_truth_within_the_weight_budget() {
    let sim = simulator::start(binance(SimulatorConfig::default()))
        .await
        .unwrap();
    // The whole budget: 6000 a minute, 100 weight a second, 25 calls at 4 each.
    let mut base = settings(&sim, 4, 100.0);
    base.upstream.venue = VenueName::Binance;
    base.clone.window_secs = None;
    let settings = kafka_settings(base, "binance-day").await;
    let mut service = ServiceProcess::start_assigned(&settings);
    let dir = std::env::temp_dir().join(unique("binance-day"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("day.csv");
    let output = run_clone(
        &settings,
        &[
            "BTCUSDT",
            "--from",
            &DAY.to_string(),
            "--until",
            &(DAY + 86_400).to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{summary}");

    let truth = agg_market::agg_trades_in_window(
        sim.config(),
        "BTCUSDT",
        DAY * 1000,
        (DAY + 86_400) * 1000 - 1,
    );
    let mut expected = vec!["tradeID,date,type,rate,amount,total".to_string()];
    for t in &truth {
        expected.push(format!(
            "{},{}.{:03},{},{},{},{}",
            t.id,
            format_utc(t.time_ms.div_euclid(1000)),
            t.time_ms.rem_euclid(1000),
            if t.buyer_is_maker { "sell" } else { "buy" },
            t.price,
            t.qty,
            exact_total(&t.price, &t.qty)
        ));
    }
    let written: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(written.len(), expected.len(), "{summary}");
    assert!(
        written == expected,
        "the file differs from the ground truth"
    );
    assert!(truth[0].id > i64::from(i32::MAX));
    assert!(truth.iter().filter(|t| t.time_ms == BURST_MS).count() > 1000);

    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 0, "no 429: {stats:?}");
    assert!(stats.peak_weight_per_minute <= 6000, "{stats:?}");
    // Its first page by time, then the rest by ids in blocks of whole pages: the physical
    // limit, give or take the first page's newest second asked for again.
    let limit = truth.len().div_ceil(1000) as u64;
    assert!(
        stats.calls <= limit + 1,
        "{} calls for {} trades: {summary}",
        stats.calls,
        truth.len()
    );
    let span = (stats.last_call_ms.unwrap() - stats.first_call_ms.unwrap()) as f64 / 1000.0;
    eprintln!(
        "a day of BTCUSDT: {} trades, {} calls = {:.3} per 1 000 trades; {} weight in {span:.1} s = {:.1} % of the budget; peak {} a minute",
        truth.len(),
        stats.calls,
        1000.0 * stats.calls as f64 / truth.len() as f64,
        stats.weight_used,
        // The first call opens the span: the weight of the others falls in it.
        100.0 * (stats.weight_used - 4) as f64 / (span * 100.0),
        stats.peak_weight_per_minute
    );
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&dir).unwrap();
}
