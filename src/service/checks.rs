//! Start-up checks: what would otherwise fail in silence once the service runs.
//!
//! - The upstream host does not answer ([`probe_upstream`]).
//! - A full answer could not be produced as one Kafka message ([`results_fit`]).
//!
//! (The broker and the topics are checked where the consumer is made:
//! [`crate::kafka::client::check_topics`].) Each failure says what to set. The checks must
//! never spend a rate-limit slot: nothing is asked of the upstream but a TCP connection.

use std::time::Duration;

use crate::config::{ConfigError, KafkaRole, Settings};

/// librdkafka's default `message.max.bytes`.
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// A generous size of one trade in the API's JSON (a 1000-trade page is about 200 KB).
const JSON_BYTES_PER_TRADE: usize = 200;
/// How long start-up checks wait for the broker or the upstream.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A start-up check that failed, saying what to set.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "upstream.max_body_bytes ({body}) exceeds the producer's message.max.bytes ({max}): a result that big could not be produced. Lower upstream.max_body_bytes, or raise kafka.producer.message_max_bytes and the broker's message.max.bytes"
    )]
    BodyOverMessageMax { body: usize, max: usize },
    #[error(
        "a full page of upstream.page_limit ({page}) trades is about {bytes} bytes, over upstream.max_body_bytes ({body}): every full page would be refused. Lower upstream.page_limit or raise upstream.max_body_bytes"
    )]
    PageOverBody {
        page: usize,
        bytes: usize,
        body: usize,
    },
    #[error("kafka.producer.message_max_bytes: not a number: {0:?}")]
    MessageMaxNotANumber(String),
    #[error("upstream.base_url {0:?} has no host")]
    UpstreamUrl(String),
    #[error(
        "cannot reach the upstream at {base_url} ({host}:{port}): {source}; set upstream.base_url (CLONER__UPSTREAM__BASE_URL) to a reachable API"
    )]
    UpstreamUnreachable {
        base_url: String,
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error(
        "the upstream at {base_url} did not answer within {timeout:?}; set upstream.base_url (CLONER__UPSTREAM__BASE_URL) to a reachable API"
    )]
    UpstreamSilent { base_url: String, timeout: Duration },
}

/// A result is smaller than the body it came from (protobuf against the API's JSON), so a body
/// the upstream client accepts must fit in one Kafka message, and a full page in such a body.
pub fn results_fit(settings: &Settings) -> Result<(), CheckError> {
    let props = settings.kafka.properties(KafkaRole::Producer)?;
    let max = match props.get("message.max.bytes") {
        Some(v) => v
            .parse()
            .map_err(|_| CheckError::MessageMaxNotANumber(v.clone()))?,
        None => LIBRDKAFKA_MESSAGE_MAX_BYTES,
    };
    let u = &settings.upstream;
    if u.max_body_bytes > max {
        return Err(CheckError::BodyOverMessageMax {
            body: u.max_body_bytes,
            max,
        });
    }
    let bytes = u.page_limit * JSON_BYTES_PER_TRADE;
    if bytes > u.max_body_bytes {
        return Err(CheckError::PageOverBody {
            page: u.page_limit,
            bytes,
            body: u.max_body_bytes,
        });
    }
    Ok(())
}

/// Connects to the upstream's host and port: a wrong `upstream.base_url` fails here, at start,
/// not as a RANDOM_ERROR on every chunk. Sends nothing, so it costs no rate-limit slot.
pub async fn probe_upstream(base_url: &str, timeout: Duration) -> Result<(), CheckError> {
    let (host, port) =
        host_and_port(base_url).ok_or_else(|| CheckError::UpstreamUrl(base_url.to_string()))?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(CheckError::UpstreamUnreachable {
            base_url: base_url.to_string(),
            host,
            port,
            source,
        }),
        Err(_) => Err(CheckError::UpstreamSilent {
            base_url: base_url.to_string(),
            timeout,
        }),
    }
}

/// `http://host:port/path` → (host, port), with the scheme's port by default.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
        (host.to_string(), port.unwrap_or(default_port))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_upstream_urls() {
        let cases = [
            ("https://poloniex.com", Some(("poloniex.com", 443))),
            ("http://127.0.0.1:9000", Some(("127.0.0.1", 9000))),
            ("http://127.0.0.1:9000/api?x=1", Some(("127.0.0.1", 9000))),
            ("http://[::1]:81/", Some(("::1", 81))),
            ("http://user@host", Some(("host", 80))),
            ("http://", None),
            ("no-scheme", None),
        ];
        for (url, expected) in cases {
            let got = host_and_port(url);
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                expected,
                "{url}"
            );
        }
    }

    #[test]
    fn a_full_answer_must_fit_one_kafka_message() {
        let mut settings = Settings::default();
        assert!(results_fit(&settings).is_ok(), "the defaults fit");
        settings.upstream.max_body_bytes = 4 << 20;
        let err = results_fit(&settings).unwrap_err().to_string();
        assert!(err.contains("message.max.bytes (1000000)"), "{err}");
        settings.kafka.producer.insert(
            "message_max_bytes".into(),
            crate::config::KafkaValue::Int(8 << 20),
        );
        assert!(results_fit(&settings).is_ok(), "a larger message limit");
        settings.upstream.page_limit = 50_000;
        let err = results_fit(&settings).unwrap_err().to_string();
        assert!(err.contains("upstream.page_limit (50000)"), "{err}");
    }

    #[actix_rt::test]
    async fn an_unreachable_upstream_is_named() {
        // A port nobody listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let err = probe_upstream(&url, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&url) && err.contains("upstream.base_url"),
            "{err}"
        );
    }
}
