//! The endpoints of the layer below, followed as they come and go. Each upstream URL is either
//! one fixed endpoint (`http://host:port`) or a DNS name (`dns:///host:port`, e.g. a Kubernetes
//! headless Service) resolved to every address it has, re-resolved periodically and as soon as
//! one of its endpoints is lost. Every endpoint's health is polled (`grpc.health.v1.Health`): it
//! takes calls only while it answers SERVING, so a replica that drains (NOT_SERVING on SIGTERM)
//! or fails is out of the balance before its connections close, and a new or returning one is in
//! within moments.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::transport::Endpoint;
use tonic::transport::channel::Change;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How often DNS targets are re-resolved when nothing is lost.
pub const DNS_REFRESH: Duration = Duration::from_secs(5);
/// How often each endpoint's health is asked: a replica that drains (NOT_SERVING for the drain
/// delay, 5 s by default) is out of the balance well before it closes.
pub const POLL: Duration = Duration::from_millis(200);
/// A health answer slower than this counts as lost.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// One configured upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A URL taken as it is (its host is resolved by the connection, once per connection).
    Fixed(String),
    /// `dns:///host:port`: every address of `host`, each its own endpoint.
    Dns { host: String, port: u16 },
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        let Some(rest) = url
            .strip_prefix("dns:///")
            .or_else(|| url.strip_prefix("dns://"))
        else {
            return Ok(Target::Fixed(if url.contains("://") {
                url.to_owned()
            } else {
                format!("http://{url}")
            }));
        };
        let (host, port) = rest
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| format!("{url:?}: expected dns:///host:port"))?;
        Ok(Target::Dns {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
        })
    }
}

/// How many endpoints take calls: `known` once every endpoint found so far has answered (or
/// failed) at least once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Availability {
    pub known: bool,
    /// Endpoints in the balance: the SERVING ones, or when none is, those that still answer
    /// (NOT_SERVING: draining, or their own layer below is down; they answer for themselves).
    pub usable: usize,
}

/// Answers the addresses of a name (the system resolver by default; a test may script it).
pub type Resolve = Arc<
    dyn Fn(
            String,
            u16,
        ) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>
        + Send
        + Sync,
>;

/// The system resolver (`getaddrinfo`: /etc/hosts, DNS).
pub fn system_resolver() -> Resolve {
    Arc::new(|host: String, port: u16| {
        Box::pin(async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(Iterator::collect)
        })
    })
}

/// Builds the endpoint for a URL (TLS, timeouts); `domain` is the TLS server name when the URL
/// names an address.
pub type MakeEndpoint = Arc<dyn Fn(&str, Option<&str>) -> Result<Endpoint, String> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Serving,
    NotServing,
    Lost,
}

struct Member {
    endpoint: Endpoint,
    /// The DNS target it came from.
    from_dns: bool,
    watcher: JoinHandle<()>,
    /// `None` until its first answer.
    health: Option<Health>,
}

/// Follow `targets` for as long as `balance` is open, inserting each endpoint into it while it
/// is SERVING and removing it otherwise; `availability` tells the callers.
pub async fn follow(
    targets: Vec<Target>,
    make: MakeEndpoint,
    resolve: Resolve,
    refresh: Duration,
    balance: mpsc::Sender<Change<String, Endpoint>>,
    availability: watch::Sender<Availability>,
) {
    let (events_tx, mut events) = mpsc::channel::<(String, Health)>(64);
    let mut members: HashMap<String, Member> = HashMap::new();
    // The keys in the balance now.
    let mut inserted: std::collections::HashSet<String> = std::collections::HashSet::new();
    let add = |members: &mut HashMap<String, Member>, key: String, endpoint: Endpoint, dns| {
        let watcher = tokio::spawn(watch_health(
            key.clone(),
            endpoint.clone(),
            events_tx.clone(),
        ));
        members.insert(
            key,
            Member {
                endpoint,
                from_dns: dns,
                watcher,
                health: None,
            },
        );
    };
    for t in &targets {
        if let Target::Fixed(url) = t {
            match make(url, None) {
                Ok(e) => add(&mut members, url.clone(), e, false),
                Err(e) => tracing::error!(error = %e, "upstream endpoint left out"),
            }
        }
    }
    let dns: Vec<(String, u16)> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Dns { host, port } => Some((host.clone(), *port)),
            Target::Fixed(_) => None,
        })
        .collect();
    let mut resolve_now = !dns.is_empty();
    let mut tick = tokio::time::interval(refresh);
    loop {
        if resolve_now {
            resolve_now = false;
            let mut found: HashMap<String, Endpoint> = HashMap::new();
            for (host, port) in &dns {
                match resolve(host.clone(), *port).await {
                    Ok(addrs) => {
                        for a in addrs {
                            let url = format!("http://{a}");
                            match make(&url, Some(host)) {
                                Ok(e) => {
                                    found.insert(url, e);
                                }
                                Err(e) => tracing::error!(error = %e, "upstream endpoint left out"),
                            }
                        }
                    }
                    // Keep what we have: a resolver hiccup is no reason to drop live endpoints.
                    Err(e) => {
                        tracing::warn!(host = %host, error = %e, "upstream name does not resolve");
                        found.extend(
                            members
                                .iter()
                                .filter(|(_, m)| m.from_dns)
                                .map(|(k, m)| (k.clone(), m.endpoint.clone())),
                        );
                    }
                }
            }
            let gone: Vec<String> = members
                .iter()
                .filter(|(k, m)| m.from_dns && !found.contains_key(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                if let Some(m) = members.remove(&key) {
                    m.watcher.abort();
                    tracing::info!(endpoint = %key, "upstream endpoint gone from DNS");
                }
            }
            for (key, endpoint) in found {
                if !members.contains_key(&key) {
                    tracing::info!(endpoint = %key, "upstream endpoint found in DNS");
                    add(&mut members, key, endpoint, true);
                }
            }
        }
        if !steer(&members, &mut inserted, &balance).await {
            break;
        }
        publish(&members, &inserted, &availability);
        tokio::select! {
            event = events.recv() => {
                let Some((key, health)) = event else { return };
                let Some(m) = members.get_mut(&key) else { continue };
                let was = m.health;
                if was != Some(health) {
                    tracing::info!(endpoint = %key, ?health, "upstream endpoint health");
                    m.health = Some(health);
                }
                // A lost endpoint may have moved: look again (once per loss).
                if health == Health::Lost && m.from_dns && was != Some(Health::Lost) {
                    resolve_now = true;
                }
            }
            _ = tick.tick(), if !dns.is_empty() => resolve_now = true,
            _ = balance.closed() => break,
        }
    }
    for m in members.into_values() {
        m.watcher.abort();
    }
}

/// Bring the balance to the endpoints that should take calls: the SERVING ones; when none is,
/// those that still answer. `false` when the balance is gone.
async fn steer(
    members: &HashMap<String, Member>,
    inserted: &mut std::collections::HashSet<String>,
    balance: &mpsc::Sender<Change<String, Endpoint>>,
) -> bool {
    let with = |h: Health| -> std::collections::HashSet<String> {
        members
            .iter()
            .filter(|(_, m)| m.health == Some(h))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let mut want = with(Health::Serving);
    if want.is_empty() {
        want = with(Health::NotServing);
    }
    for key in inserted.difference(&want).cloned().collect::<Vec<_>>() {
        inserted.remove(&key);
        if balance.send(Change::Remove(key)).await.is_err() {
            return false;
        }
    }
    for key in want.difference(inserted).cloned().collect::<Vec<_>>() {
        let Some(m) = members.get(&key) else { continue };
        inserted.insert(key.clone());
        if balance
            .send(Change::Insert(key, m.endpoint.clone()))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

fn publish(
    members: &HashMap<String, Member>,
    inserted: &std::collections::HashSet<String>,
    availability: &watch::Sender<Availability>,
) {
    let now = Availability {
        known: members.values().all(|m| m.health.is_some()),
        usable: inserted.len(),
    };
    availability.send_if_modified(|a| {
        let changed = *a != now;
        *a = now;
        changed
    });
}

/// Report the health of one endpoint until aborted: a `Check` every [`POLL`] on a connection
/// of its own (reconnecting when it is lost). Unary checks, not a `Watch` stream: a stream
/// would hold the server's graceful shutdown open.
async fn watch_health(key: String, endpoint: Endpoint, events: mpsc::Sender<(String, Health)>) {
    let mut client: Option<HealthClient<tonic::transport::Channel>> = None;
    loop {
        if client.is_none() {
            client = endpoint.connect().await.ok().map(HealthClient::new);
        }
        let health = match client.as_mut() {
            None => Health::Lost,
            Some(c) => {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                match tokio::time::timeout(POLL_TIMEOUT, c.check(request)).await {
                    Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32 => {
                        Health::Serving
                    }
                    Ok(Ok(_)) => Health::NotServing,
                    _ => {
                        client = None;
                        Health::Lost
                    }
                }
            }
        };
        if events.send((key.clone(), health)).await.is_err() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("dns:///arcana-service:50051"),
            Ok(Target::Dns {
                host: "arcana-service".into(),
                port: 50051
            })
        );
        assert_eq!(
            Target::parse("10.0.0.1:50051"),
            Ok(Target::Fixed("http://10.0.0.1:50051".into()))
        );
        assert_eq!(
            Target::parse("https://svc:50051"),
            Ok(Target::Fixed("https://svc:50051".into()))
        );
        assert!(Target::parse("dns:///no-port").is_err());
        assert!(Target::parse("dns:///:50051").is_err());
    }
}
