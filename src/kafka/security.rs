//! What a secured listener's refusals mean, in this project's settings.
//!
//! librdkafka reports a wrong password, an untrusted broker certificate or a client speaking
//! plaintext to a TLS port as one more failed connection, which it retries for ever: to the
//! service that looks like a broker that cannot be reached. [`SecurityFailure::classify`] reads
//! librdkafka's error text (and code) and says which of those it is, and its message names the
//! key to fix as this project spells it (`kafka.sasl_password`, `CLONER__KAFKA__SASL_PASSWORD`).
//! The start-up probe ([`crate::kafka::probe`]) fails with it at once; the running service's
//! [`crate::kafka::broker_watch`] logs it instead of "cannot be reached".
//!
//! It must never put a secret in a message: it only ever sees librdkafka's error text (which
//! holds none) and the user name, and [`redact`] scrubs the configured secrets from what it
//! keeps all the same, in case a future librdkafka echoes one.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::error::RDKafkaErrorCode;

/// A connection the broker's listener refused for a reason of security configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityFailure {
    pub kind: FailureKind,
    /// librdkafka's own words, secrets removed (see [`redact`]).
    pub reason: String,
    /// The client's side of it, for the message.
    pub client: ClientSecurity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The broker refused the SASL user name or password.
    Authentication,
    /// The broker does not enable the SASL mechanism asked for.
    Mechanism,
    /// The broker's certificate is not signed by a CA the client trusts (or is not for the
    /// host the client connected to).
    UntrustedCertificate,
    /// The TLS listener wants a client certificate.
    ClientCertificate,
    /// The client and the listener do not speak the same protocol: plaintext to a TLS or SASL
    /// listener, or TLS to a plaintext one.
    ProtocolMismatch,
    /// Any other TLS handshake failure.
    Handshake,
}

/// What of the client's configuration a message quotes: nothing secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSecurity {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// `security.protocol`, librdkafka's default (`plaintext`) if unset.
    pub protocol: String,
    /// `sasl.username`, if set.
    pub username: Option<String>,
    /// `sasl.mechanisms`, librdkafka's default (`GSSAPI`) if unset.
    pub mechanism: String,
}

/// librdkafka properties whose values are secrets: never logged, never in a message.
pub fn is_secret(property: &str) -> bool {
    let p = property.replace('_', ".").to_ascii_lowercase();
    p.contains("password")
        || p.contains("secret")
        || p.ends_with("key.pem")
        || p == "sasl.oauthbearer.config"
        || p == "ssl.key"
        || p.ends_with("assertion.private.key.pem")
}

/// `text` with every secret value of `properties` replaced by `[redacted]`.
pub fn redact(text: &str, properties: &BTreeMap<String, String>) -> String {
    let mut text = text.to_string();
    for (name, value) in properties {
        // A one- or two-letter secret would redact half the message; such a password is its
        // own problem, and unlikely to be echoed anyway.
        if is_secret(name) && value.len() >= 3 {
            text = text.replace(value.as_str(), "[redacted]");
        }
    }
    text
}

impl ClientSecurity {
    /// From a client's librdkafka properties.
    pub fn of(properties: &BTreeMap<String, String>) -> ClientSecurity {
        ClientSecurity {
            bootstrap: properties
                .get("bootstrap.servers")
                .cloned()
                .unwrap_or_default(),
            protocol: properties
                .get("security.protocol")
                .cloned()
                .unwrap_or_else(|| "plaintext".into()),
            username: properties.get("sasl.username").cloned(),
            mechanism: properties
                .get("sasl.mechanisms")
                .or_else(|| properties.get("sasl.mechanism"))
                .cloned()
                .unwrap_or_else(|| "GSSAPI".into()),
        }
    }
}

impl SecurityFailure {
    /// What librdkafka's error (`code`, if it came through the error callback) or `FAIL` log
    /// line `text` means, if it is about security configuration; `None` for everything else
    /// (a broker down, a timeout, a refused request).
    pub fn classify(
        code: Option<RDKafkaErrorCode>,
        text: &str,
        client: &ClientSecurity,
    ) -> Option<FailureKind> {
        let plaintext = matches!(
            client.protocol.to_ascii_lowercase().as_str(),
            "plaintext" | "sasl_plaintext"
        );
        let kind = if text.contains("mechanism handshake failed") {
            FailureKind::Mechanism
        } else if text.contains("SASL authentication error")
            || text.contains("SASL SCRAM authentication failed")
            || code == Some(RDKafkaErrorCode::Authentication)
            || code == Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        {
            FailureKind::Authentication
        } else if text.contains("SSL handshake failed") {
            if text.contains("certificate verify failed")
                || text.contains("could not be verified")
                || text.contains("error:0A000086")
            {
                FailureKind::UntrustedCertificate
            } else if text.contains("client SSL authentication might be required") {
                FailureKind::ClientCertificate
            } else if text.contains("connecting to a PLAINTEXT broker listener?") {
                FailureKind::ProtocolMismatch
            } else {
                FailureKind::Handshake
            }
        } else if text.contains("connecting to a SSL listener?")
            || text.contains("broker might require SASL authentication")
            // librdkafka 2.12 words a peer's close as "Disconnected: connection closed by
            // peer", which its own hint above does not recognise: a listener that hangs up on
            // a plaintext client's very first request is a TLS one.
            || (plaintext
                && text.contains("Disconnected")
                && text.contains("in state APIVERSION_QUERY"))
        {
            FailureKind::ProtocolMismatch
        } else if code == Some(RDKafkaErrorCode::SSL) {
            FailureKind::Handshake
        } else {
            return None;
        };
        Some(kind)
    }

    /// [`SecurityFailure::classify`], with the reason kept (secrets of `properties` removed).
    pub fn from_librdkafka(
        code: Option<RDKafkaErrorCode>,
        text: &str,
        properties: &BTreeMap<String, String>,
    ) -> Option<SecurityFailure> {
        let client = ClientSecurity::of(properties);
        let kind = SecurityFailure::classify(code, text, &client)?;
        // Log lines begin with the librdkafka thread's name, which says nothing more.
        let text = match text.trim().strip_prefix("[thrd:") {
            Some(rest) => rest.split_once("]: ").map_or(rest, |(_, after)| after),
            None => text.trim(),
        };
        Some(SecurityFailure {
            kind,
            reason: redact(text, properties),
            client,
        })
    }

    /// Whether retrying cannot help: the same credentials and CA fail the same way every time.
    /// (A plaintext-to-TLS disconnect can also be a broker shutting down mid-handshake.)
    pub fn is_definite(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Authentication
                | FailureKind::Mechanism
                | FailureKind::UntrustedCertificate
        )
    }
}

impl std::error::Error for SecurityFailure {}

impl fmt::Display for SecurityFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.client;
        let at = &c.bootstrap;
        let reason = &self.reason;
        match self.kind {
            FailureKind::Authentication => write!(
                f,
                "SASL authentication failed for user {} at {at} ({reason}): check kafka.sasl_username / kafka.sasl_password (CLONER__KAFKA__SASL_USERNAME / CLONER__KAFKA__SASL_PASSWORD), and kafka.sasl_mechanisms (now {}) against the user's credentials on the broker",
                c.username.as_deref().unwrap_or("(kafka.sasl_username unset)"),
                c.mechanism
            ),
            FailureKind::Mechanism => write!(
                f,
                "the broker at {at} does not accept SASL mechanism {} ({reason}): set kafka.sasl_mechanisms (CLONER__KAFKA__SASL_MECHANISMS) to one its listener enables",
                c.mechanism
            ),
            FailureKind::UntrustedCertificate => write!(
                f,
                "TLS to {at} failed: the broker's certificate is not trusted ({reason}): set kafka.ssl_ca_location (CLONER__KAFKA__SSL_CA_LOCATION) to the PEM file of the CA that signed it; if the certificate is for another host name, connect by that name (kafka.bootstrap_servers)"
            ),
            FailureKind::ClientCertificate => write!(
                f,
                "TLS to {at} failed: the listener wants a client certificate ({reason}): set kafka.ssl_certificate_location and kafka.ssl_key_location (CLONER__KAFKA__SSL_CERTIFICATE_LOCATION, CLONER__KAFKA__SSL_KEY_LOCATION)"
            ),
            FailureKind::ProtocolMismatch => write!(
                f,
                "the listener at {at} does not speak kafka.security_protocol = {} ({reason}): set kafka.security_protocol (CLONER__KAFKA__SECURITY_PROTOCOL) to the listener's protocol: SSL or SASL_SSL for a TLS listener, SASL_PLAINTEXT or SASL_SSL for a SASL one, PLAINTEXT for neither",
                c.protocol
            ),
            FailureKind::Handshake => write!(
                f,
                "TLS handshake with {at} failed ({reason}): check kafka.security_protocol (now {}, CLONER__KAFKA__SECURITY_PROTOCOL) and the kafka.ssl_* settings",
                c.protocol
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sasl_ssl() -> BTreeMap<String, String> {
        props(&[
            ("bootstrap.servers", "127.0.0.1:9093"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "hunter2-secret"),
        ])
    }

    /// librdkafka 2.12's words, as its FAIL lines and error events give them.
    #[test]
    fn librdkafka_failures_are_classified_and_name_the_key() {
        let cases = [
            (
                "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 312ms in state AUTH_REQ)",
                FailureKind::Authentication,
                "kafka.sasl_password (CLONER__KAFKA__SASL_USERNAME / CLONER__KAFKA__SASL_PASSWORD)",
            ),
            (
                "sasl_ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: ssl/statem/statem_clnt.c:1889: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 5ms in state SSL_HANDSHAKE)",
                FailureKind::UntrustedCertificate,
                "kafka.ssl_ca_location (CLONER__KAFKA__SSL_CA_LOCATION)",
            ),
            (
                "127.0.0.1:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request) (after 2ms in state APIVERSION_QUERY)",
                FailureKind::ProtocolMismatch,
                "kafka.security_protocol (CLONER__KAFKA__SECURITY_PROTOCOL)",
            ),
            (
                "[thrd:127.0.0.1:9093/bootstrap]: 127.0.0.1:9093/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN (after 2ms in state APIVERSION_QUERY)",
                FailureKind::ProtocolMismatch,
                "kafka.security_protocol = PLAINTEXT",
            ),
            (
                "sasl_ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: connecting to a PLAINTEXT broker listener? (after 1ms in state SSL_HANDSHAKE)",
                FailureKind::ProtocolMismatch,
                "kafka.security_protocol",
            ),
            (
                "sasl_ssl://127.0.0.1:9093/bootstrap: SASL SCRAM-SHA-256 mechanism handshake failed: Broker: Request not valid in current SASL state: broker's supported mechanisms: SCRAM-SHA-512",
                FailureKind::Mechanism,
                "kafka.sasl_mechanisms (CLONER__KAFKA__SASL_MECHANISMS)",
            ),
        ];
        for (text, kind, key) in cases {
            let mut properties = sasl_ssl();
            if key.contains("= PLAINTEXT") {
                properties.insert("security.protocol".into(), "PLAINTEXT".into());
            }
            let failure = SecurityFailure::from_librdkafka(None, text, &properties)
                .unwrap_or_else(|| panic!("not classified: {text}"));
            assert_eq!(failure.kind, kind, "{text}");
            let message = failure.to_string();
            assert!(message.contains(key), "{message}");
            assert!(message.contains("127.0.0.1:9093"), "{message}");
        }
    }

    #[test]
    fn other_failures_are_not_about_security() {
        for text in [
            "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)",
            "1/1 brokers are down",
            "127.0.0.1:9092/1: Disconnected (after 60000ms in state UP)",
        ] {
            assert_eq!(
                SecurityFailure::from_librdkafka(None, text, &sasl_ssl()),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn secrets_never_reach_a_message() {
        let properties = sasl_ssl();
        let failure = SecurityFailure::from_librdkafka(
            Some(RDKafkaErrorCode::Authentication),
            "SASL authentication error: a librdkafka that echoed hunter2-secret",
            &properties,
        )
        .unwrap();
        let message = failure.to_string();
        assert!(!message.contains("hunter2-secret"), "{message}");
        assert!(message.contains("[redacted]"), "{message}");
        assert!(message.contains("user alice"), "{message}");
        for secret in [
            "sasl.password",
            "sasl_password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        for not_secret in ["sasl.username", "ssl.ca.location", "security.protocol"] {
            assert!(!is_secret(not_secret), "{not_secret}");
        }
    }
}
