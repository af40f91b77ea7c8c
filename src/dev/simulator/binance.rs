//! The Binance venue's endpoints, `GET /api/v3/aggTrades` and `GET /api/v3/exchangeInfo`, with
//! Binance's rules: their parameters and errors (HTTP 400 with `{"code":…,"msg":…}`), the
//! request weight of every call (4 and 20) counted per calendar minute and reported in
//! `X-MBX-USED-WEIGHT-1M`, 429 past the budget and 418 once banned, both with `Retry-After`.
//! docs/simulator.md cites the Binance page behind each rule, and says which are the
//! simulator's own choice where Binance's pages are silent.
//!
//! Per call, in order: the weight check of the caller's address ([`super::weight`]), a random
//! refusal (`refuse_rate`), the injected faults, then the answer. "Now" is the simulator's
//! clock when the call arrives: trades after it do not exist yet, whatever is asked, and a
//! delisted symbol is `BREAK` from its stop on. It must never block a server thread, and never
//! answer without the weight header.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::agg_market::{self, AggTrade};
use super::server::{self, Caller, Shared};
use super::weight::{self, Admission};
use super::SimulatorConfig;

/// Trades per answer when `limit` is not sent.
pub const DEFAULT_LIMIT: usize = 500;
/// Most trades per answer: a larger `limit` is cut down to it.
pub const MAX_LIMIT: usize = 1000;

/// The request weight of one `exchangeInfo` call, as Binance documents it.
pub const EXCHANGE_INFO_WEIGHT: u64 = 20;

const SYMBOL_RANGE: &str = "^[A-Z0-9-_.]{1,20}$";
const SYMBOLS_RANGE: &str = r#"^\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\]$"#;
const NUMBER_RANGE: &str = "^[0-9]{1,20}$";

/// `GET /api/v3/aggTrades`.
pub(super) async fn agg_trades(
    http: HttpRequest,
    state: web::Data<Shared>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let weight = state.config.weight_per_call;
    weighed(&http, &state, weight, |state, now_ms| {
        match request(state, &query, now_ms) {
            Ok(trades) => {
                state.stats.lock().unwrap().trade_history_calls += 1;
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(serde_json::to_string(&trades).expect("trades serialize"))
            }
            Err(error) => error.response(),
        }
    })
    .await
}

/// `GET /api/v3/exchangeInfo`.
pub(super) async fn exchange_info(
    http: HttpRequest,
    state: web::Data<Shared>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    weighed(
        &http,
        &state,
        EXCHANGE_INFO_WEIGHT,
        |state, now_ms| match listing(state, &query, now_ms) {
            Ok(body) => {
                state.stats.lock().unwrap().listing_calls += 1;
                HttpResponse::Ok().json(body)
            }
            Err(error) => error.response(),
        },
    )
    .await
}

/// A call of `weight` through its caller's weight check, the random refusals and the faults to
/// `serve`, with the weight header on whatever comes back.
async fn weighed(
    http: &HttpRequest,
    state: &Shared,
    weight: u64,
    serve: impl FnOnce(&Shared, i64) -> HttpResponse,
) -> HttpResponse {
    let caller = state.caller(http);
    server::arrival(state, caller);
    let now_ms = state.clock.now_ms();
    let admission = state
        .budgets
        .lock()
        .unwrap()
        .entry(caller.budget)
        .or_default()
        .weight
        .admit(now_ms, weight, &state.config);
    let (counted, used) = (admission.counted(weight), admission.used());
    state.count(caller.address, |stats, line| {
        stats.weight_used += counted;
        line.weight_used += counted;
        stats.peak_weight_per_minute = stats.peak_weight_per_minute.max(used);
        line.peak_weight_per_minute = line.peak_weight_per_minute.max(used);
    });
    let mut response = match refusal(state, caller, admission, now_ms).await {
        Some(refused) => refused,
        None => serve(state, now_ms),
    };
    response.headers_mut().insert(
        HeaderName::from_static("x-mbx-used-weight-1m"),
        HeaderValue::from(admission.used()),
    );
    response
}

/// The 418, 429 or injected fault a call gets instead of its answer, if any.
async fn refusal(
    state: &Shared,
    caller: Caller,
    admission: Admission,
    now_ms: i64,
) -> Option<HttpResponse> {
    let config = &state.config;
    match admission {
        Admission::Banned {
            until_ms,
            retry_after_secs,
            started,
            ..
        } => {
            state.count(caller.address, |stats, line| {
                stats.banned_calls += 1;
                line.banned_calls += 1;
                if started {
                    stats.violations += 1;
                    line.violations += 1;
                }
            });
            let msg = format!(
                "Way too much request weight used; IP banned until {until_ms}. Please use \
                 WebSocket Streams for live updates to avoid bans."
            );
            return Some(
                HttpResponse::build(StatusCode::IM_A_TEAPOT)
                    .insert_header(("Retry-After", retry_after_secs.to_string()))
                    .json(error_body(-1003, &msg)),
            );
        }
        Admission::Refused {
            retry_after_secs, ..
        } => {
            state.count(caller.address, |stats, line| {
                stats.violations += 1;
                line.violations += 1;
                stats.rate_limited += 1;
                line.rate_limited += 1;
            });
            return Some(too_much_weight(config, retry_after_secs));
        }
        Admission::Admitted { .. } => {}
    }
    let call = state.call_number.fetch_add(1, Ordering::Relaxed);
    if server::refused_at_random(config, call) {
        state.count(caller.address, |stats, line| {
            stats.rate_limited += 1;
            line.rate_limited += 1;
            stats.refused_at_random += 1;
        });
        return Some(too_much_weight(config, weight::secs_to_minute_end(now_ms)));
    }
    server::inject_fault(state, call).await
}

/// The trades a call past the weight check and the faults asks for, or Binance's error.
fn request(
    state: &Shared,
    query: &HashMap<String, String>,
    now_ms: i64,
) -> Result<Vec<AggTrade>, ApiError> {
    let config = &state.config;
    let symbol = match query.get("symbol").map(String::as_str) {
        None | Some("") => {
            return Err(error(
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            ))
        }
        Some(symbol) => symbol,
    };
    if !legal_symbol(symbol) {
        return Err(error(
            -1100,
            &format!(
                "Illegal characters found in parameter 'symbol'; legal range is '{SYMBOL_RANGE}'."
            ),
        ));
    }
    let from_id = number(query, "fromId")?;
    let start = number(query, "startTime")?;
    let end = number(query, "endTime")?;
    let limit = number(query, "limit")?;
    if !agg_market::is_listed(config, symbol) {
        state.stats.lock().unwrap().invalid_pair += 1;
        return Err(error(-1121, "Invalid symbol."));
    }
    // Binance: "fromId cannot be used together with startTime and endTime".
    if from_id.is_some() && (start.is_some() || end.is_some()) {
        return Err(error(-1128, "Combination of optional parameters invalid."));
    }
    // Binance dropped its one-hour rule on 2022-12-05; a venue that keeps one is configured.
    if let (Some(max_secs), Some(start), Some(end)) = (config.binance_max_window_secs, start, end) {
        if end.saturating_sub(start) >= max_secs.saturating_mul(1000) {
            state.stats.lock().unwrap().window_too_long += 1;
            return Err(error(
                -1127,
                &format!(
                    "More than {} hours between startTime and endTime.",
                    hours(max_secs)
                ),
            ));
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(0) => {
            return Err(error(
                -1130,
                "Data sent for parameter 'limit' is not valid.",
            ))
        }
        Some(n) => (n as u64).min(MAX_LIMIT as u64) as usize,
    };
    let page = |from_id: i64, until_ms: i64| {
        agg_market::agg_trades_from_id_until(config, symbol, from_id, limit, until_ms)
    };
    let id_at = |ms: i64| agg_market::id_at(config, symbol, ms).expect("listed");
    // Nothing after now exists yet: every selection stops there.
    let until_ms = end.map_or(now_ms, |end| end.min(now_ms));
    Ok(match (from_id, start) {
        (Some(from_id), _) => page(from_id, now_ms),
        // From startTime on, oldest first, as far as endTime (or now), however far that is.
        (None, Some(start)) => page(id_at(start), until_ms),
        // endTime alone: the `limit` trades at or before it; neither: the most recent. Both
        // oldest first.
        (None, None) => page(
            id_at(until_ms.saturating_add(1)).saturating_sub(limit as i64),
            until_ms,
        ),
    })
}

/// The `exchangeInfo` a call past the weight check and the faults asks for, or Binance's error.
fn listing(
    state: &Shared,
    query: &HashMap<String, String>,
    now_ms: i64,
) -> Result<serde_json::Value, ApiError> {
    let config = &state.config;
    let param = |name: &str| query.get(name).map(String::as_str);
    let (symbol, symbols, status) = (param("symbol"), param("symbols"), param("symbolStatus"));
    if (symbol.is_some() && symbols.is_some())
        || (status.is_some() && (symbol.or(symbols)).is_some())
    {
        return Err(error(-1128, "Combination of optional parameters invalid."));
    }
    for (name, value) in [
        ("symbol", symbol),
        ("symbols", symbols),
        ("symbolStatus", status),
    ] {
        if value == Some("") {
            return Err(error(-1105, &format!("Parameter '{name}' was empty.")));
        }
    }
    let asked: Option<Vec<String>> = match (symbol, symbols) {
        (Some(symbol), _) if !legal_symbol(symbol) => {
            return Err(error(
                -1100,
                &format!(
                    "Illegal characters found in parameter 'symbol'; legal range is '{SYMBOL_RANGE}'."
                ),
            ))
        }
        (Some(symbol), _) => Some(vec![symbol.to_string()]),
        (None, Some(list)) => Some(symbol_list(list).ok_or_else(|| {
            error(
                -1100,
                &format!(
                    "Illegal characters found in parameter 'symbols'; legal range is '{SYMBOLS_RANGE}'."
                ),
            )
        })?),
        (None, None) => None,
    };
    if let Some(status) = status {
        if !["TRADING", "HALT", "BREAK"].contains(&status) {
            return Err(error(
                -1130,
                "Data sent for parameter 'symbolStatus' is not valid.",
            ));
        }
    }
    if let Some(asked) = &asked {
        if !asked.iter().all(|s| agg_market::is_listed(config, s)) {
            state.stats.lock().unwrap().invalid_pair += 1;
            return Err(error(-1121, "Invalid symbol."));
        }
    }
    let now = now_ms.div_euclid(1000);
    let symbols: Vec<serde_json::Value> = config
        .listed_pairs()
        .into_iter()
        .map(|pair| {
            let symbol = agg_market::symbol_of(pair);
            let trading = if config.trading_at(pair, now) {
                "TRADING"
            } else {
                "BREAK"
            };
            (symbol, trading)
        })
        .filter(|(symbol, trading)| {
            asked.as_ref().is_none_or(|asked| asked.contains(symbol))
                && status.is_none_or(|status| status == *trading)
        })
        .map(|(symbol, trading)| symbol_info(&symbol, trading))
        .collect();
    let mut rate_limits = Vec::new();
    // No REQUEST_WEIGHT entry when the simulator is told to have no limit.
    if config.weight_limit_per_minute > 0 {
        rate_limits.push(rate_limit(
            "REQUEST_WEIGHT",
            "MINUTE",
            1,
            config.weight_limit_per_minute,
        ));
    }
    // Listed as Binance lists them, not enforced: the simulator takes no orders, and counts
    // requests by weight only.
    rate_limits.push(rate_limit("ORDERS", "SECOND", 10, 100));
    rate_limits.push(rate_limit("ORDERS", "DAY", 1, 200_000));
    rate_limits.push(rate_limit("RAW_REQUESTS", "MINUTE", 5, 61_000));
    Ok(serde_json::json!({
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "symbols": symbols,
    }))
}

fn rate_limit(kind: &str, interval: &str, num: u32, limit: u64) -> serde_json::Value {
    serde_json::json!({
        "rateLimitType": kind,
        "interval": interval,
        "intervalNum": num,
        "limit": limit,
    })
}

/// One symbol of `exchangeInfo`, with the fields Binance sends; no filters (the simulator
/// takes no orders).
fn symbol_info(symbol: &str, status: &str) -> serde_json::Value {
    let (base, quote) = assets_of(symbol);
    serde_json::json!({
        "symbol": symbol,
        "status": status,
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": true,
        "ocoAllowed": true,
        "otoAllowed": true,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": true,
        "cancelReplaceAllowed": true,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    })
}

/// Quote assets a bare symbol may end with, longest first so that `FDUSD` is not read `USD`.
const QUOTE_ASSETS: &[&str] = &[
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY",
];

/// A symbol's (base, quote) assets: by the quote assets Binance uses, else its last three
/// characters are the quote.
pub fn assets_of(symbol: &str) -> (String, String) {
    let split = QUOTE_ASSETS
        .iter()
        .find(|quote| symbol.len() > quote.len() && symbol.ends_with(*quote))
        .map_or(symbol.len().saturating_sub(3), |quote| {
            symbol.len() - quote.len()
        });
    let (base, quote) = symbol.split_at(split);
    (base.to_string(), quote.to_string())
}

/// `symbols` as Binance takes it, `["BTCUSDT","BNBBTC"]` (no spaces), or `None`.
fn symbol_list(list: &str) -> Option<Vec<String>> {
    let inner = list.strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|quoted| {
            let symbol = quoted.strip_prefix('"')?.strip_suffix('"')?;
            legal_symbol(symbol).then(|| symbol.to_string())
        })
        .collect()
}

/// Seconds as the hours of -1127's message: `3600` → `1`, `5400` → `1.5`.
fn hours(secs: i64) -> String {
    if secs % 3600 == 0 {
        (secs / 3600).to_string()
    } else {
        format!("{}", secs as f64 / 3600.0)
    }
}

/// A symbol as Binance accepts one: `^[A-Z0-9-_.]{1,20}$`.
fn legal_symbol(symbol: &str) -> bool {
    (1..=20).contains(&symbol.len())
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// An optional integer parameter: absent, or digits that fit an i64.
fn number(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(value) = query.get(name) else {
        return Ok(None);
    };
    if value.is_empty() {
        return Err(error(-1105, &format!("Parameter '{name}' was empty.")));
    }
    if value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(
            -1100,
            &format!(
                "Illegal characters found in parameter '{name}'; legal range is '{NUMBER_RANGE}'."
            ),
        ));
    }
    value
        .parse::<i64>()
        .map(Some)
        .map_err(|_| error(-1108, &format!("Parameter '{name}' overflowed.")))
}

fn error_body(code: i32, msg: &str) -> serde_json::Value {
    serde_json::json!({ "code": code, "msg": msg })
}

/// Binance's answer to a malformed request: HTTP 400 and its error object.
struct ApiError {
    code: i32,
    msg: String,
}

impl ApiError {
    fn response(&self) -> HttpResponse {
        HttpResponse::BadRequest().json(error_body(self.code, &self.msg))
    }
}

fn error(code: i32, msg: &str) -> ApiError {
    ApiError {
        code,
        msg: msg.to_string(),
    }
}

/// 429: the minute's weight is spent.
fn too_much_weight(config: &SimulatorConfig, retry_after_secs: u64) -> HttpResponse {
    let msg = format!(
        "Too much request weight used; current limit is {} request weight per 1 MINUTE. Please \
         use WebSocket Streams for live updates to avoid polling the API.",
        config.weight_limit_per_minute
    );
    HttpResponse::TooManyRequests()
        .insert_header(("Retry-After", retry_after_secs.to_string()))
        .json(error_body(-1003, &msg))
}

#[cfg(test)]
mod tests {

    use super::*;
    use std::net::IpAddr;

    use crate::dev::simulator::{
        start_with_clock, AddressStats, ManualClock, SimulatorHandle, Stats, Venue,
    };

    /// 2018-10-22 00:00:00 UTC, in ms: the start of a minute.
    const DAY_MS: i64 = 1_540_166_400_000;
    const HOUR_MS: i64 = 3_600_000;

    fn binance() -> SimulatorConfig {
        SimulatorConfig {
            venue: Venue::Binance,
            ..SimulatorConfig::default()
        }
    }

    /// A simulator whose clock stands at `now_ms` until the test moves it.
    async fn start_at(config: SimulatorConfig, now_ms: i64) -> (SimulatorHandle, ManualClock) {
        let clock = ManualClock::new(now_ms);
        let sim = start_with_clock(config, clock.clone().into())
            .await
            .expect("simulator starts");
        (sim, clock)
    }

    struct Answer {
        status: u16,
        weight: Option<u64>,
        retry_after: Option<u64>,
        body: String,
    }

    impl Answer {
        fn trades(&self) -> Vec<AggTrade> {
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
        }

        fn error(&self) -> (i64, String) {
            let v: serde_json::Value = serde_json::from_str(&self.body).expect("JSON");
            (
                v["code"].as_i64().expect("code"),
                v["msg"].as_str().expect("msg").to_string(),
            )
        }
    }

    async fn get(sim: &SimulatorHandle, path_and_query: &str) -> Answer {
        get_from(sim, None, path_and_query).await
    }

    /// A call from local address `from` (any of 127/8 reaches a loopback server on Linux).
    async fn get_from(sim: &SimulatorHandle, from: Option<IpAddr>, path_and_query: &str) -> Answer {
        let mut response = crate::dev::simulator::test_client(from)
            .get(format!("{}{path_and_query}", sim.base_url()))
            .send()
            .await
            .expect("answer");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
        };
        let (weight, retry_after) = (header("x-mbx-used-weight-1m"), header("retry-after"));
        let body = response.body().limit(64 << 20).await.expect("body");
        Answer {
            status: response.status().as_u16(),
            weight,
            retry_after,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn agg(sim: &SimulatorHandle, query: &str) -> Answer {
        get(sim, &format!("/api/v3/aggTrades?{query}")).await
    }

    #[actix_rt::test]
    async fn a_window_is_served_oldest_first_with_the_weight_of_the_minute() {
        let (sim, _) = start_at(binance(), DAY_MS + 25 * HOUR_MS).await;
        // An hour holding more than a page.
        let from = (0..24)
            .map(|h| DAY_MS + h * HOUR_MS)
            .find(|&from| {
                agg_market::count_in_window(sim.config(), "BTCUSDT", from, from + HOUR_MS - 1)
                    > MAX_LIMIT as u64
            })
            .expect("a busy hour");
        let until = from + HOUR_MS - 1;
        let truth = agg_market::agg_trades_in_window(sim.config(), "BTCUSDT", from, until);
        assert!(truth.len() > MAX_LIMIT, "{}", truth.len());
        let first = agg(
            &sim,
            &format!("symbol=BTCUSDT&startTime={from}&endTime={until}&limit=1000"),
        )
        .await;
        assert_eq!((first.status, first.weight), (200, Some(4)));
        // The page is the window's oldest trades; the rest is reached with fromId.
        assert_eq!(first.trades(), truth[..MAX_LIMIT]);
        let next = truth[MAX_LIMIT].id;
        let rest = agg(&sim, &format!("symbol=BTCUSDT&fromId={next}&limit=1000")).await;
        assert_eq!(rest.weight, Some(8));
        let rest = rest.trades();
        let n = (truth.len() - MAX_LIMIT).min(MAX_LIMIT);
        assert_eq!(rest[..n], truth[MAX_LIMIT..MAX_LIMIT + n]);
        let stats = sim.stats();
        assert_eq!(
            (stats.calls, stats.trade_history_calls, stats.weight_used),
            (2, 2, 8)
        );
        assert_eq!((stats.peak_weight_per_minute, stats.violations), (8, 0));
    }

    #[actix_rt::test]
    async fn errors_come_as_binance_sends_them() {
        let (sim, _) = start_at(binance(), DAY_MS + 2 * HOUR_MS).await;
        let cases = [
            ("symbol=NOPEUSDT".to_string(), -1121, "Invalid symbol."),
            (
                format!("symbol=ETHBTC&fromId=3000000000&startTime={DAY_MS}"),
                -1128,
                "Combination of optional parameters invalid.",
            ),
            ("limit=5".to_string(), -1102, "Mandatory parameter 'symbol'"),
            (
                "symbol=ethbtc".to_string(),
                -1100,
                "Illegal characters found in parameter 'symbol'",
            ),
            (
                "symbol=ETHBTC&limit=ten".to_string(),
                -1100,
                "Illegal characters found in parameter 'limit'",
            ),
            (
                "symbol=ETHBTC&startTime=-5".to_string(),
                -1100,
                "Illegal characters found in parameter 'startTime'",
            ),
            (
                "symbol=ETHBTC&limit=0".to_string(),
                -1130,
                "Data sent for parameter 'limit' is not valid.",
            ),
            (
                "symbol=ETHBTC&fromId=".to_string(),
                -1105,
                "Parameter 'fromId' was empty.",
            ),
            (
                "symbol=ETHBTC&fromId=99999999999999999999".to_string(),
                -1108,
                "Parameter 'fromId' overflowed.",
            ),
        ];
        for (query, code, msg) in cases {
            let answer = agg(&sim, &query).await;
            assert_eq!(answer.status, 400, "{query}: {}", answer.body);
            assert!(
                answer.weight.is_some(),
                "{query}: every answer says the weight"
            );
            let (got_code, got_msg) = answer.error();
            assert_eq!(got_code, code, "{query}: {got_msg}");
            assert!(got_msg.starts_with(msg), "{query}: {got_msg}");
        }
        let stats = sim.stats();
        assert_eq!((stats.invalid_pair, stats.window_too_long), (1, 0));
        assert_eq!(stats.trade_history_calls, 0);
        // The Poloniex endpoint is not there.
        assert_eq!(
            get(&sim, "/public?command=returnTradeHistory").await.status,
            404
        );
    }

    #[actix_rt::test]
    async fn a_configured_longest_window_refuses_as_long_or_longer_with_1127() {
        let hourly = SimulatorConfig {
            binance_max_window_secs: Some(3600),
            ..binance()
        };
        let (sim, _) = start_at(hourly, DAY_MS + 2 * HOUR_MS).await;
        let window =
            |from: i64, until: i64| format!("symbol=ETHBTC&startTime={from}&endTime={until}");
        let refused = agg(&sim, &window(DAY_MS, DAY_MS + HOUR_MS)).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(
            refused.error(),
            (
                -1127,
                "More than 1 hours between startTime and endTime.".to_string()
            )
        );
        // Just under is answered, and so is either time alone, however far from now.
        for query in [
            window(DAY_MS, DAY_MS + HOUR_MS - 1),
            format!("symbol=ETHBTC&startTime={}", DAY_MS - 30 * 24 * HOUR_MS),
            format!("symbol=ETHBTC&endTime={DAY_MS}"),
        ] {
            let answer = agg(&sim, &query).await;
            assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        }
        let stats = sim.stats();
        assert_eq!((stats.window_too_long, stats.trade_history_calls), (1, 3));
        // Another length is said in hours.
        let longer = SimulatorConfig {
            binance_max_window_secs: Some(5400),
            ..binance()
        };
        let (sim, _) = start_at(longer, DAY_MS + 2 * HOUR_MS).await;
        let (code, msg) = agg(&sim, &window(DAY_MS, DAY_MS + HOUR_MS * 3 / 2))
            .await
            .error();
        assert_eq!(
            (code, msg.as_str()),
            (-1127, "More than 1.5 hours between startTime and endTime.")
        );
    }

    #[actix_rt::test]
    async fn start_time_alone_gives_the_limit_trades_from_then_however_long_they_span() {
        let (sim, _) = start_at(binance(), DAY_MS + 30 * 24 * HOUR_MS).await;
        // LTCBTC trades about 72 times an hour: 1000 trades span more than half a day.
        let from = DAY_MS + 123;
        let answer = agg(&sim, &format!("symbol=LTCBTC&startTime={from}&limit=1000")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let got = answer.trades();
        let truth =
            agg_market::agg_trades_in_window(sim.config(), "LTCBTC", from, from + 48 * HOUR_MS);
        assert!(truth.len() > MAX_LIMIT, "{}", truth.len());
        assert_eq!(got, truth[..MAX_LIMIT]);
        assert!(got.last().unwrap().time_ms > from + 6 * HOUR_MS);
        // The default limit, from a time between two trades.
        let between = got[9].time_ms + 1;
        let default = agg(&sim, &format!("symbol=LTCBTC&startTime={between}"))
            .await
            .trades();
        let after: Vec<_> = truth.iter().filter(|t| t.time_ms >= between).collect();
        assert_eq!(default.len(), DEFAULT_LIMIT);
        assert_eq!(default.iter().collect::<Vec<_>>(), after[..DEFAULT_LIMIT]);
    }

    #[actix_rt::test]
    async fn end_time_alone_gives_the_limit_newest_trades_at_or_before_it_oldest_first() {
        let (sim, _) = start_at(binance(), DAY_MS + 30 * 24 * HOUR_MS).await;
        let day = agg_market::agg_trades_in_window(
            sim.config(),
            "LTCBTC",
            DAY_MS,
            DAY_MS + 24 * HOUR_MS - 1,
        );
        assert!(day.len() > MAX_LIMIT, "{}", day.len());
        // endTime exactly on a trade: that trade is the last one, included.
        let end = day[day.len() - 7].time_ms;
        let answer = agg(&sim, &format!("symbol=LTCBTC&endTime={end}&limit=1000")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let upto: Vec<_> = day.iter().filter(|t| t.time_ms <= end).cloned().collect();
        let got = answer.trades();
        assert_eq!(got, upto[upto.len() - MAX_LIMIT..]);
        assert_eq!(got.last().unwrap().time_ms, end);
        // A millisecond earlier, it is not.
        let before = agg(&sim, &format!("symbol=LTCBTC&endTime={}&limit=5", end - 1))
            .await
            .trades();
        let earlier: Vec<_> = day.iter().filter(|t| t.time_ms < end).cloned().collect();
        assert_eq!(before, earlier[earlier.len() - 5..]);
    }

    #[actix_rt::test]
    async fn a_week_long_window_is_answered_oldest_first_up_to_limit() {
        let (sim, _) = start_at(binance(), DAY_MS + 30 * 24 * HOUR_MS).await;
        let (from, until) = (DAY_MS, DAY_MS + 7 * 24 * HOUR_MS - 1);
        for symbol in ["BTCUSDT", "LTCBTC"] {
            let answer = agg(
                &sim,
                &format!("symbol={symbol}&startTime={from}&endTime={until}&limit=1000"),
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            // The first day holds more than a page of either.
            let first_day =
                agg_market::agg_trades_in_window(sim.config(), symbol, from, from + 24 * HOUR_MS);
            assert!(first_day.len() > MAX_LIMIT, "{symbol}: {}", first_day.len());
            assert_eq!(answer.trades(), first_day[..MAX_LIMIT], "{symbol}");
        }
        assert_eq!(sim.stats().window_too_long, 0);
    }

    #[actix_rt::test]
    async fn limit_defaults_to_500_and_more_than_1000_is_cut_to_1000() {
        let now = DAY_MS + 7 * HOUR_MS + 12_345;
        let (sim, _) = start_at(binance(), now).await;
        // Half a day holds well over a page, however calm.
        let truth =
            agg_market::agg_trades_in_window(sim.config(), "BTCUSDT", now - 12 * HOUR_MS, now);
        // Neither fromId, startTime nor endTime: the most recent trades as of now, oldest first.
        let recent = agg(&sim, "symbol=BTCUSDT").await.trades();
        assert_eq!(recent.len(), DEFAULT_LIMIT);
        assert_eq!(recent, truth[truth.len() - DEFAULT_LIMIT..]);
        let most = agg(&sim, "symbol=BTCUSDT&limit=5000").await.trades();
        assert_eq!(most, truth[truth.len() - MAX_LIMIT..]);
        // endTime alone: the most recent as of then.
        let then = now - HOUR_MS;
        let before = agg(&sim, &format!("symbol=BTCUSDT&endTime={then}&limit=3"))
            .await
            .trades();
        let upto: Vec<_> = truth
            .iter()
            .filter(|t| t.time_ms <= then)
            .cloned()
            .collect();
        assert_eq!(before, upto[upto.len() - 3..]);
    }

    #[actix_rt::test]
    async fn trades_of_the_future_do_not_exist_yet() {
        let now = DAY_MS + HOUR_MS / 2;
        // Busy enough that every minute has trades, calm enough that they fit a page.
        let busy = SimulatorConfig {
            intensity: 4.0,
            ..binance()
        };
        let (sim, clock) = start_at(busy, now).await;
        let query = format!(
            "symbol=BTCUSDT&startTime={}&endTime={}&limit=1000",
            now - 60_000,
            now + 60_000
        );
        let seen = agg(&sim, &query).await.trades();
        assert_eq!(
            seen,
            agg_market::agg_trades_in_window(sim.config(), "BTCUSDT", now - 60_000, now)
        );
        let last = seen.last().expect("a busy minute").id;
        let after = format!("symbol=BTCUSDT&fromId={}", last + 1);
        assert_eq!(agg(&sim, &after).await.trades(), []);
        // A minute later they have happened.
        clock.advance_ms(60_000);
        let later = agg(&sim, &query).await.trades();
        assert_eq!(
            later,
            agg_market::agg_trades_in_window(sim.config(), "BTCUSDT", now - 60_000, now + 60_000)
        );
        assert!(later.len() > seen.len());
        assert_eq!(agg(&sim, &after).await.trades()[0].id, last + 1);
    }

    #[actix_rt::test]
    async fn from_id_pages_reach_every_trade_of_a_burst_millisecond() {
        let burst = DAY_MS + 1_800_123;
        let config = SimulatorConfig {
            burst_ms: vec![burst],
            ..binance()
        };
        let (sim, _) = start_at(config, DAY_MS + HOUR_MS).await;
        let truth = agg_market::agg_trades_in_window(sim.config(), "ETHUSDT", burst, burst);
        assert!(truth.len() > MAX_LIMIT, "{}", truth.len());
        // A window can show only its first page of the millisecond...
        let first = agg(
            &sim,
            &format!("symbol=ETHUSDT&startTime={burst}&endTime={burst}&limit=1000"),
        )
        .await;
        let mut got = first.trades();
        assert_eq!(got.len(), MAX_LIMIT);
        // ...fromId the rest, until a trade after it shows.
        let mut calls = 1;
        loop {
            let next = got.last().unwrap().id + 1;
            let page = agg(&sim, &format!("symbol=ETHUSDT&fromId={next}&limit=1000"))
                .await
                .trades();
            calls += 1;
            let done = page.iter().any(|t| t.time_ms > burst);
            got.extend(page.into_iter().filter(|t| t.time_ms == burst));
            if done {
                break;
            }
        }
        assert_eq!(got, truth);
        assert_eq!(sim.stats().calls, calls);
    }

    #[actix_rt::test]
    async fn past_the_budget_429_until_the_minute_ends_then_418_after_ban_after() {
        let config = SimulatorConfig {
            weight_per_call: 4,
            weight_limit_per_minute: 12,
            ban_after: 2,
            ban_secs: 120,
            ..binance()
        };
        let minute = DAY_MS + HOUR_MS;
        let (sim, clock) = start_at(config, minute + 45_000).await;
        let query = "symbol=ETHBTC&limit=1";
        for used in [4, 8, 12] {
            let answer = agg(&sim, query).await;
            assert_eq!((answer.status, answer.weight), (200, Some(used)));
        }
        for used in [16, 20] {
            let answer = agg(&sim, query).await;
            assert_eq!(answer.status, 429, "{}", answer.body);
            assert_eq!((answer.weight, answer.retry_after), (Some(used), Some(15)));
            let (code, msg) = answer.error();
            assert_eq!(code, -1003);
            assert!(msg.starts_with("Too much request weight used; current limit is 12 request weight per 1 MINUTE."), "{msg}");
        }
        // The third call past the budget, after two 429s: banned for ban_secs.
        let ban = agg(&sim, query).await;
        assert_eq!(
            (ban.status, ban.weight, ban.retry_after),
            (418, Some(24), Some(120))
        );
        let (code, msg) = ban.error();
        assert_eq!(code, -1003);
        assert_eq!(
            msg,
            format!(
                "Way too much request weight used; IP banned until {}. Please use WebSocket \
                 Streams for live updates to avoid bans.",
                minute + 45_000 + 120_000
            )
        );
        // The next minute: the count starts again, but the ban goes on; banned calls add nothing.
        clock.set_ms(minute + 60_000);
        let banned = agg(&sim, query).await;
        assert_eq!(
            (banned.status, banned.weight, banned.retry_after),
            (418, Some(0), Some(105))
        );
        // Over: answered again.
        clock.set_ms(minute + 45_000 + 120_000);
        let after = agg(&sim, query).await;
        assert_eq!((after.status, after.weight), (200, Some(4)));
        let stats = sim.stats();
        let line = AddressStats {
            calls: 8,
            violations: 3,
            rate_limited: 2,
            banned_calls: 2,
            weight_used: 28,
            peak_weight_per_minute: 24,
            peak_calls_per_second: stats.peak_calls_per_second,
            tightest_window_us: None,
        };
        let expected = Stats {
            addresses: [(IpAddr::from([127, 0, 0, 1]), line)].into(),
            calls: 8,
            trade_history_calls: 4,
            violations: 3,
            rate_limited: 2,
            banned_calls: 2,
            weight_used: 28,
            peak_weight_per_minute: 24,
            peak_calls_per_second: stats.peak_calls_per_second,
            first_call_ms: stats.first_call_ms,
            last_call_ms: stats.last_call_ms,
            ..Stats::default()
        };
        assert_eq!(stats, expected);
    }

    fn info(answer: &Answer) -> serde_json::Value {
        assert_eq!(answer.status, 200, "{}", answer.body);
        serde_json::from_str(&answer.body).expect("JSON")
    }

    fn listed(info: &serde_json::Value) -> Vec<(String, String)> {
        info["symbols"]
            .as_array()
            .expect("symbols")
            .iter()
            .map(|s| {
                let field = |name: &str| s[name].as_str().expect(name).to_string();
                (field("symbol"), field("status"))
            })
            .collect()
    }

    #[actix_rt::test]
    async fn exchange_info_lists_the_pairs_and_weighs_20_in_the_same_budget() {
        let stop_s = (DAY_MS + HOUR_MS) / 1000;
        let config = SimulatorConfig {
            pairs: ["USDT_BTC", "BTC_ETH", "DOGEUSDT"]
                .map(String::from)
                .to_vec(),
            delisted: [("LUNAUSDT".to_string(), stop_s)].into(),
            weight_limit_per_minute: 45,
            ..binance()
        };
        let (sim, clock) = start_at(config, DAY_MS + HOUR_MS - 1000).await;
        let answer = get(&sim, "/api/v3/exchangeInfo").await;
        assert_eq!(answer.weight, Some(20));
        let all = info(&answer);
        assert_eq!(all["timezone"], "UTC");
        assert_eq!(all["serverTime"], DAY_MS + HOUR_MS - 1000);
        assert_eq!(all["exchangeFilters"], serde_json::json!([]));
        assert_eq!(
            all["rateLimits"][0],
            serde_json::json!({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                "intervalNum": 1, "limit": 45})
        );
        let trading = |s: &str| (s.to_string(), "TRADING".to_string());
        // Still trading a second before its stop.
        assert_eq!(
            listed(&all),
            [
                trading("BTCUSDT"),
                trading("ETHBTC"),
                trading("DOGEUSDT"),
                trading("LUNAUSDT")
            ]
        );
        let btc = &all["symbols"][0];
        assert_eq!(
            (btc["baseAsset"].as_str(), btc["quoteAsset"].as_str()),
            (Some("BTC"), Some("USDT"))
        );
        for field in [
            "baseAssetPrecision",
            "quotePrecision",
            "quoteAssetPrecision",
        ] {
            assert_eq!(btc[field], 8, "{field}");
        }
        // aggTrades after it: 24 of 45; another exchangeInfo takes the minute past it.
        let trades = agg(&sim, "symbol=BTCUSDT&limit=1").await;
        assert_eq!((trades.status, trades.weight), (200, Some(24)));
        let next = agg(&sim, "symbol=BTCUSDT&limit=1").await;
        assert_eq!(next.weight, Some(28));
        let refused = get(&sim, "/api/v3/exchangeInfo").await;
        assert_eq!((refused.status, refused.weight), (429, Some(48)));
        // The next minute, from the stop on: BREAK.
        clock.set_ms(DAY_MS + HOUR_MS);
        let later = info(&get(&sim, "/api/v3/exchangeInfo?symbol=LUNAUSDT").await);
        assert_eq!(
            listed(&later),
            [("LUNAUSDT".to_string(), "BREAK".to_string())]
        );
        let stats = sim.stats();
        assert_eq!((stats.listing_calls, stats.trade_history_calls), (2, 2));
        assert_eq!(
            (stats.weight_used, stats.violations),
            (20 + 4 + 4 + 20 + 20, 1)
        );
    }

    #[actix_rt::test]
    async fn exchange_info_takes_symbol_symbols_or_symbol_status() {
        let stop_s = DAY_MS / 1000;
        let config = SimulatorConfig {
            delisted: [("USDT_ETH".to_string(), stop_s)].into(),
            ..binance()
        };
        let (sim, _) = start_at(config, DAY_MS + HOUR_MS).await;
        let ask = |query: &str| {
            let sim = &sim;
            let query = query.to_string();
            async move { get(sim, &format!("/api/v3/exchangeInfo?{query}")).await }
        };
        let names = |info: &serde_json::Value| -> Vec<String> {
            listed(info).into_iter().map(|(s, _)| s).collect()
        };
        let one = info(&ask("symbol=ETHBTC").await);
        assert_eq!(names(&one), ["ETHBTC"]);
        // URL-encoded, as Binance's example sends it.
        let some = info(&ask("symbols=%5B%22XMRBTC%22,%22BTCUSDT%22%5D").await);
        // In the listing's order (the configuration's), not the question's.
        assert_eq!(names(&some), ["XMRBTC", "BTCUSDT"]);
        let breaking = info(&ask("symbolStatus=BREAK").await);
        assert_eq!(
            listed(&breaking),
            [("ETHUSDT".to_string(), "BREAK".to_string())]
        );
        let trading = info(&ask("symbolStatus=TRADING").await);
        assert_eq!(names(&trading), ["ETHBTC", "XMRBTC", "LTCBTC", "BTCUSDT"]);
        assert_eq!(
            names(&info(&ask("symbolStatus=HALT").await)),
            Vec::<String>::new()
        );
        let cases = [
            ("symbol=NOPEUSDT", -1121, "Invalid symbol."),
            (
                "symbols=%5B%22BTCUSDT%22,%22NOPEUSDT%22%5D",
                -1121,
                "Invalid symbol.",
            ),
            (
                "symbol=ETHBTC&symbolStatus=TRADING",
                -1128,
                "Combination of optional parameters invalid.",
            ),
            (
                "symbols=%5B%22ETHBTC%22%5D&symbolStatus=BREAK",
                -1128,
                "Combination of optional parameters invalid.",
            ),
            (
                "symbol=ETHBTC&symbols=%5B%22ETHBTC%22%5D",
                -1128,
                "Combination of optional parameters invalid.",
            ),
            (
                "symbols=BTCUSDT",
                -1100,
                "Illegal characters found in parameter 'symbols'",
            ),
            (
                "symbols=%5B%22BTCUSDT%22,%20%22ETHBTC%22%5D",
                -1100,
                "Illegal characters found in parameter 'symbols'",
            ),
            (
                "symbol=ethbtc",
                -1100,
                "Illegal characters found in parameter 'symbol'",
            ),
            (
                "symbolStatus=OPEN",
                -1130,
                "Data sent for parameter 'symbolStatus' is not valid.",
            ),
            ("symbol=", -1105, "Parameter 'symbol' was empty."),
        ];
        for (query, code, msg) in cases {
            let answer = ask(query).await;
            assert_eq!(answer.status, 400, "{query}: {}", answer.body);
            assert_eq!(answer.weight, Some(20 * sim.stats().calls), "{query}");
            let (got_code, got_msg) = answer.error();
            assert_eq!(got_code, code, "{query}: {got_msg}");
            assert!(got_msg.starts_with(msg), "{query}: {got_msg}");
        }
        let stats = sim.stats();
        assert_eq!((stats.listing_calls, stats.invalid_pair), (5, 2));
        // A delisted symbol's trades end at its stop, and it is answered.
        let last = agg(
            &sim,
            &format!("symbol=ETHUSDT&endTime={}", DAY_MS + HOUR_MS),
        )
        .await
        .trades();
        assert!(!last.is_empty());
        assert!(last.iter().all(|t| t.time_ms < DAY_MS));
        let after = agg(&sim, &format!("symbol=ETHUSDT&startTime={DAY_MS}")).await;
        assert_eq!(after.trades(), []);
    }

    #[test]
    fn assets_split_on_the_quote_asset() {
        for (symbol, base, quote) in [
            ("BTCUSDT", "BTC", "USDT"),
            ("ETHBTC", "ETH", "BTC"),
            ("BTCFDUSD", "BTC", "FDUSD"),
            ("XMRBTC", "XMR", "BTC"),
            ("ABCXYZ", "ABC", "XYZ"),
        ] {
            assert_eq!(assets_of(symbol), (base.into(), quote.into()), "{symbol}");
        }
    }

    #[actix_rt::test]
    async fn each_client_address_has_a_whole_budget_and_a_ban_of_its_own() {
        let config = SimulatorConfig {
            weight_per_call: 4,
            weight_limit_per_minute: 9,
            foreign_weight_per_minute: 1,
            ban_after: 1,
            ban_secs: 120,
            ..binance()
        };
        let (sim, _) = start_at(config.clone(), DAY_MS + HOUR_MS).await;
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let query = "/api/v3/aggTrades?symbol=ETHBTC&limit=1";
        let mut seen = Vec::new();
        for from in [a, a, a, a, b, b] {
            let answer = get_from(&sim, Some(from), query).await;
            seen.push((answer.status, answer.weight));
        }
        // Another client on each address spends 1: 5, 9, then 429 and the ban for the first
        // address; the second has its own 9, and no ban.
        let expected = [
            (200, Some(5)),
            (200, Some(9)),
            (429, Some(13)),
            (418, Some(17)),
            (200, Some(5)),
            (200, Some(9)),
        ];
        assert_eq!(seen, expected);
        let stats = sim.stats();
        let first = AddressStats {
            calls: 4,
            violations: 2,
            rate_limited: 1,
            banned_calls: 1,
            weight_used: 16,
            peak_weight_per_minute: 17,
            peak_calls_per_second: stats.addresses[&a].peak_calls_per_second,
            tightest_window_us: None,
        };
        let second = AddressStats {
            calls: 2,
            weight_used: 8,
            peak_weight_per_minute: 9,
            peak_calls_per_second: stats.addresses[&b].peak_calls_per_second,
            ..AddressStats::default()
        };
        assert_eq!(stats.addresses, [(a, first), (b, second)].into());
        assert_eq!(
            (stats.calls, stats.violations, stats.weight_used),
            (6, 2, 24)
        );
        assert_eq!(stats.peak_weight_per_minute, 17);
        // /stats serves the same, the breakdown keyed by address.
        let served: Stats = serde_json::from_str(&get(&sim, "/stats").await.body).unwrap();
        assert_eq!(served, stats);

        // One budget for all: the second address's first call finds it spent.
        let shared = SimulatorConfig {
            per_address: false,
            ban_after: 0,
            ..config
        };
        let (sim, _) = start_at(shared, DAY_MS + HOUR_MS).await;
        let mut seen = Vec::new();
        for from in [a, a, b] {
            let answer = get_from(&sim, Some(from), query).await;
            seen.push((answer.status, answer.weight));
        }
        assert_eq!(seen, [(200, Some(5)), (200, Some(9)), (429, Some(13))]);
        let stats = sim.stats();
        assert_eq!(stats.addresses[&b].rate_limited, 1);
        assert_eq!(stats.addresses[&b].peak_weight_per_minute, 13);
        assert_eq!(stats.addresses[&a].weight_used, 8);
    }

    #[actix_rt::test]
    async fn random_refusals_and_faults_carry_the_weight_header_too() {
        let now = DAY_MS + HOUR_MS;
        let refusing = SimulatorConfig {
            refuse_rate: 1.0,
            ..binance()
        };
        let (sim, _) = start_at(refusing, now + 50_000).await;
        let answer = agg(&sim, "symbol=ETHBTC").await;
        assert_eq!(
            (answer.status, answer.weight, answer.retry_after),
            (429, Some(4), Some(10))
        );
        assert_eq!(answer.error().0, -1003);
        let stats = sim.stats();
        assert_eq!(
            (
                stats.refused_at_random,
                stats.rate_limited,
                stats.violations
            ),
            (1, 1, 0)
        );

        let failing = SimulatorConfig {
            error_rate: 1.0,
            ..binance()
        };
        let (sim, _) = start_at(failing, now).await;
        let answer = agg(&sim, "symbol=ETHBTC").await;
        assert!((500..600).contains(&answer.status));
        assert_eq!(answer.weight, Some(4));
        assert_eq!(sim.stats().errors_5xx, 1);
    }
}
