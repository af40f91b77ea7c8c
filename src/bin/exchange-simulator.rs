//! `exchange-simulator`: the deterministic exchange API of `cloner_worker::dev::simulator`
//! (Poloniex's `returnTradeHistory` and `returnTicker`, or Binance's `aggTrades` and
//! `exchangeInfo` with `--venue binance`), as a process of its own. Prints one line, `exchange-simulator (VENUE) listening on http://ADDR`
//! (the URL last), once it accepts calls (and writes the port to `--port-file` if given); stops
//! on SIGINT/SIGTERM.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use cloner_worker::dev::simulator::{self, SimulatorConfig, Venue};

#[derive(Parser)]
#[command(
    name = "exchange-simulator",
    version,
    about = "A deterministic exchange API for tests and demos: Poloniex's returnTradeHistory \
             (the default) or Binance's GET /api/v3/aggTrades (--venue binance)."
)]
struct Args {
    /// Which exchange's API to serve.
    #[arg(long, value_enum, default_value_t = Venue::Poloniex)]
    venue: Venue,
    /// Address to listen on (any of 127/8 is loopback). Keep it on loopback: this is not a real
    /// exchange.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port; 0 takes a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write the bound port to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Comma-separated pairs that exist. Binance lists QUOTE_BASE as BASEQUOTE (USDT_BTC is
    /// BTCUSDT) and takes a name without `_` as a symbol.
    #[arg(long, value_delimiter = ',')]
    pairs: Option<Vec<String>>,
    /// Comma-separated PAIR=UNIX_S: pairs listed but no longer trading from that unix second
    /// on (their history ends there; BREAK in exchangeInfo, isFrozen in returnTicker).
    #[arg(long, value_delimiter = ',', value_parser = pair_second)]
    delisted: Vec<(String, i64)>,
    /// Multiplies every pair's trade rate.
    #[arg(long, default_value_t = 1.0)]
    intensity: f64,
    /// Comma-separated PAIR=X: multiplies that pair's mean trade rate by X (≥ 0) on top of
    /// --intensity; either of its names (USDT_BTC or BTCUSDT).
    #[arg(long, value_delimiter = ',', value_parser = pair_factor)]
    activity: Vec<(String, f64)>,
    #[arg(long, default_value_t = 1000)]
    page_limit: usize,
    /// Longest window answered, in seconds.
    #[arg(long, default_value_t = 30 * 86_400)]
    max_window_secs: i64,
    /// Calls allowed in any one second (429 beyond); 0 = no limit.
    #[arg(long, default_value_t = 6)]
    rate_limit: u32,
    /// The Retry-After (seconds) of a 429; 0 sends none.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Calls past the limit after which every call is answered 418 for --ban-secs; 0 = never.
    #[arg(long, default_value_t = 0)]
    ban_after: u64,
    #[arg(long, default_value_t = 60)]
    ban_secs: u64,
    /// Fraction of calls under the limit answered 429 anyway.
    #[arg(long, default_value_t = 0.0)]
    refuse_rate: f64,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fractions of calls (0..1) that fail in each way.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    oversized_rate: f64,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// A unix second whose windows always fail with an API error (repeatable).
    #[arg(long = "fail-second")]
    fail_seconds: Vec<i64>,
    /// Binance: request weight allowed per calendar minute (429 beyond); 0 = unlimited.
    #[arg(long, default_value_t = 6000)]
    weight_limit_per_minute: u64,
    /// Binance: request weight of one aggTrades call.
    #[arg(long, default_value_t = 4)]
    weight_per_call: u64,
    /// Binance: the longest endTime − startTime of an aggTrades call, in seconds (-1127 at or
    /// past it); unset = none, as on Binance today (3600 is its old one-hour rule).
    #[arg(long)]
    binance_max_window_secs: Option<i64>,
    /// Binance: comma-separated unix milliseconds that each hold --burst-trades more trades.
    #[arg(long, value_delimiter = ',')]
    burst_ms: Vec<i64>,
    /// Binance: the trades one --burst-ms millisecond adds.
    #[arg(long, default_value_t = 2500)]
    burst_trades: u64,
    /// Binance: weight another client on the same address spends at the start of every minute
    /// (on every address).
    #[arg(long, default_value_t = 0)]
    foreign_weight_per_minute: u64,
    /// Count the limits and bans per client address, as the exchanges do (`false`: all clients
    /// share one budget). Clients bound to 127.0.0.2, 127.0.0.3, … reach a loopback simulator
    /// as addresses of their own.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    per_address: bool,
}

/// `PAIR=X`, X a finite number ≥ 0.
fn pair_factor(arg: &str) -> Result<(String, f64), String> {
    let (pair, factor) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected PAIR=X, got {arg:?}"))?;
    let factor: f64 = factor.parse().map_err(|e| format!("{arg:?}: {e}"))?;
    if pair.is_empty() || !factor.is_finite() || factor < 0.0 {
        return Err(format!("{arg:?}: expected a pair and a number ≥ 0"));
    }
    Ok((pair.to_string(), factor))
}

/// `PAIR=UNIX_S`.
fn pair_second(arg: &str) -> Result<(String, i64), String> {
    let (pair, second) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected PAIR=UNIX_S, got {arg:?}"))?;
    let second = second.parse().map_err(|e| format!("{arg:?}: {e}"))?;
    if pair.is_empty() {
        return Err(format!("{arg:?}: expected a pair"));
    }
    Ok((pair.to_string(), second))
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    for (name, rate) in [
        ("--error-rate", args.error_rate),
        ("--hang-rate", args.hang_rate),
        ("--malformed-rate", args.malformed_rate),
        ("--oversized-rate", args.oversized_rate),
        ("--refuse-rate", args.refuse_rate),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "{name} must be a fraction between 0 and 1, got {rate}"
        );
    }
    anyhow::ensure!(
        args.binance_max_window_secs.is_none_or(|secs| secs > 0),
        "--binance-max-window-secs must be positive"
    );
    let defaults = SimulatorConfig::default();
    let config = SimulatorConfig {
        venue: args.venue,
        seed: args.seed,
        pairs: args.pairs.unwrap_or(defaults.pairs),
        delisted: args.delisted.into_iter().collect(),
        intensity: args.intensity,
        activity: args.activity.into_iter().collect(),
        page_limit: args.page_limit,
        max_window_secs: args.max_window_secs,
        rate_limit: args.rate_limit,
        retry_after_secs: args.retry_after_secs,
        ban_after: args.ban_after,
        ban_secs: args.ban_secs,
        refuse_rate: args.refuse_rate,
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        hang_rate: args.hang_rate,
        malformed_rate: args.malformed_rate,
        oversized_rate: args.oversized_rate,
        workers: args.workers,
        fail_seconds: args.fail_seconds,
        weight_per_call: args.weight_per_call,
        binance_max_window_secs: args.binance_max_window_secs,
        weight_limit_per_minute: args.weight_limit_per_minute,
        burst_ms: args.burst_ms,
        burst_trades: args.burst_trades,
        foreign_weight_per_minute: args.foreign_weight_per_minute,
        per_address: args.per_address,
    };
    actix_rt::System::new().block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        // Handlers first: a signal right after the "listening" line must still stop us cleanly.
        let stop = cloner_worker::service::shutdown_signal();
        let handle =
            simulator::start_on(config, addr).with_context(|| format!("binding {addr}"))?;
        if let Some(path) = &args.port_file {
            // Written whole or not at all: a reader never sees half a port. The temporary name
            // extends the full name, so it never equals it whatever the extension.
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".partial");
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, handle.addr().port().to_string())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        }
        // The URL last: readers take the line's last word.
        println!(
            "exchange-simulator ({}) listening on {}",
            args.venue,
            handle.base_url()
        );
        std::io::stdout().flush()?;
        stop.await;
        log::info!("stopping; stats: {:?}", handle.stats());
        handle.stop().await;
        Ok(())
    })
}
