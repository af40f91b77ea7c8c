//! The upstream client on its own, over HTTP against the simulator: how each kind of answer is
//! classified (one call each, no retries).

use std::time::Duration;

use cloner_worker::config::Settings;
use cloner_worker::dev::simulator::{self, market, SimulatorConfig, SimulatorHandle};
use cloner_worker::domain::pair::CurrencyPair;
use cloner_worker::task::upstream::{Refusal, Upstream, UpstreamError, Window};

use crate::helpers::{start_simulator, DAY};

/// A simulator without its rate limit.
async fn simulator(config: SimulatorConfig) -> SimulatorHandle {
    start_simulator(SimulatorConfig {
        rate_limit: 0,
        ..config
    })
    .await
}

fn client(sim: &SimulatorHandle) -> Upstream {
    let mut settings = Settings::default().upstream;
    settings.base_url = Some(sim.base_url());
    settings.request_timeout_ms = 300;
    Upstream::new(
        &settings,
        cloner_worker::task::venue::from_settings(&settings),
    )
}

fn pair(p: &str) -> CurrencyPair {
    CurrencyPair::parse(p).unwrap()
}

#[actix_rt::test]
async fn a_window_comes_back_complete_and_oldest_first() {
    let sim = simulator(SimulatorConfig::default()).await;
    let up = client(&sim);
    let Ok(Window::Complete(entries)) = up.trade_history(&pair("BTC_ETH"), DAY, DAY + 3599).await
    else {
        panic!("complete expected");
    };
    let truth = market::trades_in_window(sim.config(), "BTC_ETH", DAY, DAY + 3599);
    let ids: Vec<i64> = entries.iter().map(|e| e.trade_id).collect();
    assert_eq!(ids, truth.iter().map(|t| t.trade_id).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn a_full_page_keeps_what_it_covers_and_the_month_error_keeps_nothing() {
    let sim = simulator(SimulatorConfig::default()).await;
    let up = client(&sim);
    let (from, until) = (DAY, DAY + 86_399);
    let busy = up.trade_history(&pair("USDT_BTC"), from, until).await;
    let Ok(Window::TooBig {
        ref reason,
        kept: Some(ref kept),
    }) = busy
    else {
        panic!("a full page, kept: {busy:?}");
    };
    assert!(reason.contains("page limit"), "{reason}");
    // The newest trades of the day, from just after the page's oldest second to the end:
    // exactly the ground truth of that part, oldest first.
    assert_eq!(kept.until, until);
    assert!(kept.from > from);
    let truth = market::trades_in_window(sim.config(), "USDT_BTC", kept.from, kept.until);
    let ids: Vec<i64> = kept.entries.iter().map(|e| e.trade_id).collect();
    assert_eq!(ids, truth.iter().map(|t| t.trade_id).collect::<Vec<_>>());
    assert!(ids.len() < 1000 && ids.len() > 900, "{}", ids.len());
    // Longer than the venue answers (a month): too big at once, without a call (the API's own
    // error for it is read as too big too: `venue::poloniex` unit tests).
    let calls = sim.stats().calls;
    let long = up
        .trade_history(&pair("BTC_ETH"), DAY, DAY + 40 * 86_400)
        .await;
    assert!(
        matches!(long, Ok(Window::TooBig { ref reason, kept: None }) if reason.contains("at most 2592000 s")),
        "{long:?}"
    );
    assert_eq!(sim.stats().calls, calls);
}

#[actix_rt::test]
async fn an_unknown_pair_is_permanent() {
    let sim = simulator(SimulatorConfig::default()).await;
    let answer = client(&sim)
        .trade_history(&pair("BTC_NOPE"), DAY, DAY + 1)
        .await;
    assert_eq!(
        answer,
        Err(UpstreamError::Permanent("Invalid currency pair.".into()))
    );
}

#[actix_rt::test]
async fn faults_are_transient_and_say_what_happened() {
    let cases: [(SimulatorConfig, &str); 4] = [
        (
            SimulatorConfig {
                error_rate: 1.0,
                ..Default::default()
            },
            "HTTP 50",
        ),
        (
            SimulatorConfig {
                malformed_rate: 1.0,
                ..Default::default()
            },
            "not a trade list",
        ),
        (
            SimulatorConfig {
                oversized_rate: 1.0,
                ..Default::default()
            },
            "body larger than",
        ),
        (
            SimulatorConfig {
                hang_rate: 1.0,
                ..Default::default()
            },
            "GET ",
        ),
    ];
    for (config, says) in cases {
        let sim = simulator(config).await;
        let answer = client(&sim)
            .trade_history(&pair("BTC_ETH"), DAY, DAY + 60)
            .await;
        match answer {
            Err(UpstreamError::Transient(message)) => {
                assert!(message.contains(says), "{says}: {message}")
            }
            other => panic!("{says}: transient expected, got {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn a_429_is_push_back_with_its_retry_after_and_a_ban_is_a_418() {
    let sim = simulator::start(SimulatorConfig {
        rate_limit: 1,
        retry_after_secs: 3,
        ban_after: 2,
        ban_secs: 30,
        ..Default::default()
    })
    .await
    .unwrap();
    let up = client(&sim);
    let btc_eth = pair("BTC_ETH");
    let call = || up.trade_history(&btc_eth, DAY, DAY + 60);
    assert!(call().await.is_ok());
    let second = call().await;
    assert!(
        matches!(
            &second,
            Err(UpstreamError::Refused(Refusal::TooMany { retry_after: Some(d), message }))
                if *d == Duration::from_secs(3) && message.contains("HTTP 429")
        ),
        "{second:?}"
    );
    // The second call over the limit starts the ban; every call after it is refused too.
    for _ in 0..2 {
        let banned = call().await;
        assert!(
            matches!(
                &banned,
                Err(UpstreamError::Refused(Refusal::Banned { status: 418, retry_after: Some(d), .. }))
                    if d.as_secs() >= 29
            ),
            "{banned:?}"
        );
    }
    assert_eq!(sim.stats().banned_calls, 2);
}

#[actix_rt::test]
async fn an_unreachable_upstream_is_transient_and_names_the_url() {
    let sim = simulator(SimulatorConfig::default()).await;
    let url = sim.base_url();
    sim.stop().await;
    let mut settings = Settings::default().upstream;
    settings.base_url = Some(url.clone());
    let answer = Upstream::new(
        &settings,
        cloner_worker::task::venue::from_settings(&settings),
    )
    .trade_history(&pair("BTC_ETH"), DAY, DAY + 1)
    .await;
    assert!(
        matches!(&answer, Err(UpstreamError::Transient(m)) if m.contains(&url)),
        "{answer:?}"
    );
}
