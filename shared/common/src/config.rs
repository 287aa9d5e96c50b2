//! Config fragments every service flattens into its own clap struct.
//!
//! Every flag has an `env` twin so the same binary is configured by flags in
//! development and by environment in containers. Secrets (URLs with
//! passwords) are wrapped in [`Redacted`] so `Debug` never prints them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// A value that must never reach a log line: `Debug` and `Display` print a
/// placeholder, the value is only reachable through [`Redacted::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The secret itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: FromStr> FromStr for Redacted<T> {
    type Err = T::Err;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// A clap value parser for a setting that holds a secret (API keys, webhook
/// secrets, URLs with credentials): its error names the setting and says
/// why, never the value. clap's own error for a failed `value_parser` quotes
/// the value (`invalid value '<the whole list>' for '--api-keys'`), which
/// would print a good key beside the bad one. `parse`'s error text must not
/// quote the value either: say which entry, by position, and why.
///
/// ```ignore
/// #[arg(long, env = "API_KEYS", value_parser = secret(ApiKeys::parse))]
/// ```
pub fn secret<T, E>(parse: fn(&str) -> Result<T, E>) -> SecretParser<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: fmt::Display + 'static,
{
    SecretParser { parse }
}

/// See [`secret`].
pub struct SecretParser<T, E> {
    parse: fn(&str) -> Result<T, E>,
}

impl<T, E> fmt::Debug for SecretParser<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretParser")
    }
}

impl<T, E> Clone for SecretParser<T, E> {
    fn clone(&self) -> Self {
        Self { parse: self.parse }
    }
}

impl<T, E> clap::builder::TypedValueParser for SecretParser<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: fmt::Display + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let setting = arg.map_or_else(
            || "a secret setting".to_owned(),
            |arg| {
                let flag = arg.get_long().unwrap_or_else(|| arg.get_id().as_str());
                match arg.get_env() {
                    Some(env) => format!("--{flag} ({})", env.to_string_lossy()),
                    None => format!("--{flag}"),
                }
            },
        );
        let refuse = |why: &dyn fmt::Display| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid {setting}: {why} (the value is not shown: it holds a secret)\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse(&"it is not valid UTF-8"))?;
        (self.parse)(text).map_err(|err| refuse(&err))
    }
}

/// Parses durations written as `250ms`, `5s`, `2m`, `3h`, `30d` or a bare
/// number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 250ms, 5s or 2m"))?;
    let seconds = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{s}` is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => Err(format!("`{s}` has an unknown unit; use ms, s, m, h or d")),
    }
}

/// [`parse_duration`], refusing zero (a zero timeout would refuse everything).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("`{s}` must be longer than zero")),
        d => Ok(d),
    }
}

/// Where the database is and how many connections to keep.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// Database URL: `postgres://user:pass@host/db` or `sqlite://path/to/file.db?mode=rwc`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Redacted<String>,

    /// Largest number of pooled database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    /// How long to wait for a free connection or a new one before failing the request.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub database_acquire_timeout: Duration,
}

/// Where the broker is and how much unacknowledged work a consumer may hold.
#[derive(clap::Args, Debug, Clone)]
pub struct AmqpConfig {
    /// AMQP URL of RabbitMQ, vhost included: `amqp://user:pass@host:5672/%2f`.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: Redacted<String>,

    /// Messages a consumer may hold unacknowledged at once (basic.qos prefetch).
    #[arg(long, env = "AMQP_PREFETCH", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub amqp_prefetch: u16,

    /// Prefix for every exchange and queue name, so several stacks can share
    /// one broker. Empty in production.
    #[arg(long, env = "AMQP_NAMESPACE", default_value = "")]
    pub amqp_namespace: String,
}

/// The HTTP listener every service opens for its API (if any), `/health` and `/metrics`.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpConfig {
    /// Address to listen on.
    #[arg(long, env = "HTTP_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub http_host: IpAddr,

    /// Port to listen on; each service has its own default (see README).
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// How long a client may take to send a request's headers; a slower
    /// connection is closed (a client trickling headers holds no resources
    /// past this).
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub http_header_read_timeout: Duration,

    /// How long a client may take to send a whole request body, however
    /// steadily it trickles; the request is then refused and the connection closed.
    #[arg(long, env = "HTTP_BODY_READ_TIMEOUT", default_value = "15s", value_parser = parse_positive_duration)]
    pub http_body_read_timeout: Duration,

    /// Longest an API request may take from its headers to its answer
    /// (body read included); past it the client gets a JSON 503.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub http_request_timeout: Duration,

    /// API requests handled at once by this process; beyond it a request is
    /// refused at once with 503 and `Retry-After` (load shedding). `/health`
    /// and `/metrics` are not counted, so probes answer under load.
    #[arg(long, env = "HTTP_MAX_CONCURRENT_REQUESTS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_concurrent_requests: u32,
}

impl HttpConfig {
    /// The socket address to bind, with the service's default port when none is set.
    pub fn addr(&self, default_port: u16) -> SocketAddr {
        SocketAddr::new(self.http_host, self.port.unwrap_or(default_port))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging settings.
#[derive(clap::Args, Debug, Clone)]
pub struct TelemetryConfig {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` EnvFilter syntax, e.g. `info,lapin=warn`.
    #[arg(long, env = "RUST_LOG", default_value = "info,lapin=warn,sqlx=warn")]
    pub log_filter: String,

    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver, e.g.
    /// `http://otel-collector:4318`; spans go to `<url>/v1/traces`
    /// (HTTP/protobuf). Unset: no spans are exported. The exporter also
    /// reads the other standard `OTEL_EXPORTER_OTLP_*` variables (headers,
    /// timeout) and `OTEL_BSP_*` (batch queue and delay).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` of the exported spans; default: the binary's name.
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

/// An OTLP endpoint: an `http://` or `https://` URL with a host, without
/// the signal path (`/v1/traces` is added).
fn parse_otlp_endpoint(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(
            "expected an http:// or https:// URL such as http://otel-collector:4318".into(),
        );
    }
    match s.parse::<axum::http::Uri>() {
        Ok(uri) if uri.host().is_some() => Ok(s.trim_end_matches('/').to_owned()),
        _ => Err("not a URL with a host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        // Too long is refused, not an overflow panic.
        assert!(parse_duration("18446744073709551615h").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn otlp_endpoints_are_http_urls_with_a_host() {
        assert_eq!(
            parse_otlp_endpoint("http://otel-collector:4318/"),
            Ok("http://otel-collector:4318".to_owned())
        );
        assert!(parse_otlp_endpoint("https://otlp.example.com").is_ok());
        for bad in ["", "otel-collector:4318", "grpc://c:4317", "http://"] {
            assert!(parse_otlp_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redacted_never_prints_its_value() {
        let url: Redacted<String> = "postgres://u:hunter2@h/db".parse().unwrap();
        assert_eq!(format!("{url:?} {url}"), "[redacted] [redacted]");
        assert_eq!(url.expose(), "postgres://u:hunter2@h/db");
    }
}
