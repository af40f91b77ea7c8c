//! The simulator's HTTP side (actix-web): the venue's endpoints (Poloniex: `GET
//! /public?command=returnTradeHistory…` and `command=returnTicker`, here; Binance: `GET
//! /api/v3/aggTrades` and `/api/v3/exchangeInfo`, in [`super::binance`]), `GET /stats`, `POST
//! /stats/reset`, `GET /health`; and what both venues share: counting calls as they arrive, the
//! random refusals and the injected faults.
//!
//! Every limit and ban counts per client address (the peer's IP: a `Budget` each), as the
//! exchanges count, unless `per_address` is off; `/stats` has the totals and a line per address.
//!
//! Poloniex, per call, in order: the rate check (429 with `Retry-After` past `rate_limit` calls
//! of the address in any one second, counted as a violation; 418 once `ban_after` violations
//! start a ban of the address, for `ban_secs`), a random refusal (`refuse_rate`), then the
//! injected faults, then the real answer. It must never block a server thread: latency and
//! hangs are timers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::market::{self, splitmix64, unit};
use super::weight::WeightBudget;
use super::{binance, SimulatorConfig, Venue};

/// Counters served by `/stats`: totals over every client, and `addresses`, one line per client
/// address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every call to the venue's endpoints (`/public`, `/api/v3/aggTrades`,
    /// `/api/v3/exchangeInfo`).
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
    /// Binance: the most weight counted in any one calendar minute of any one budget (the
    /// highest `X-MBX-USED-WEIGHT-1M` sent): above `weight_limit_per_minute`, a client went
    /// over.
    #[serde(default)]
    pub peak_weight_per_minute: u64,
    /// Calls under the limit answered 429 anyway (`refuse_rate`).
    pub refused_at_random: u64,
    /// Calls answered 418 because the address is banned (`ban_after`).
    pub banned_calls: u64,
    /// The shortest time spanned by `rate_limit + 1` consecutive calls of one budget, in µs:
    /// under 1 000 000, the exchange saw one too many in a second; the margin over a second is
    /// what jitter could still take. `None` before there were that many calls (or with no
    /// limit).
    pub tightest_window_us: Option<u64>,
    /// Most calls one budget saw in any one-second window.
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
    /// The same counts per client address (the peer's IP).
    #[serde(default)]
    pub addresses: BTreeMap<IpAddr, AddressStats>,
}

/// One client address's counts. The peaks are those of the budget its calls were counted
/// against: its own, or with `per_address` off the one all addresses share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressStats {
    pub calls: u64,
    /// Calls past the limit, as [`Stats::violations`].
    pub violations: u64,
    /// Calls answered 429.
    pub rate_limited: u64,
    /// Calls answered 418.
    pub banned_calls: u64,
    /// Binance: the weight counted, as [`Stats::weight_used`].
    pub weight_used: u64,
    /// Binance: the highest `X-MBX-USED-WEIGHT-1M` sent to it.
    pub peak_weight_per_minute: u64,
    /// Most calls of its budget in any one second, at its calls.
    pub peak_calls_per_second: u64,
    /// As [`Stats::tightest_window_us`], over its budget's calls.
    pub tightest_window_us: Option<u64>,
}

/// One budget: what the rate limits count for one client address (with `per_address` off,
/// for all of them).
#[derive(Debug, Default)]
pub(super) struct Budget {
    /// Instants of the calls of the last second, for the rate limit and the peak.
    recent: VecDeque<Instant>,
    /// The last `rate_limit + 1` calls' instants, for the tightest window.
    last_calls: VecDeque<Instant>,
    /// Poloniex: calls past the rate so far, for `ban_after`; never reset, as Binance's count.
    violations: u64,
    /// Poloniex: until when every call is answered 418.
    banned_until: Option<Instant>,
    /// Binance: the weight of the current minute, and the ban.
    pub(super) weight: WeightBudget,
}

/// Who a call comes from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caller {
    /// The peer's IP address: the line of [`Stats::addresses`] it is counted in.
    pub(super) address: IpAddr,
    /// The budget it is counted against: its address's, or with `per_address` off everyone's.
    pub(super) budget: IpAddr,
}

pub(super) struct Shared {
    pub(super) config: SimulatorConfig,
    pub(super) stats: Mutex<Stats>,
    /// The budgets, by [`Caller::budget`]; never held while `stats` is.
    pub(super) budgets: Mutex<HashMap<IpAddr, Budget>>,
    /// Numbers calls, for deterministic fault draws.
    pub(super) call_number: AtomicU64,
    /// The origin of `first_call_ms` and `last_call_ms`.
    started: Instant,
    /// Binance: the time its minutes, bans and "now" go by; both venues' listings' "now".
    pub(super) clock: Clock,
}

impl Shared {
    /// Who sent `request`: its peer's address, and the budget that counts it.
    pub(super) fn caller(&self, request: &HttpRequest) -> Caller {
        // A peer over IPv6 may be an IPv4 address in disguise (`::ffff:127.0.0.2`).
        let address = request
            .peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| {
                peer.ip().to_canonical()
            });
        let budget = if self.config.per_address {
            address
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        Caller { address, budget }
    }

    /// Counts into the totals and `address`'s line at once.
    pub(super) fn count(&self, address: IpAddr, f: impl FnOnce(&mut Stats, &mut AddressStats)) {
        let mut stats = self.stats.lock().unwrap();
        let mut line = stats.addresses.remove(&address).unwrap_or_default();
        f(&mut stats, &mut line);
        stats.addresses.insert(address, line);
    }
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
        budgets: Mutex::new(HashMap::new()),
        call_number: AtomicU64::new(0),
        started: Instant::now(),
        clock,
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

/// A 418 if the caller's budget is banned, or this call past the limit starts a ban
/// (`ban_after`).
fn ban(state: &Shared, caller: Caller, over: bool) -> Option<HttpResponse> {
    let config = &state.config;
    let now = Instant::now();
    let left = {
        let mut budgets = state.budgets.lock().unwrap();
        let budget = budgets.entry(caller.budget).or_default();
        let banned = budget.banned_until.is_some_and(|until| until > now)
            || (over && config.ban_after > 0 && budget.violations >= config.ban_after);
        if !banned {
            return None;
        }
        let until = match budget.banned_until {
            Some(until) if until > now => until,
            _ => now + Duration::from_secs(config.ban_secs),
        };
        budget.banned_until = Some(until);
        until.saturating_duration_since(now)
    };
    state.count(caller.address, |stats, line| {
        stats.banned_calls += 1;
        line.banned_calls += 1;
    });
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

/// Records a call as it arrives, for both venues, in the caller's budget: counts it, when it
/// came, the calls of the last second and (with a `rate_limit`) the tightest window; returns
/// how many calls (it included) the budget's last second saw.
pub(super) fn arrival(state: &Shared, caller: Caller) -> u64 {
    let now = Instant::now();
    // Binance counts weight, not calls: its calls have no tightest window.
    let limit = match state.config.venue {
        Venue::Poloniex => state.config.rate_limit as u64,
        Venue::Binance => 0,
    };
    let (in_last_second, tightest) = {
        let mut budgets = state.budgets.lock().unwrap();
        let budget = budgets.entry(caller.budget).or_default();
        let recent = &mut budget.recent;
        while recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        recent.push_back(now);
        let last = &mut budget.last_calls;
        let tightest = (limit > 0)
            .then(|| {
                last.push_back(now);
                if last.len() as u64 > limit + 1 {
                    last.pop_front();
                }
                (last.len() as u64 == limit + 1).then(|| (now - last[0]).as_micros() as u64)
            })
            .flatten();
        (budget.recent.len() as u64, tightest)
    };
    let at = now.duration_since(state.started).as_millis() as u64;
    let tighter = |t: Option<u64>, span: u64| Some(t.map_or(span, |t| t.min(span)));
    state.count(caller.address, |stats, line| {
        stats.calls += 1;
        line.calls += 1;
        stats.first_call_ms.get_or_insert(at);
        stats.last_call_ms = Some(at);
        stats.peak_calls_per_second = stats.peak_calls_per_second.max(in_last_second);
        line.peak_calls_per_second = line.peak_calls_per_second.max(in_last_second);
        if let Some(span) = tightest {
            stats.tightest_window_us = tighter(stats.tightest_window_us, span);
            line.tightest_window_us = tighter(line.tightest_window_us, span);
        }
    });
    in_last_second
}

/// Records a call; `true` if it is past the rate limit of its budget.
fn over_the_limit(state: &Shared, caller: Caller) -> bool {
    let in_last_second = arrival(state, caller);
    let limit = state.config.rate_limit as u64;
    let over = limit > 0 && in_last_second > limit;
    if over {
        let mut budgets = state.budgets.lock().unwrap();
        budgets.entry(caller.budget).or_default().violations += 1;
        drop(budgets);
        state.count(caller.address, |stats, line| {
            stats.violations += 1;
            line.violations += 1;
        });
    }
    over
}

async fn public(
    request: HttpRequest,
    state: web::Data<Shared>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let config = &state.config;
    let caller = state.caller(&request);
    let over = over_the_limit(&state, caller);
    if let Some(response) = ban(&state, caller, over) {
        return response;
    }
    let call = state.call_number.fetch_add(1, Ordering::Relaxed);
    let at_random = refused_at_random(config, call);
    if over || at_random {
        state.count(caller.address, |stats, line| {
            stats.rate_limited += 1;
            line.rate_limited += 1;
            if at_random && !over {
                stats.refused_at_random += 1;
            }
        });
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
    use crate::dev::simulator::{start, start_with_clock, ManualClock};

    const DAY: i64 = 1_540_166_400; // 2018-10-22

    async fn get(sim: &SimulatorHandle, query: &str) -> (u16, serde_json::Value) {
        get_from(sim, None, query).await
    }

    /// A call from local address `from` (any of 127/8 reaches a loopback server on Linux).
    async fn get_from(
        sim: &SimulatorHandle,
        from: Option<IpAddr>,
        query: &str,
    ) -> (u16, serde_json::Value) {
        let mut response = crate::dev::simulator::test_client(from)
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

    #[actix_rt::test]
    async fn each_client_address_has_its_own_calls_per_second_and_its_own_ban() {
        let config = SimulatorConfig {
            rate_limit: 1,
            ban_after: 1,
            ..SimulatorConfig::default()
        };
        let sim = start(config.clone()).await.expect("simulator starts");
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let history = format!(
            "command=returnTradeHistory&currencyPair=BTC_ETH&start={DAY}&end={}",
            DAY + 60
        );
        let started = Instant::now();
        assert_eq!(get_from(&sim, Some(a), &history).await.0, 200);
        let (second, _) = get_from(&sim, Some(a), &history).await;
        let fast = started.elapsed() < Duration::from_millis(900);
        // The other address's first call is its budget's first, whenever it comes.
        assert_eq!(get_from(&sim, Some(b), &history).await.0, 200);
        if fast {
            // Past the first address's 1 a second, with ban_after 1: banned.
            assert_eq!(second, 418);
        }
        if second == 418 {
            // The ban outlasts the test, for that address only.
            assert_eq!(get_from(&sim, Some(a), &history).await.0, 418);
            assert_eq!(sim.stats().addresses[&a].banned_calls, 2);
        }
        let stats = sim.stats();
        let (line_a, line_b) = (&stats.addresses[&a], &stats.addresses[&b]);
        assert_eq!(line_b.calls, 1);
        assert_eq!((line_b.violations, line_b.banned_calls), (0, 0));
        assert_eq!(line_b.peak_calls_per_second, 1);
        // Two calls make the first address's tightest window; the second has had one.
        assert!(line_a.tightest_window_us.is_some() && line_b.tightest_window_us.is_none());
        assert_eq!(stats.tightest_window_us, line_a.tightest_window_us);
        assert_eq!(stats.calls, line_a.calls + line_b.calls);

        // One budget for all: the second address's call is the shared second's second.
        let shared = SimulatorConfig {
            per_address: false,
            ban_after: 0,
            ..config
        };
        let sim = start(shared).await.expect("simulator starts");
        let started = Instant::now();
        assert_eq!(get_from(&sim, Some(a), &history).await.0, 200);
        let (status, body) = get_from(&sim, Some(b), &history).await;
        if started.elapsed() < Duration::from_millis(900) {
            assert_eq!(status, 429, "{body}");
            assert_eq!(sim.stats().addresses[&b].rate_limited, 1);
        }
        // Both counted in the one budget, whenever they came.
        assert!(sim.stats().addresses[&b].tightest_window_us.is_some());
    }
}
