//! The simulator's HTTP side (actix-web): the venue's endpoints (Poloniex: `GET
//! /public?command=returnTradeHistory…` and `command=returnTicker`, here; Binance: `GET
//! /api/v3/aggTrades` and `/api/v3/exchangeInfo`, in [`super::binance`]), `GET /stats`, `POST
//! /stats/reset`, `GET /health`; and what both venues share: counting calls as they arrive, the
//! random refusals and the injected faults.
//!
//! Poloniex, per call, in order: the rate check (429 with `Retry-After` past `rate_limit` calls
//! in any one second, counted as a violation; 418 once `ban_after` violations start a ban, for
//! `ban_secs`), a random refusal (`refuse_rate`), then the injected faults, then the real
//! answer. It must never block a server thread: latency and hangs are timers.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::market::{self, splitmix64, unit};
use super::weight::WeightBudget;
use super::{binance, SimulatorConfig, Venue};

/// Counters served by `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every call to the venue's endpoint (`/public`, `/api/v3/aggTrades`).
    pub calls: u64,
    /// Calls answered with trades: past the rate check, the faults and every API error.
    pub trade_history_calls: u64,
    /// Calls answered with the venue's listing (Binance: `exchangeInfo`; Poloniex:
    /// `returnTicker`).
    #[serde(default)]
    pub listing_calls: u64,
    /// Calls past the limit (Poloniex: calls in a second; Binance: weight in a minute),
    /// answered 429, or 418 once they start a ban.
    pub violations: u64,
    /// Calls answered 429: past the limit, or at random (`refuse_rate`).
    #[serde(default)]
    pub rate_limited: u64,
    /// Binance: the request weight of every call, refused ones included, except those turned
    /// away by a ban (as Binance counts it).
    #[serde(default)]
    pub weight_used: u64,
    /// Binance: the most weight counted in any one calendar minute (the highest
    /// `X-MBX-USED-WEIGHT-1M` sent): above `weight_limit_per_minute`, the client went over.
    #[serde(default)]
    pub peak_weight_per_minute: u64,
    /// Calls under the limit answered 429 anyway (`refuse_rate`).
    pub refused_at_random: u64,
    /// Calls answered 418 because the address is banned (`ban_after`).
    pub banned_calls: u64,
    /// The shortest time spanned by `rate_limit + 1` consecutive calls, in µs: under 1 000 000,
    /// the exchange saw one too many in a second; the margin over a second is what jitter could
    /// still take. `None` before there were that many calls (or with no limit).
    pub tightest_window_us: Option<u64>,
    /// Most calls seen in any one-second window.
    pub peak_calls_per_second: u64,
    pub errors_5xx: u64,
    pub hangs: u64,
    pub malformed: u64,
    pub oversized: u64,
    /// Calls for a pair (Binance: a symbol) not listed.
    pub invalid_pair: u64,
    /// Calls answered with the one-month error (Binance: -1127, `startTime` and `endTime` at
    /// least `binance_max_window_secs` apart).
    pub window_too_long: u64,
    /// Calls refused because their window holds one of `fail_seconds`.
    pub failed_windows: u64,
    /// When the first and the last call came, in ms since the simulator started: the calls
    /// over that span are the rate a client achieved, whatever it did before and after.
    pub first_call_ms: Option<u64>,
    pub last_call_ms: Option<u64>,
}

pub(super) struct Shared {
    pub(super) config: SimulatorConfig,
    pub(super) stats: Mutex<Stats>,
    /// Instants of the calls of the last second, for the rate limit and the peak.
    recent: Mutex<VecDeque<Instant>>,
    /// The last `rate_limit + 1` calls' instants, for the tightest window.
    last_calls: Mutex<VecDeque<Instant>>,
    /// Poloniex: until when every call is answered 418.
    banned_until: Mutex<Option<Instant>>,
    /// Numbers calls, for deterministic fault draws.
    pub(super) call_number: AtomicU64,
    /// The origin of `first_call_ms` and `last_call_ms`.
    started: Instant,
    /// Binance: the time its minutes, bans and "now" go by.
    pub(super) clock: Clock,
    /// Binance: the weight of the current minute, and the ban.
    pub(super) weight: Mutex<WeightBudget>,
}

/// A running simulator.
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
}

impl SimulatorHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }

    pub fn reset_stats(&self) {
        *self.shared.stats.lock().unwrap() = Stats::default();
    }

    /// Stops accepting calls and waits for the server to finish (hung calls are dropped).
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

/// Starts a simulator on a free loopback port, on the current actix system.
pub async fn start(config: SimulatorConfig) -> std::io::Result<SimulatorHandle> {
    start_on(config, SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// As [`start`], going by `clock` (a test's [`super::ManualClock`] crosses Binance's minutes
/// and waits out its bans without sleeping, and says when "now" is for both venues' listings).
pub async fn start_with_clock(
    config: SimulatorConfig,
    clock: Clock,
) -> std::io::Result<SimulatorHandle> {
    serve(config, SocketAddr::from(([127, 0, 0, 1], 0)), clock)
}

/// Starts a simulator on `addr` (port 0: a free one), on the current actix system.
pub fn start_on(config: SimulatorConfig, addr: SocketAddr) -> std::io::Result<SimulatorHandle> {
    serve(config, addr, Clock::Wall)
}

fn serve(
    config: SimulatorConfig,
    addr: SocketAddr,
    clock: Clock,
) -> std::io::Result<SimulatorHandle> {
    let workers = config.workers.max(1);
    let venue = config.venue;
    let shared = Arc::new(Shared {
        config,
        stats: Mutex::new(Stats::default()),
        recent: Mutex::new(VecDeque::new()),
        last_calls: Mutex::new(VecDeque::new()),
        banned_until: Mutex::new(None),
        call_number: AtomicU64::new(0),
        started: Instant::now(),
        clock,
        weight: Mutex::new(WeightBudget::default()),
    });
    let state = web::Data::from(shared.clone());
    let server = HttpServer::new(move || {
        // Only the venue's own endpoint: a client of the other venue gets a 404, not answers.
        let app = App::new().app_data(state.clone());
        let app = match venue {
            Venue::Poloniex => app.route("/public", web::get().to(public)),
            Venue::Binance => app
                .route("/api/v3/aggTrades", web::get().to(binance::agg_trades))
                .route(
                    "/api/v3/exchangeInfo",
                    web::get().to(binance::exchange_info),
                ),
        };
        app.route("/stats", web::get().to(stats))
            .route("/stats/reset", web::post().to(reset))
            .route("/health", web::get().to(|| async { "ok" }))
    })
    .workers(workers)
    // Hung calls are dropped at stop, not waited for.
    .shutdown_timeout(0)
    .disable_signals()
    .bind(addr)?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(SimulatorHandle {
        addr,
        shared,
        server: handle,
    })
}

async fn stats(state: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats.lock().unwrap().clone())
}

async fn reset(state: web::Data<Shared>) -> HttpResponse {
    *state.stats.lock().unwrap() = Stats::default();
    HttpResponse::NoContent().finish()
}

fn api_error(message: &str) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "error": message }))
}

enum Fault {
    Hang,
    ServerError(u16),
    Malformed,
    Oversized,
}

/// A 418 if the address is banned, or this call past the limit starts a ban (`ban_after`).
fn ban(state: &Shared, over: bool) -> Option<HttpResponse> {
    let config = &state.config;
    let now = Instant::now();
    let mut banned_until = state.banned_until.lock().unwrap();
    let mut stats = state.stats.lock().unwrap();
    let banned = banned_until.is_some_and(|until| until > now)
        || (over && config.ban_after > 0 && stats.violations >= config.ban_after);
    if !banned {
        return None;
    }
    if banned_until.is_none_or(|until| until <= now) {
        *banned_until = Some(now + Duration::from_secs(config.ban_secs));
    }
    stats.banned_calls += 1;
    let left = banned_until
        .expect("set above")
        .saturating_duration_since(now);
    Some(
        HttpResponse::build(actix_web::http::StatusCode::IM_A_TEAPOT)
            .insert_header(("Retry-After", left.as_secs().max(1).to_string()))
            .json(serde_json::json!({ "error": "Way too many requests; IP banned." })),
    )
}

/// Draws this call's fault, if any, from (seed, call number).
fn draw_fault(config: &SimulatorConfig, call: u64) -> Option<Fault> {
    let r = unit(splitmix64(
        config.seed ^ call.wrapping_mul(0xA24B_AED4_963E_E407),
    ));
    let mut edge = config.hang_rate;
    if r < edge {
        return Some(Fault::Hang);
    }
    edge += config.error_rate;
    if r < edge {
        return Some(Fault::ServerError([500, 502, 503][(call % 3) as usize]));
    }
    edge += config.malformed_rate;
    if r < edge {
        return Some(Fault::Malformed);
    }
    edge += config.oversized_rate;
    (r < edge).then_some(Fault::Oversized)
}

/// Records a call as it arrives, for both venues: counts it, when it came, and the calls of
/// the last second; returns when it came and how many calls (it included) the last second saw.
pub(super) fn arrival(state: &Shared) -> (Instant, u64) {
    let now = Instant::now();
    let in_last_second = {
        let mut recent = state.recent.lock().unwrap();
        while recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        recent.push_back(now);
        recent.len() as u64
    };
    let mut stats = state.stats.lock().unwrap();
    stats.calls += 1;
    let at = now.duration_since(state.started).as_millis() as u64;
    stats.first_call_ms.get_or_insert(at);
    stats.last_call_ms = Some(at);
    stats.peak_calls_per_second = stats.peak_calls_per_second.max(in_last_second);
    (now, in_last_second)
}

/// Records a call; `true` if it is past the rate limit.
fn over_the_limit(state: &Shared) -> bool {
    let (now, in_last_second) = arrival(state);
    let limit = state.config.rate_limit as u64;
    let tightest = (limit > 0)
        .then(|| {
            let mut last = state.last_calls.lock().unwrap();
            last.push_back(now);
            if last.len() as u64 > limit + 1 {
                last.pop_front();
            }
            (last.len() as u64 == limit + 1).then(|| (now - last[0]).as_micros() as u64)
        })
        .flatten();
    let mut stats = state.stats.lock().unwrap();
    if let Some(span) = tightest {
        stats.tightest_window_us = Some(stats.tightest_window_us.map_or(span, |t| t.min(span)));
    }
    let over = limit > 0 && in_last_second > limit;
    if over {
        stats.violations += 1;
    }
    over
}

async fn public(
    state: web::Data<Shared>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let config = &state.config;
    let over = over_the_limit(&state);
    if let Some(response) = ban(&state, over) {
        return response;
    }
    let call = state.call_number.fetch_add(1, Ordering::Relaxed);
    let at_random = refused_at_random(config, call);
    if over || at_random {
        let mut stats = state.stats.lock().unwrap();
        stats.rate_limited += 1;
        if at_random && !over {
            stats.refused_at_random += 1;
        }
        drop(stats);
        let message = format!(
            "Please do not make more than {} API calls per second.",
            config.rate_limit
        );
        let mut response = HttpResponse::TooManyRequests();
        if config.retry_after_secs > 0 {
            response.insert_header(("Retry-After", config.retry_after_secs.to_string()));
        }
        return response.json(serde_json::json!({ "error": message }));
    }
    if let Some(response) = inject_fault(&state, call).await {
        return response;
    }
    match query.get("command").map(String::as_str) {
        Some("returnTradeHistory") => trade_history(&state, &query),
        Some("returnTicker") => ticker(&state),
        _ => api_error("Invalid command."),
    }
}

/// Whether call number `call` is refused although under the limit (`refuse_rate`), drawn
/// from (seed, call number).
pub(super) fn refused_at_random(config: &SimulatorConfig, call: u64) -> bool {
    config.refuse_rate > 0.0
        && unit(splitmix64(
            config.seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )) < config.refuse_rate
}

/// Call number `call`'s injected fault, answered (a hang answers after an hour), or `None`
/// once the configured latency has passed.
pub(super) async fn inject_fault(state: &Shared, call: u64) -> Option<HttpResponse> {
    let config = &state.config;
    let fault = draw_fault(config, call);
    if let Some(Fault::Hang) = fault {
        state.stats.lock().unwrap().hangs += 1;
        actix_rt::time::sleep(Duration::from_secs(3600)).await;
        return Some(HttpResponse::GatewayTimeout().finish());
    }
    if config.latency_ms > 0 {
        actix_rt::time::sleep(Duration::from_millis(config.latency_ms)).await;
    }
    match fault {
        Some(Fault::ServerError(code)) => {
            state.stats.lock().unwrap().errors_5xx += 1;
            let status = actix_web::http::StatusCode::from_u16(code).expect("a valid status");
            Some(HttpResponse::build(status).body("<html><body>upstream unavailable</body></html>"))
        }
        Some(Fault::Malformed) => {
            state.stats.lock().unwrap().malformed += 1;
            let body = match config.venue {
                Venue::Poloniex => r#"[{"globalTradeID":1,"tradeID":1,"date":"2018-10-22 15:0"#,
                Venue::Binance => r#"[{"a":3000000001,"p":"6500.0000","q":"0.0"#,
            };
            Some(
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body),
            )
        }
        Some(Fault::Oversized) => {
            state.stats.lock().unwrap().oversized += 1;
            let trade = match config.venue {
                Venue::Poloniex => POLONIEX_TRADE,
                Venue::Binance => BINANCE_TRADE,
            };
            Some(
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(oversized_body(trade)),
            )
        }
        _ => None,
    }
}

fn trade_history(state: &Shared, query: &HashMap<String, String>) -> HttpResponse {
    let config = &state.config;
    let Some(pair) = query.get("currencyPair").map(String::as_str) else {
        return api_error("Please specify a currencyPair.");
    };
    if !market::is_listed(config, pair) {
        state.stats.lock().unwrap().invalid_pair += 1;
        return api_error("Invalid currency pair.");
    }
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<i64>().ok());
    let (Some(start), Some(end)) = (number("start"), number("end")) else {
        return api_error("Please specify start and end as unix timestamps in seconds.");
    };
    if start > end {
        return api_error("Please specify a start before the end.");
    }
    if end - start > config.max_window_secs {
        state.stats.lock().unwrap().window_too_long += 1;
        return api_error("Please specify a time window of no more than 1 month.");
    }
    if config
        .fail_seconds
        .iter()
        .any(|s| (start..=end).contains(s))
    {
        state.stats.lock().unwrap().failed_windows += 1;
        return api_error("Internal error: this window cannot be served (simulated).");
    }
    state.stats.lock().unwrap().trade_history_calls += 1;
    let trades = market::newest_trades(config, pair, start, end, config.page_limit);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(to_json(&trades))
}

/// `returnTicker`: every listed pair, keyed by its name, as of the simulator's clock.
fn ticker(state: &Shared) -> HttpResponse {
    let config = &state.config;
    let now = state.clock.now_ms().div_euclid(1000);
    let mut pairs = serde_json::Map::new();
    for (id, pair) in config.listed_pairs().into_iter().enumerate() {
        let t = market::ticker(config, pair, now).expect("a listed pair");
        // Every value a string but the id, as Poloniex sent them.
        pairs.insert(
            pair.to_string(),
            serde_json::json!({
                "id": id + 1,
                "last": t.last,
                "lowestAsk": t.lowest_ask,
                "highestBid": t.highest_bid,
                "percentChange": t.percent_change,
                "baseVolume": t.base_volume,
                "quoteVolume": t.quote_volume,
                "isFrozen": if config.trading_at(pair, now) { "0" } else { "1" },
                "high24hr": t.high_24hr,
                "low24hr": t.low_24hr,
            }),
        );
    }
    state.stats.lock().unwrap().listing_calls += 1;
    HttpResponse::Ok().json(pairs)
}

/// The API's trade objects, written by hand: a 1000-trade page is the hot path of benchmarks.
fn to_json(trades: &[market::SimTrade]) -> String {
    let mut out = String::with_capacity(trades.len() * 190 + 2);
    out.push('[');
    for (i, t) in trades.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"globalTradeID":{},"tradeID":{},"date":"{}","type":"{}","rate":"{}","amount":"{}","total":"{}","orderNumber":{}}}"#,
            t.global_trade_id,
            t.trade_id,
            crate::domain::utc::format_utc(t.date),
            if t.buy { "buy" } else { "sell" },
            t.rate,
            t.amount,
            t.total,
            t.global_trade_id * 3 + 1,
        );
    }
    out.push(']');
    out
}

const POLONIEX_TRADE: &str = r#"{"globalTradeID":1,"tradeID":1,"date":"2018-10-22 15:03:57","type":"buy","rate":"0.1","amount":"1","total":"0.1"}"#;
const BINANCE_TRADE: &str = r#"{"a":3000000001,"p":"0.10000000","q":"1.00000000","f":6000000001,"l":6000000001,"T":1540220637000,"m":true,"M":true}"#;

/// A well-formed list of `trade` of more than 8 MiB: a body limit must stop it, not a parser.
fn oversized_body(trade: &str) -> String {
    let n = (8 << 20) / trade.len() + 1;
    let mut out = String::with_capacity(n * (trade.len() + 1) + 2);
    out.push('[');
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        out.push_str(trade);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dev::simulator::{start_with_clock, ManualClock};

    const DAY: i64 = 1_540_166_400; // 2018-10-22

    async fn get(sim: &SimulatorHandle, query: &str) -> (u16, serde_json::Value) {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        let mut response = client
            .get(format!("{}/public?{query}", sim.base_url()))
            .send()
            .await
            .expect("answer");
        let body = response.body().await.expect("body");
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        (response.status().as_u16(), value)
    }

    #[actix_rt::test]
    async fn return_ticker_lists_every_pair_with_string_values_and_counts_as_a_call() {
        let now = DAY + 86_400;
        let config = SimulatorConfig {
            delisted: [("BTC_DEAD".to_string(), DAY)].into(),
            rate_limit: 1,
            ..SimulatorConfig::default()
        };
        let sim = start_with_clock(config, ManualClock::new(now * 1000).into())
            .await
            .expect("simulator starts");
        let started = Instant::now();
        let (status, body) = get(&sim, "command=returnTicker").await;
        assert_eq!(status, 200, "{body}");
        let pairs = body.as_object().expect("an object keyed by pair");
        let mut names: Vec<&str> = pairs.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["BTC_DEAD", "BTC_ETH", "BTC_LTC", "BTC_XMR", "USDT_BTC", "USDT_ETH"]
        );
        let mut ids = Vec::new();
        for (pair, entry) in pairs {
            let entry = entry.as_object().unwrap();
            let keys = [
                "id",
                "last",
                "lowestAsk",
                "highestBid",
                "percentChange",
                "baseVolume",
                "quoteVolume",
                "isFrozen",
                "high24hr",
                "low24hr",
            ];
            assert_eq!(entry.len(), keys.len(), "{pair}: {entry:?}");
            for key in &keys[1..] {
                assert!(entry[*key].is_string(), "{pair}.{key}: {entry:?}");
            }
            ids.push(entry["id"].as_u64().expect("a numeric id"));
            let truth = market::ticker(sim.config(), pair, now).unwrap();
            assert_eq!(entry["last"], truth.last.as_str(), "{pair}");
            assert_eq!(entry["quoteVolume"], truth.quote_volume.as_str(), "{pair}");
            let frozen = if pair == "BTC_DEAD" { "1" } else { "0" };
            assert_eq!(entry["isFrozen"], frozen, "{pair}");
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), pairs.len(), "one id per pair");
        // The last price is the last trade's.
        let day = market::trades_in_window(sim.config(), "BTC_ETH", now - 86_399, now);
        assert_eq!(pairs["BTC_ETH"]["last"], day.last().unwrap().rate.as_str());
        // One of the 1 call a second this simulator allows: the next call within the second is
        // refused, and both are in the rate's record whenever they came.
        let (status, _) = get(
            &sim,
            &format!("command=returnTradeHistory&currencyPair=BTC_ETH&start={DAY}&end={now}"),
        )
        .await;
        if started.elapsed() < Duration::from_millis(900) {
            assert_eq!(status, 429);
        }
        let stats = sim.stats();
        assert_eq!((stats.calls, stats.listing_calls), (2, 1));
        assert!(stats.tightest_window_us.is_some(), "{stats:?}");
    }
}
