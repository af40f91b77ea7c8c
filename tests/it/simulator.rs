//! The exchange simulator over HTTP, as a client sees it: answers, errors, the rate limit and
//! its violation counter, fault injection and `/stats`.

use std::time::Duration;

use cloner_worker::dev::simulator::{market, SimulatorConfig, SimulatorHandle, Stats};

use crate::helpers::process::{exchange_simulator, run};
use crate::helpers::{no_rate_limit, start_simulator};

const DAY: i64 = 1_540_166_400; // 2018-10-22

/// One call; (status, body).
async fn get(sim: &SimulatorHandle, query: &str) -> (u16, String) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(5))
        .finish();
    let mut response = client
        .get(format!("{}/public?{query}", sim.base_url()))
        .send()
        .await
        .expect("answer");
    let body = response.body().limit(64 << 20).await.expect("body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn history(pair: &str, start: i64, end: i64) -> String {
    format!("command=returnTradeHistory&currencyPair={pair}&start={start}&end={end}")
}

#[actix_rt::test]
async fn answers_newest_first_as_the_api_does() {
    let sim = start_simulator(no_rate_limit()).await;
    let (status, body) = get(&sim, &history("BTC_ETH", DAY, DAY + 3599)).await;
    assert_eq!(status, 200);
    let trades: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let truth = market::trades_in_window(sim.config(), "BTC_ETH", DAY, DAY + 3599);
    assert_eq!(trades.len(), truth.len());
    let newest = &trades[0];
    let last = truth.last().unwrap();
    assert_eq!(newest["tradeID"], last.trade_id);
    assert_eq!(
        newest["date"],
        cloner_worker::domain::utc::format_utc(last.date)
    );
    assert_eq!(newest["rate"], last.rate.as_str());
    for key in ["globalTradeID", "type", "amount", "total", "orderNumber"] {
        assert!(newest.get(key).is_some(), "{key} in {newest}");
    }
    let ids: Vec<i64> = trades
        .iter()
        .map(|t| t["tradeID"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1] + 1),
        "newest first, consecutive"
    );
}

#[actix_rt::test]
async fn a_busy_window_returns_the_newest_page() {
    let sim = start_simulator(SimulatorConfig {
        page_limit: 50,
        ..no_rate_limit()
    })
    .await;
    let (_, body) = get(&sim, &history("USDT_BTC", DAY, DAY + 86_399)).await;
    let trades: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(trades.len(), 50);
    let truth = market::trades_in_window(sim.config(), "USDT_BTC", DAY, DAY + 86_399);
    assert_eq!(trades[0]["tradeID"], truth.last().unwrap().trade_id);
    assert_eq!(trades[49]["tradeID"], truth[truth.len() - 50].trade_id);
}

#[actix_rt::test]
async fn errors_come_as_the_api_sends_them() {
    let sim = start_simulator(no_rate_limit()).await;
    let cases = [
        (history("BTC_NOPE", DAY, DAY + 1), "Invalid currency pair."),
        (
            history("BTC_ETH", DAY, DAY + 31 * 86_400),
            "Please specify a time window of no more than 1 month.",
        ),
        (
            history("BTC_ETH", DAY + 1, DAY),
            "Please specify a start before the end.",
        ),
        (
            "command=returnTradeHistory&currencyPair=BTC_ETH&start=x&end=1".to_string(),
            "Please specify start and end",
        ),
        ("command=returnOrderBook".to_string(), "Invalid command."),
        (
            "command=returnTradeHistory&start=1&end=2".to_string(),
            "Please specify a currencyPair.",
        ),
    ];
    for (query, message) in cases {
        let (status, body) = get(&sim, &query).await;
        assert_eq!(status, 200, "{query}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().starts_with(message),
            "{query}: {body}"
        );
    }
    let stats = sim.stats();
    assert_eq!(
        (stats.invalid_pair, stats.window_too_long),
        (1, 1),
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn calls_past_the_limit_get_429_and_count_as_violations() {
    let sim = start_simulator(SimulatorConfig {
        rate_limit: 20,
        ..SimulatorConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    // 25 calls back to back: far less than a second on loopback.
    for _ in 0..25 {
        statuses.push(get(&sim, &history("BTC_ETH", DAY, DAY + 10)).await);
    }
    let limited: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(limited.len(), 5);
    assert!(limited[0]
        .1
        .contains("Please do not make more than 20 API calls per second."));
    assert!(
        statuses[..20].iter().all(|(s, _)| *s == 200),
        "the first 20 pass"
    );
    let stats = sim.stats();
    assert_eq!(
        (stats.calls, stats.violations, stats.peak_calls_per_second),
        (25, 5, 25),
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn stats_are_served_and_reset_over_http() {
    let sim = start_simulator(no_rate_limit()).await;
    get(&sim, &history("BTC_ETH", DAY, DAY + 10)).await;
    let client = awc::Client::default();
    let stats: Stats = client
        .get(format!("{}/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((stats.calls, stats.trade_history_calls), (1, 1));
    let reset = client
        .post(format!("{}/stats/reset", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    assert_eq!(sim.stats(), Stats::default());
}

#[actix_rt::test]
async fn each_fault_can_be_injected() {
    let five_xx = start_simulator(SimulatorConfig {
        error_rate: 1.0,
        ..no_rate_limit()
    })
    .await;
    let (status, _) = get(&five_xx, &history("BTC_ETH", DAY, DAY + 10)).await;
    assert!((500..600).contains(&status));
    assert_eq!(five_xx.stats().errors_5xx, 1);

    let malformed = start_simulator(SimulatorConfig {
        malformed_rate: 1.0,
        ..no_rate_limit()
    })
    .await;
    let (status, body) = get(&malformed, &history("BTC_ETH", DAY, DAY + 10)).await;
    assert_eq!(status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_err(),
        "{body}"
    );

    let oversized = start_simulator(SimulatorConfig {
        oversized_rate: 1.0,
        ..no_rate_limit()
    })
    .await;
    let (_, body) = get(&oversized, &history("BTC_ETH", DAY, DAY + 10)).await;
    assert!(body.len() > 8 << 20);

    let slow = start_simulator(SimulatorConfig {
        latency_ms: 150,
        ..no_rate_limit()
    })
    .await;
    let started = std::time::Instant::now();
    get(&slow, &history("BTC_ETH", DAY, DAY + 10)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));

    let hang = start_simulator(SimulatorConfig {
        hang_rate: 1.0,
        ..no_rate_limit()
    })
    .await;
    let client = awc::Client::builder()
        .timeout(Duration::from_millis(300))
        .finish();
    let call = client
        .get(format!(
            "{}/public?{}",
            hang.base_url(),
            history("BTC_ETH", DAY, DAY + 10)
        ))
        .send()
        .await;
    assert!(
        matches!(call, Err(awc::error::SendRequestError::Timeout)),
        "{call:?}"
    );
    assert_eq!(hang.stats().hangs, 1);
}

#[actix_rt::test]
async fn fault_draws_are_deterministic_and_near_their_rate() {
    let config = SimulatorConfig {
        error_rate: 0.3,
        ..no_rate_limit()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = start_simulator(config.clone()).await;
        let mut statuses = Vec::new();
        for _ in 0..200 {
            statuses.push(get(&sim, &history("BTC_ETH", DAY, DAY + 10)).await.0);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "same seed, same call order: same faults");
    let errors = runs[0].iter().filter(|&&s| s >= 500).count();
    assert!(
        (40..=80).contains(&errors),
        "{errors} of 200 at a 30 % rate"
    );
}

#[test]
fn the_binary_refuses_a_fault_rate_outside_zero_to_one() {
    let mut command = exchange_simulator();
    command.args(["--error-rate", "1.5"]);
    let (ok, _, err) = run(command);
    assert!(!ok);
    assert!(
        err.contains("--error-rate must be a fraction between 0 and 1, got 1.5"),
        "{err}"
    );
}

#[actix_rt::test]
async fn windows_holding_a_fail_second_always_fail() {
    let sim = start_simulator(SimulatorConfig {
        rate_limit: 0,
        fail_seconds: vec![1_540_170_000],
        ..SimulatorConfig::default()
    })
    .await;
    let query = |from: i64, until: i64| {
        format!("command=returnTradeHistory&currencyPair=BTC_ETH&start={from}&end={until}")
    };
    for _ in 0..2 {
        let (status, body) = get(&sim, &query(1_540_166_400, 1_540_169_999 + 1)).await;
        assert_eq!(status, 200);
        assert!(body.contains("\"error\""), "{body}");
    }
    let (_, body) = get(&sim, &query(1_540_166_400, 1_540_169_999)).await;
    assert!(
        body.starts_with('['),
        "a window without the second is served: {body}"
    );
    let stats = sim.stats();
    assert_eq!(stats.failed_windows, 2);
    assert!(stats.first_call_ms.is_some() && stats.first_call_ms <= stats.last_call_ms);
}
